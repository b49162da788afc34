//! The daemon's TOML config: every fixture under tests/fixtures/config/valid parses, every one
//! under invalid/ is refused with a ValidationException naming the file and the problem; the
//! sample kmscksd.toml at the repository root documents every key with its default.

use std::path::{Path, PathBuf};

use kmscks::daemon::DaemonConfig;
use kmscks::ErrorKind;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn valid_fixtures_parse() {
    for f in fixtures("valid") {
        DaemonConfig::from_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let c = DaemonConfig::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/valid/test.toml"),
    )
    .unwrap();
    assert_eq!(c.socket_mode, 0o666);
    assert_eq!(c.socket_gid, Some(1001));
    assert!(c.bootstrap);
    assert_eq!(c.max_connections, 8);
    assert_eq!(c.idle_timeout_secs, 2);
    // Keys not given keep their defaults.
    assert_eq!(c.log_level, DaemonConfig::default().log_level);
}

#[test]
fn invalid_fixtures_are_refused_with_the_reason() {
    let expect = [
        ("bad_account.toml", "account_id"),
        ("bad_mode.toml", "socket_mode"),
        ("control_nice_past_lowest.toml", "control_nice"),
        ("not_toml.toml", "line"),
        ("too_many_event_loops.toml", "event_loops"),
        ("unknown_key.toml", "max_conections"),
        ("wrong_type.toml", "max_connections"),
        ("zero_connections.toml", "max_connections"),
    ];
    let files = fixtures("invalid");
    assert_eq!(
        files.len(),
        expect.len(),
        "a fixture without an expectation"
    );
    for (f, (name, word)) in files.iter().zip(expect) {
        assert_eq!(f.file_name().unwrap(), name);
        let e = DaemonConfig::from_file(f).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException, "{name}: {e}");
        assert!(e.message().contains(name), "{name}: file not named: {e}");
        assert!(
            e.message().contains(word),
            "{name}: '{word}' not named: {e}"
        );
    }
}

#[test]
fn sample_documents_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("kmscksd.toml");
    if std::env::var_os("KMSCKS_BLESS").is_some() {
        std::fs::write(&path, DaemonConfig::sample_toml()).unwrap();
    }
    let sample = std::fs::read_to_string(&path).unwrap();
    // Every key appears, set or (where the default depends on the user) as a commented example.
    for key in DaemonConfig::KEYS {
        assert!(
            sample
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} ="))),
            "kmscksd.toml does not document {key}"
        );
    }
    // The uncommented values are the defaults.
    let parsed = DaemonConfig::from_toml(&sample, "kmscksd.toml").unwrap();
    assert_eq!(parsed, DaemonConfig::default());
    // And the file is the one the option table generates: each key under its doc comment.
    assert!(
        sample == DaemonConfig::sample_toml(),
        "kmscksd.toml differs from the option table in src/daemon/config.rs; regenerate it with \
         `KMSCKS_BLESS=1 cargo test --test config_fixtures`. Expected:\n{}",
        DaemonConfig::sample_toml()
    );
}

#[test]
fn every_key_is_a_flag_with_the_same_meaning() {
    use clap::{Args, FromArgMatches};
    use kmscks::daemon::DaemonFlags;
    let cmd = DaemonFlags::augment_args(clap::Command::new("kmscksd"));
    let flags: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let keys: Vec<String> = DaemonConfig::KEYS
        .iter()
        .map(|k| k.replace('_', "-"))
        .collect();
    assert_eq!(flags, keys);
    // Given flags go over the file's values; the others leave them alone.
    let m = cmd
        .try_get_matches_from([
            "kmscksd",
            "--socket-mode",
            "0o600",
            "--socket-gid",
            "7",
            "--bootstrap",
            "--max-connections",
            "3",
        ])
        .unwrap();
    let mut c = DaemonConfig {
        log_level: "debug".into(),
        ..DaemonConfig::default()
    };
    DaemonFlags::from_arg_matches(&m).unwrap().apply(&mut c);
    assert_eq!(
        c,
        DaemonConfig {
            socket_mode: 0o600,
            socket_gid: Some(7),
            bootstrap: true,
            max_connections: 3,
            log_level: "debug".into(),
            ..DaemonConfig::default()
        }
    );
}

#[test]
fn missing_file_is_named() {
    let e = DaemonConfig::from_file(Path::new("/nonexistent/kmscksd.toml")).unwrap_err();
    assert!(e.message().contains("/nonexistent/kmscksd.toml"), "{e}");
}
