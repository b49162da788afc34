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
        ("not_toml.toml", "line"),
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
    let sample =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("kmscksd.toml"))
            .unwrap();
    let defaults = toml::Value::try_from(DaemonConfig::default()).unwrap();
    let keys: Vec<String> = defaults.as_table().unwrap().keys().cloned().collect();
    for key in ["data_dir", "socket", "socket_gid"]
        .iter()
        .map(|k| k.to_string())
        .chain(keys)
    {
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
}

#[test]
fn missing_file_is_named() {
    let e = DaemonConfig::from_file(Path::new("/nonexistent/kmscksd.toml")).unwrap_err();
    assert!(e.message().contains("/nonexistent/kmscksd.toml"), "{e}");
}
