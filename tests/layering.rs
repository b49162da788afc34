//! The layers of the crate, held to the code: every `crate::…` path in `src/` (outside tests
//! and comments) must name a module its layer may use, and the allowed uses form no cycle.
//!
//! Why a test: the C library, the HTTP endpoint and the fault verbs are all written against
//! the op table and the service handle; an upward import (the simulated HSM naming KMS, the
//! wire protocol naming the service) would quietly make them depend on everything above. The
//! table below is the layering `lib.rs` documents; a new module must be placed in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each unit (a top-level module, or a submodule that is a layer of its own) and the units it
/// may name. Lowest layers first. A unit may always name itself.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("vecs", &[]),
    ("secret", &["error"]),
    ("types", &["error", "secret"]),
    ("crypto", &["error", "secret", "types"]),
    ("engine", &["error", "secret", "types", "crypto"]),
    ("api", &["error", "secret", "types"]),
    ("ops", &["error", "secret", "types", "api"]),
    ("hsm", &["error", "secret", "types", "crypto", "api"]),
    (
        "kms",
        &["error", "secret", "types", "crypto", "api", "ops", "hsm"],
    ),
    ("peer", &["error"]),
    ("store", &["error", "secret", "types", "crypto", "peer"]),
    (
        "control",
        &[
            "error", "secret", "types", "crypto", "api", "ops", "hsm", "kms", "store", "peer",
        ],
    ),
    (
        "dataplane",
        &[
            "error", "secret", "types", "crypto", "engine", "hsm", "kms", "control",
        ],
    ),
    (
        "service",
        &[
            "error",
            "secret",
            "types",
            "crypto",
            "engine",
            "api",
            "ops",
            "hsm",
            "kms",
            "store",
            "control",
            "dataplane",
            "vecs",
        ],
    ),
    ("paths", &["error", "peer"]),
    ("sockwait", &[]),
    ("protocol", &["error", "secret", "types", "api", "ops"]),
    (
        "client",
        &[
            "error", "secret", "types", "crypto", "api", "ops", "protocol", "peer", "paths",
            "sockwait",
        ],
    ),
    (
        "daemon",
        &[
            "error", "secret", "types", "api", "ops", "protocol", "peer", "paths", "engine",
            "service", "kms", "vecs", "sockwait",
        ],
    ),
    (
        "capi",
        &[
            "error", "secret", "types", "api", "ops", "service", "client",
        ],
    ),
];

/// Names re-exported at the crate root, and the unit each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Kms", "service"),
    ("KmsConfig", "service"),
    ("Passphrase", "service"),
    ("QuotaConfig", "service"),
    ("BatchScratch", "service"),
    ("Client", "client"),
    ("KmsError", "error"),
    ("ErrorKind", "error"),
    ("Result", "error"),
    // `err!` is `#[macro_export]`ed from error.rs.
    ("err", "error"),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (binaries are the top layer and may name anything).
fn library_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entries are readable").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            library_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to `src/`, e.g. `hsm/api.rs` → `["hsm", "api"]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("files are under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The unit a module path belongs to: the longest prefix that is a unit of [`LAYERS`].
fn unit_of(path: &[String]) -> Option<&'static str> {
    (1..=path.len()).rev().find_map(|n| {
        let joined = path[..n].join("::");
        LAYERS
            .iter()
            .map(|(u, _)| *u)
            .find(|u| *u == joined.as_str())
    })
}

/// The source without comments, string literals and `#[cfg(test)]` items.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    strip_cfg_test(&out)
}

/// Removes every item that follows a `#[cfg(test)]` attribute (a `mod … { … }` block or a
/// `mod …;` declaration).
fn strip_cfg_test(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let semi = item.find(';');
        let brace = item.find('{');
        match (semi, brace) {
            (Some(s), Some(b)) if s < b => rest = &item[s + 1..],
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &item[end..];
            }
            (Some(s), None) => rest = &item[s + 1..],
            (None, None) => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// Every module path a piece of code names through `crate::`, including inside
/// `use crate::{a::b, c, d::{e, f}}` groups, each as its segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `mycrate::`
        }
        if rest.starts_with('{') {
            let group = brace_group(rest);
            for item in split_top_level(&group[1..group.len() - 1]) {
                found.push(segments(item.trim()));
            }
        } else {
            found.push(segments(rest));
        }
    }
    found
}

fn brace_group(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..=i];
                }
            }
            _ => {}
        }
    }
    s
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The leading `a::b::c` identifiers of a path.
fn segments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        rest = &rest[end..];
        if let Some(next) = rest.strip_prefix("::") {
            rest = next;
        } else {
            break;
        }
    }
    out
}

/// The unit a `crate::` path names, or `None` for the crate root's own macros and items.
fn named_unit(path: &[String]) -> Option<&'static str> {
    let first = path.first()?;
    if let Some((_, unit)) = ROOT_REEXPORTS.iter().find(|(name, _)| name == first) {
        return Some(unit);
    }
    unit_of(path)
}

/// (file, its unit, the unit it names) for every use not allowed by [`LAYERS`]; files whose
/// module is in no unit are reported with an empty unit.
fn violations() -> Vec<(String, String, String)> {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(u, deps)| (*u, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    library_files(&src_dir(), &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let module = module_path(&file);
        if module.is_empty() || module.last().is_some_and(|m| m == "tests") {
            continue; // lib.rs declares the modules; `tests.rs` files are test-only
        }
        let rel = file.strip_prefix(src_dir().parent().unwrap()).unwrap();
        let rel = rel.display().to_string();
        let Some(unit) = unit_of(&module) else {
            out.push((rel, String::new(), module.join("::")));
            continue;
        };
        let src = fs::read_to_string(&file).expect("source files are UTF-8");
        let mut named = BTreeSet::new();
        for path in crate_paths(&code_only(&src)) {
            if let Some(target) = named_unit(&path) {
                if target != unit && !allowed[unit].contains(target) {
                    named.insert(target);
                }
            } else if !path.is_empty() {
                named.insert("<unplaced>");
                out.push((
                    rel.clone(),
                    unit.to_owned(),
                    format!("<unplaced {}>", path.join("::")),
                ));
            }
        }
        for target in named.into_iter().filter(|t| *t != "<unplaced>") {
            out.push((rel.clone(), unit.to_owned(), target.to_owned()));
        }
    }
    out
}

#[test]
fn no_library_module_names_a_module_above_its_layer() {
    let found = violations();
    let report: Vec<String> = found
        .iter()
        .map(|(file, unit, target)| {
            if unit.is_empty() {
                format!("{file}: module {target} belongs to no layer of tests/layering.rs")
            } else if let Some(path) = target.strip_prefix("<unplaced ") {
                let path = path.trim_end_matches('>');
                format!("{file} (layer {unit}) names crate::{path}, which is in no layer")
            } else {
                format!("{file} (layer {unit}) names crate::{target}, which {unit} may not use")
            }
        })
        .collect();
    assert!(
        report.is_empty(),
        "upward or unplaced imports:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_layer_table_has_no_cycle_and_names_only_earlier_layers() {
    let mut seen = BTreeSet::new();
    for (unit, deps) in LAYERS {
        for dep in *deps {
            assert!(
                seen.contains(dep),
                "layer {unit} may use {dep}, which is not listed before it (a cycle or a typo)"
            );
        }
        assert!(seen.insert(*unit), "layer {unit} listed twice");
    }
}

#[test]
fn the_checker_sees_grouped_nested_and_root_imports() {
    let code =
        "use crate::{hsm::api::X, kms::{a, b}, err};\nfn f() { crate::service::Kms::x(); }\n\
                // crate::daemon in a comment\n#[cfg(test)]\nmod tests { use crate::cli; }";
    let units: BTreeSet<_> = crate_paths(&code_only(code))
        .iter()
        .filter_map(|p| named_unit(p))
        .collect();
    assert_eq!(
        units,
        ["error", "hsm", "kms", "service"]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
}
