//! `kmscks bench --scale N --json` as a user runs it: the binary, with its fresh-process
//! memory probe, prints one JSON object with the members issue 8 names (and a documented few
//! more), each a
//! finite number, for `keys == N`. (The report's other rules are unit tests of the binary.)
//! Speed is measured, never asserted here.

use std::process::Command;

/// The members issue 8 names: a public contract.
const CONTRACT: &[&str] = &[
    "keys",
    "create_first_us",
    "create_last_us",
    "create_p999_us",
    "dir_bytes_per_key",
    "open_ms",
    "rss_bytes_per_key",
    "gdk_random_ratio",
    "list_keys_full_ms",
];

/// Members the report adds beyond the contract (each documented in `kmscks bench --scale`'s
/// module): the same-run floors `gdk_random_ratio` is judged against.
const BEYOND: &[&str] = &["seal_random_floor_ratio", "expand_random_floor_ratio"];

#[test]
fn the_binary_reports_every_member_with_memory_measured_in_a_fresh_process() {
    let n = 600; // both 500-create windows whole
    let out = Command::new(env!("CARGO_BIN_EXE_kmscks"))
        .args([
            "bench",
            "--scale",
            &n.to_string(),
            "--duration",
            "100ms",
            "--json",
        ])
        .output()
        .expect("kmscks runs");
    let stdout = String::from_utf8(out.stdout).expect("the report is UTF-8");
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim_end()).expect("one JSON object");
    let report = v.as_object().expect("an object");
    let mut names: Vec<&str> = report.keys().map(String::as_str).collect();
    let mut contract = [CONTRACT, BEYOND].concat();
    names.sort_unstable();
    contract.sort_unstable();
    assert_eq!(names, contract);
    assert_eq!(report["keys"].as_u64(), Some(n));
    for (name, value) in report {
        let x = value.as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{name} = {value}");
    }
    // A fresh process that opens an instance grows (threads, tables): never 0.
    assert!(report["rss_bytes_per_key"].as_f64().unwrap() > 0.0, "{v}");
}
