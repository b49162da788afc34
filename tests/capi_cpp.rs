//! The C and C++ user's path, end to end, as docs/c-api.md tells it: `ffi/install` puts the
//! libraries, both headers and the pkg-config files under a prefix; the one-line command builds
//! the C quickstart (`ffi/examples/quickstart.c`) against the shared library, and
//! `kmscks-static` links the static one into it; the C++ quickstart and the wrapper's tests
//! (`ffi/tests/wrapper.cpp` and `ffi/tests/wrapper_operations.cpp`) build with `-std=c++17
//! -Wall -Wextra -Werror -pedantic`; all of them run and pass, in embedded mode and (the
//! quickstarts) through a daemon. And the wrapper keeps its promise of one method per function
//! of `kmscks.h`.
//!
//! It installs the artifacts this `cargo test` built (`target/<profile>/deps/libkmscks.{so,a}`,
//! found from the test binary's path) with `ffi/install --no-build`, into a temporary prefix.
//! Skips, saying why, when `cc`, `c++` or `pkg-config` is missing.

mod daemon_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use support::Need;

/// The command docs/c-api.md (and the README) give a C user, run as written.
const COMPILE_COMMAND: &str = "cc app.c $(pkg-config --cflags --libs kmscks)";

/// The static link the docs give, with the warnings the C tests are held to.
const STATIC_COMPILE_COMMAND: &str = "cc -std=c11 -Wall -Wextra -Werror -pedantic app.c -o \
     app-static $(pkg-config --static --cflags --libs kmscks-static)";

/// How the C++ programs are compiled: C++17, and the wrapper header clean under every warning.
const CXX_FLAGS: &str = "-std=c++17 -Wall -Wextra -Werror -pedantic";

/// The wrapper's test programs, `ffi/tests/<name>.cpp`, and how many tests each has at least.
/// Each runs as `<name> SCRATCH_DIR`, prints `ok   <test>` per test passed (`FAIL <test>: …`
/// otherwise) and ends with `<name>: <n> passed`.
const CPP_TEST_PROGRAMS: &[(&str, usize)] = &[("wrapper", 10), ("wrapper_operations", 8)];

/// Functions of `kmscks.h` that have no method of their own: the wrapper calls them inside its
/// own machinery, where a C++ user never needs them.
const WRAPPER_INTERNAL: &[&str] = &[
    // kmscks::Error's aws_name() and what(), and ItemResult::aws_name().
    "kmscks_result_name",
    // kmscks::Error::last(): the detail of a failure, read right after the failed call.
    "kmscks_last_error_message",
    // detail::OutString frees every string output once it is copied.
    "kmscks_string_free",
    // detail::OutBuffer, detail::take and detail::BatchResults wipe and free every buffer.
    "kmscks_buffer_free",
    // Client::open(data_dir, OpenOptions) fills the C options from kmscks::OpenOptions.
    "kmscks_open_options_init",
    // Client::connect(socket_path, ConnectOptions) fills them from kmscks::ConnectOptions.
    "kmscks_connect_options_init_sized",
];

/// Functions whose method is not named as the function without `kmscks_` (docs/c-api.md
/// names the renames): (function, method).
const WRAPPER_RENAMED: &[(&str, &str)] = &[
    ("kmscks_get_key_state", "key_state"),
    ("kmscks_get_connection_state", "connection_state"),
    // Overloads: Client::open(data_dir, OpenOptions), Client::connect(socket_path,
    // ConnectOptions).
    ("kmscks_open_with", "open"),
    ("kmscks_connect_with", "connect"),
];

/// A prefix `ffi/install` filled, removed when the last test using it is done.
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    fn prefix(&self) -> PathBuf {
        self.dir.path().join("prefix")
    }

    /// A fresh working directory for one test's sources and programs.
    fn workdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("the temp dir is writable");
        dir
    }

    /// `sh -c line` in `dir`, with pkg-config looking in the prefix; must succeed.
    fn sh(&self, dir: &Path, line: &str) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(dir)
            .env("PKG_CONFIG_PATH", self.prefix().join("lib/pkgconfig"));
        succeed(&mut cmd, line)
    }

    /// Runs a program built against the shared library (found through LD_LIBRARY_PATH).
    fn run(&self, program: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("LD_LIBRARY_PATH", self.prefix().join("lib"));
        stdout(succeed(&mut cmd, &program.display().to_string()))
    }
}

/// The shared installation: made by the first test that needs it, dropped (and its temporary
/// prefix removed) after the last test holding it ends.
fn installed() -> Arc<Installed> {
    static SHARED: Mutex<Weak<Installed>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = shared.upgrade() {
        return i;
    }
    let i = Arc::new(install());
    *shared = Arc::downgrade(&i);
    i
}

/// Runs `ffi/install --no-build` on the libraries cargo built for this test run.
fn install() -> Installed {
    // The test binary is target[/<triple>]/<profile>/deps/capi_cpp-<hash>; cargo builds the
    // library it links, with all its crate types, into that same directory (`cargo build`
    // alone copies them up to target/<profile>/, where they may be missing or stale).
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps_dir = exe
        .parent()
        .expect("the test binary lives in <target>/<profile>/deps");
    for lib in ["libkmscks.so", "libkmscks.a"] {
        assert!(
            deps_dir.join(lib).is_file(),
            "{} was not built; cargo test builds it with the library (crate-type cdylib and \
             staticlib)",
            deps_dir.join(lib).display()
        );
    }
    let installed = Installed {
        dir: tempfile::tempdir().expect("a temp dir"),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi/install");
    let mut cmd = Command::new(&script);
    cmd.arg("--lib-dir")
        .arg(deps_dir)
        .arg("--prefix")
        .arg(installed.prefix())
        .env_remove("DESTDIR");
    succeed(&mut cmd, "ffi/install");
    installed
}

fn succeed(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: Output) -> String {
    String::from_utf8(out.stdout).expect("the programs print UTF-8")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn compilers_present() -> bool {
    support::runnable(&[
        Need::Tool("cc"),
        Need::Tool("c++"),
        Need::Tool("pkg-config"),
    ])
}

/// What a quickstart prints when all four steps and the crypto went through.
fn assert_quickstart_output(out: &str, greeting: &str) {
    for line in [
        "1. cluster cluster-",
        "(us-east-1a) and hsm-",
        "crypto user kmsuser",
        ") CONNECTED",
        "4. KMS key ",
        &format!("decrypt: \"{greeting}\" (key arn:aws:kms:"),
        "data key: 32 bytes",
        "quickstart: OK",
    ] {
        assert!(out.contains(line), "no {line:?} in the output:\n{out}");
    }
}

#[test]
fn ffi_install_puts_both_libraries_headers_and_pc_files_versioned_from_cargo_toml_in_the_prefix() {
    if !compilers_present() {
        return;
    }
    let i = installed();
    let prefix = i.prefix();
    for file in [
        "lib/libkmscks.so",
        "lib/libkmscks.a",
        "lib/pkgconfig/kmscks.pc",
        "lib/pkgconfig/kmscks-static.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} was not installed");
    }
    for header in ["kmscks.h", "kmscks.hpp"] {
        assert_eq!(
            read(prefix.join("include").join(header)),
            read(repo("include").join(header)),
            "the installed {header} is the repository's"
        );
    }
    let dir = i.workdir("pc");
    let version = stdout(i.sh(&dir, "pkg-config --modversion kmscks"));
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let static_libs = read(repo("ffi/static-libs.txt"));
    let static_libs = static_libs.split_whitespace().collect::<Vec<_>>().join(" ");
    let shared = stdout(i.sh(&dir, "pkg-config --cflags --libs kmscks"));
    assert_eq!(
        shared.split_whitespace().collect::<Vec<_>>(),
        [
            format!("-I{}/include", prefix.display()),
            format!("-L{}/lib", prefix.display()),
            "-lkmscks".to_owned()
        ]
    );
    let with_private = stdout(i.sh(&dir, "pkg-config --static --libs kmscks"));
    assert!(
        with_private.contains(&format!("-lkmscks {static_libs}")),
        "{with_private}"
    );
    let static_link = stdout(i.sh(&dir, "pkg-config --static --libs kmscks-static"));
    assert!(
        static_link.contains(&format!(
            "{}/lib/libkmscks.a {static_libs}",
            prefix.display()
        )),
        "{static_link}"
    );
}

#[test]
fn the_documented_one_line_command_builds_the_c_quickstart_which_does_the_four_steps() {
    if !compilers_present() {
        return;
    }
    // The docs show this very command.
    assert!(read(repo("docs/c-api.md")).contains(COMPILE_COMMAND));
    let i = installed();
    let dir = i.workdir("c-shared");
    std::fs::copy(repo("ffi/examples/quickstart.c"), dir.join("app.c")).expect("copy");
    i.sh(&dir, COMPILE_COMMAND);
    let program = dir.join("a.out");
    // Embedded, nothing on disk.
    let out = i.run(&program, &[]);
    assert!(out.contains("inside this process, in memory"), "{out}");
    assert_quickstart_output(&out, "hello from C");
    // Embedded on a data directory, twice: the second run opens what the first one left.
    let data = dir.join("data");
    let data = data.to_str().expect("a UTF-8 temp path");
    assert_quickstart_output(&i.run(&program, &[data]), "hello from C");
    let again = i.run(&program, &[data]);
    assert!(again.contains(&format!("data directory {data}")), "{again}");
    assert_quickstart_output(&again, "hello from C");
    // Through a daemon.
    let daemon = daemon_support::TestDaemon::start(|_| {});
    let socket = daemon.socket.to_str().expect("a UTF-8 temp path");
    let out = i.run(&program, &["--socket", socket]);
    assert!(out.contains("through kmscksd on"), "{out}");
    assert_quickstart_output(&out, "hello from C");
}

#[test]
fn pkg_config_static_links_libkmscks_a_into_the_c_quickstart() {
    if !compilers_present() {
        return;
    }
    assert!(read(repo("docs/c-api.md"))
        .contains("$(pkg-config --static --cflags --libs kmscks-static)"));
    let i = installed();
    let dir = i.workdir("c-static");
    std::fs::copy(repo("ffi/examples/quickstart.c"), dir.join("app.c")).expect("copy");
    i.sh(&dir, STATIC_COMPILE_COMMAND);
    // No LD_LIBRARY_PATH: the program must not need libkmscks.so at run time.
    let mut cmd = Command::new(dir.join("app-static"));
    cmd.env_remove("LD_LIBRARY_PATH");
    let out = stdout(succeed(&mut cmd, "app-static"));
    assert_quickstart_output(&out, "hello from C");
}

#[test]
fn the_cpp_quickstart_and_the_wrapper_tests_build_clean_with_cxx17_and_pass() {
    if !compilers_present() {
        return;
    }
    let i = installed();
    let dir = i.workdir("cpp");
    let libs = "$(pkg-config --cflags --libs kmscks)";
    // Copied next to the programs, as a user's sources would be (only the installed headers
    // are on the include path).
    std::fs::copy(
        repo("ffi/examples/quickstart.cpp"),
        dir.join("quickstart.cpp"),
    )
    .expect("copy");
    for (program, _) in CPP_TEST_PROGRAMS {
        std::fs::copy(
            repo(&format!("ffi/tests/{program}.cpp")),
            dir.join(format!("{program}.cpp")),
        )
        .expect("copy");
    }
    i.sh(
        &dir,
        &format!("c++ {CXX_FLAGS} quickstart.cpp -o quickstart-cpp {libs}"),
    );
    for (program, _) in CPP_TEST_PROGRAMS {
        i.sh(
            &dir,
            &format!("c++ {CXX_FLAGS} -pthread {program}.cpp -o {program} {libs}"),
        );
    }

    let out = i.run(&dir.join("quickstart-cpp"), &[]);
    assert_quickstart_output(&out, "hello from C++");
    assert!(
        out.contains("batch of 3 data keys: OK OK NotFoundException"),
        "{out}"
    );
    let daemon = daemon_support::TestDaemon::start(|_| {});
    let socket = daemon.socket.to_str().expect("a UTF-8 temp path");
    assert_quickstart_output(
        &i.run(&dir.join("quickstart-cpp"), &["--socket", socket]),
        "hello from C++",
    );

    for &(program, at_least) in CPP_TEST_PROGRAMS {
        let scratch = i.workdir(&format!("{program}-scratch"));
        let out = i.run(
            &dir.join(program),
            &[scratch.to_str().expect("a UTF-8 temp path")],
        );
        assert!(!out.contains("FAIL"), "{out}");
        let tests = read(repo(&format!("ffi/tests/{program}.cpp")))
            .lines()
            .filter(|l| l.starts_with("void ") && l.ends_with("() {"))
            .count();
        assert!(tests >= at_least, "{program}.cpp has {tests} tests");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("ok ")).count(),
            tests,
            "{out}"
        );
        assert!(out.contains(&format!("{program}: {tests} passed")), "{out}");
    }
}

/// The `kmscks_*` functions `kmscks.h` declares: `<type> kmscks_name(` at the start of a line
/// (as `tests/capi_c.rs` finds them).
fn header_functions(header: &str) -> Vec<&str> {
    header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && l.contains('('))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            name.starts_with("kmscks_").then_some(name)
        })
        .collect()
}

/// The code of a C++ header, line by line: comment lines dropped, `//` comments cut off.
fn code_lines(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("/*") && !t.starts_with('*')
        })
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect()
}

/// Whether `line` declares a function `name`: `name(` after a return type or specifier
/// (`std::string name(`, `static Client name(`, `T &name(`), not a call (`return name(`,
/// `x = name(`, `a.name(`, `detail::name(`, `other_name(`).
fn declares(line: &str, name: &str) -> bool {
    line.match_indices(&format!("{name}(")).any(|(at, _)| {
        let before = &line[..at];
        let prefix = before.trim_end();
        let separated = before.len() > prefix.len() || prefix.ends_with(['&', '*']);
        let last_word = prefix.rsplit([' ', '\t', '(']).next().unwrap_or("");
        separated
            && prefix.ends_with(|c: char| c.is_ascii_alphanumeric() || "_>&*".contains(c))
            && !matches!(last_word, "return" | "throw" | "else" | "new")
    })
}

#[test]
fn every_function_of_the_header_has_a_method_in_the_cpp_wrapper() {
    let header = read(repo("include/kmscks.h"));
    let wrapper = read(repo("include/kmscks.hpp"));
    let functions = header_functions(&header);
    assert!(
        functions.len() >= 60,
        "found only {} functions in the header: {functions:?}",
        functions.len()
    );
    // The lists above name functions of the header (a function removed leaves no stale entry).
    let listed = WRAPPER_INTERNAL
        .iter()
        .copied()
        .chain(WRAPPER_RENAMED.iter().map(|&(f, _)| f));
    for f in listed {
        assert!(
            functions.contains(&f),
            "{f} is listed, but kmscks.h declares no {f}"
        );
    }
    let code = code_lines(&wrapper);
    let mut missing = Vec::new();
    for &f in &functions {
        // Every function is called, internal ones included.
        let call = format!("{f}(");
        if !code.iter().any(|l| l.contains(&call)) {
            missing.push(format!("{f}: never called"));
            continue;
        }
        if WRAPPER_INTERNAL.contains(&f) {
            continue;
        }
        let method = match WRAPPER_RENAMED.iter().find(|(c, _)| *c == f) {
            Some(&(_, m)) => m,
            None => f.strip_prefix("kmscks_").unwrap_or(f),
        };
        if !code.iter().any(|l| declares(l, method)) {
            missing.push(format!("{f}: no method {method}()"));
        }
    }
    assert!(
        missing.is_empty(),
        "include/kmscks.hpp promises one method per function of kmscks.h (docs/c-api.md); \
         add them, or list a function the wrapper only uses inside in WRAPPER_INTERNAL, with \
         why: {missing:#?}"
    );
}
