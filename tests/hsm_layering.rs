//! The simulated CloudHSM sits below KMS and the control plane: no file under `src/hsm/`
//! names a module above it.

use std::fs;
use std::path::Path;

/// Modules above `hsm` (or beside it with I/O) that `hsm` must never name.
const ABOVE: [&str; 10] = [
    "crate::kms",
    "crate::control",
    "crate::service",
    "crate::store",
    "crate::dataplane",
    "crate::engine",
    "crate::protocol",
    "crate::client",
    "crate::daemon",
    "crate::cli",
];

#[test]
fn no_file_under_src_hsm_names_a_higher_layer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/hsm");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for above in ABOVE {
                assert!(
                    !code.contains(above),
                    "{}:{}: names {above}: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} files under {}",
        dir.display()
    );
}
