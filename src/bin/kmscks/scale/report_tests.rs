//! The scale report (`kmscks bench --scale N`) holds its contract at small N: exactly the
//! members of [`ScaleReport::FIELDS`] (which `tests/scale_report.rs` pins to the names issue 8
//! gives, through the binary), `keys == N`, finite non-negative values, a full ListKeys that found
//! exactly the N keys (the run fails otherwise), both key stores, and a refusal naming the
//! per-cluster limit. Speed is measured, never asserted here.

use std::time::Duration;

use crate::cli::{self, EXIT_OK, EXIT_USAGE};
use crate::scale::{self, ScaleError, ScaleOpts, ScaleReport, WINDOW};
use kmscks::types::limits::MAX_KEYS_PER_CLUSTER;

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["kmscks", "bench"];
    argv.extend_from_slice(args);
    let code = cli::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("the report is UTF-8"),
        String::from_utf8(err).expect("messages are UTF-8"),
    )
}

/// Checks a report of `n` keys: every member a finite number; the ones that cannot be zero
/// positive (the RSS growth may be 0: the allocator can reuse the dropped instance's pages).
fn check_report(r: &ScaleReport, n: usize) {
    assert_eq!(r.keys, n as u64);
    let values = [
        ("create_first_us", r.create_first_us),
        ("create_last_us", r.create_last_us),
        ("create_p999_us", r.create_p999_us),
        ("dir_bytes_per_key", r.dir_bytes_per_key),
        ("open_ms", r.open_ms),
        ("gdk_random_ratio", r.gdk_random_ratio),
        ("seal_random_floor_ratio", r.seal_random_floor_ratio),
        ("expand_random_floor_ratio", r.expand_random_floor_ratio),
        ("list_keys_full_ms", r.list_keys_full_ms),
    ];
    for (name, v) in values {
        assert!(v.is_finite() && v > 0.0, "{name} = {v} in {r:?}");
    }
    assert!(
        r.rss_bytes_per_key.is_finite() && r.rss_bytes_per_key >= 0.0,
        "{r:?}"
    );
}

/// Parses the one JSON line and checks it has exactly the contract's members.
fn parse_json(stdout: &str) -> ScaleReport {
    let line = stdout.trim_end();
    assert!(!line.contains('\n'), "one line expected: {stdout}");
    let v: serde_json::Value = serde_json::from_str(line).expect("the report is JSON");
    let mut names: Vec<&str> = v
        .as_object()
        .expect("the report is an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut contract = ScaleReport::FIELDS.to_vec();
    names.sort_unstable();
    contract.sort_unstable();
    assert_eq!(names, contract);
    serde_json::from_str(line).expect("the report has the report's members")
}

#[test]
fn a_run_with_both_windows_whole_reports_every_member() {
    // In process, without the fresh-process probe (tests/scale_report.rs runs the binary,
    // which measures memory in a child `kmscks`).
    let n = WINDOW + 100;
    let opts = ScaleOpts {
        duration: Duration::from_millis(100),
        probe: None,
        ..ScaleOpts::new(n)
    };
    let r = scale::run(&opts, None).expect("the scale report runs");
    check_report(&r, n);
}

#[test]
fn a_failing_open_probe_fails_the_run_loudly() {
    let opts = ScaleOpts {
        duration: Duration::from_millis(20),
        probe: Some("/bin/false".into()),
        ..ScaleOpts::new(1)
    };
    match scale::run(&opts, None) {
        Err(ScaleError::Failed(m)) => assert!(m.contains("open probe"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_run_smaller_than_a_window_averages_all_creates_in_both_windows() {
    let (code, out, err) = run_cli(&["--scale", "3", "--duration", "50ms", "--json"]);
    assert_eq!(code, EXIT_OK, "{err}");
    let r = parse_json(&out);
    check_report(&r, 3);
    // Both windows are the mean over all three creates.
    assert_eq!(r.create_first_us, r.create_last_us);
}

#[test]
fn a_run_in_a_custom_key_store_reports_every_member() {
    let (code, out, err) = run_cli(&[
        "--scale",
        "5",
        "--custom-key-store",
        "--threads",
        "2",
        "--duration",
        "50ms",
        "--json",
    ]);
    assert_eq!(code, EXIT_OK, "{err}");
    check_report(&parse_json(&out), 5);
}

#[test]
fn the_human_table_names_every_member() {
    let (code, out, err) = run_cli(&["--scale", "2", "--duration", "50ms"]);
    assert_eq!(code, EXIT_OK, "{err}");
    for name in ScaleReport::FIELDS {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from:\n{out}"
        );
    }
}

#[test]
fn more_keys_than_a_cluster_holds_are_refused_naming_the_limit() {
    let over = (MAX_KEYS_PER_CLUSTER + 1).to_string();
    let (code, out, err) = run_cli(&["--scale", &over, "--custom-key-store", "--json"]);
    assert_eq!(code, EXIT_USAGE, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&MAX_KEYS_PER_CLUSTER.to_string()) && err.contains("MAX_KEYS_PER_CLUSTER"),
        "{err}"
    );
    let opts = ScaleOpts {
        custom_key_store: true,
        ..ScaleOpts::new(MAX_KEYS_PER_CLUSTER + 1)
    };
    assert!(
        matches!(scale::run(&opts, None), Err(ScaleError::Refused(m)) if m.contains("per-cluster"))
    );
    // At the limit itself the options are accepted.
    ScaleOpts {
        custom_key_store: true,
        ..ScaleOpts::new(MAX_KEYS_PER_CLUSTER)
    }
    .check()
    .expect("the limit itself is allowed");
}

#[test]
fn custom_key_store_without_scale_is_a_usage_error() {
    let (code, _, err) = run_cli(&["--custom-key-store"]);
    assert_eq!(code, EXIT_USAGE, "{err}");
}

#[test]
fn load_generator_options_are_refused_with_scale_rather_than_ignored() {
    for extra in [
        &["--baseline"][..],
        &["--op", "encrypt"],
        &["--payload", "64"],
    ] {
        let mut args = vec!["--scale", "1"];
        args.extend_from_slice(extra);
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, EXIT_USAGE, "{extra:?}: {out}{err}");
        assert!(out.is_empty(), "{out}");
    }
}
