//! The committed C header, `include/kmscks.h`, is exactly what `build.rs` generates from the
//! sources (src/capi and the error table): a C user reads the committed file, so it must never
//! drift from the library it describes.
//!
//! After changing the C API, run `KMSCKS_BLESS=1 cargo test --test capi_header` to rewrite the
//! committed header, and review the diff: it is the change C users will see.

use std::path::Path;

/// The header `build.rs` generated for this build.
const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/kmscks.h"));

#[test]
fn the_committed_header_is_what_the_sources_generate() {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/kmscks.h");
    if std::env::var_os("KMSCKS_BLESS").is_some() {
        std::fs::write(&committed_path, GENERATED).expect("include/kmscks.h is writable");
        println!("wrote {}", committed_path.display());
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != GENERATED {
        let first = committed
            .lines()
            .zip(GENERATED.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(GENERATED.lines().count()));
        panic!(
            "include/kmscks.h differs from what the sources generate (first at line {}):\n  \
             committed: {:?}\n  generated: {:?}\nRun `KMSCKS_BLESS=1 cargo test --test \
             capi_header` and review the diff.",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            GENERATED.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn the_header_carries_the_package_version() {
    let [major, minor, patch] = ["MAJOR", "MINOR", "PATCH"].map(|part| {
        let line = GENERATED
            .lines()
            .find(|l| l.starts_with(&format!("#define KMSCKS_VERSION_{part} ")))
            .unwrap_or_else(|| panic!("no KMSCKS_VERSION_{part} in the header"));
        line.rsplit(' ').next().unwrap().to_owned()
    });
    assert_eq!(
        format!("{major}.{minor}.{patch}"),
        env!("CARGO_PKG_VERSION")
    );
    assert!(GENERATED.contains(&format!(
        "#define KMSCKS_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
}
