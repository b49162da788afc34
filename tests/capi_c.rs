//! The C test programs of `ffi/tests/` — written only from `include/kmscks.h`, as a C user
//! would — compiled by the system C compiler (`-std=c11 -Wall -Wextra -Werror -pedantic`)
//! against both library kinds and run in both modes, so that `cargo test` proves the C
//! library works for C, not only for Rust:
//! - the shared library, `libkmscks.so`, linked with `-L<dir> -lkmscks -Wl,-rpath,<dir>`;
//! - the static library, `libkmscks.a`, plus the native libraries Rust's standard library
//!   needs, listed once in `ffi/static-libs.txt` (what `cargo rustc --lib -- --print
//!   native-static-libs` prints; the install script reads the same file);
//! - embedded (`kmscks_open` on a fresh data directory) and through a daemon
//!   (`kmscks_connect` to a `TestDaemon`), each program taking its mode from argv.
//!
//! The libraries are the ones cargo built for this test run, next to the test binary
//! (`target/<profile>/deps/`, else `target/<profile>/`): cargo builds the crate's `cdylib` and
//! `staticlib` with the `lib` this test links. Without a C compiler (`$CC`, else `cc`) the C
//! tests skip with a printed reason; without the libraries they fail, naming the missing file.
//!
//! `ffi/run-sanitized` runs the same programs under AddressSanitizer, UndefinedBehaviorSanitizer
//! and LeakSanitizer.

mod daemon_support;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use daemon_support::TestDaemon;

/// The repository root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How long one C program may run. Generous (a busy machine, a debug build, a daemon hashing
/// passwords at full cost); a program still running then is hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The flags every C test program must compile cleanly with.
const CFLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-pthread",
    "-g",
];

/// Which library a program is linked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lib {
    Shared,
    Static,
}

/// How a program reaches kmscks.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Embedded,
    Daemon,
}

/// The C compiler, or None (and why) when the machine has none.
fn compiler() -> Result<String, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(cc),
        Ok(o) => Err(format!("`{cc} --version` failed: {}", o.status)),
        Err(e) => Err(format!("no C compiler `{cc}`: {e}")),
    }
}

/// The C compiler; None after printing why the test is skipped.
fn compiler_or_skip() -> Option<String> {
    match compiler() {
        Ok(cc) => Some(cc),
        Err(why) => {
            println!("SKIPPED: the C tests need a C compiler ({why}); set CC or install cc");
            None
        }
    }
}

/// Where cargo put the libraries of this build. The test binary is `<profile>/deps/capi_c-…`;
/// cargo writes the crate's `cdylib` and `staticlib` to `deps/` whenever it builds the crate
/// for this test, and copies them up to `<profile>/` only when the library itself is the
/// target (`cargo build --lib`), so `deps/` is the fresh one and `<profile>/` the fallback.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", exe.display()));
    let candidates = [Some(deps), deps.parent()];
    let has_both = |dir: &Path| {
        ["libkmscks.so", "libkmscks.a"]
            .iter()
            .all(|name| dir.join(name).is_file())
    };
    let found = candidates.into_iter().flatten().find(|dir| has_both(dir));
    match found {
        Some(dir) => dir.to_path_buf(),
        None => panic!(
            "libkmscks.so and libkmscks.a are missing from {} and its parent: the C tests link \
             the libraries cargo builds beside the test binary (run `cargo build --lib`, or the \
             whole `cargo test`)",
            deps.display()
        ),
    }
}

/// The native libraries a program linking `libkmscks.a` needs, from `ffi/static-libs.txt`.
fn static_libs() -> Vec<String> {
    let path = Path::new(ROOT).join("ffi/static-libs.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let libs: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    assert!(
        !libs.is_empty() && libs.iter().all(|l| l.starts_with("-l")),
        "{} must hold one line of -l flags, not {text:?}",
        path.display()
    );
    libs
}

/// One build of each (program, library kind) per test process, shared by the tests that run
/// it (they run in parallel; the second waits for the first's compile).
type Builds = Mutex<HashMap<(&'static str, Lib), Arc<OnceLock<PathBuf>>>>;

/// `ffi/tests/<program>.c` compiled and linked against `lib`; panics with the compiler's
/// output when it does not compile warning-free.
fn built(cc: &str, program: &'static str, lib: Lib) -> PathBuf {
    static BUILDS: OnceLock<Builds> = OnceLock::new();
    let cell = BUILDS
        .get_or_init(Default::default)
        .lock()
        .expect("no test panics while holding the builds lock")
        .entry((program, lib))
        .or_default()
        .clone();
    cell.get_or_init(|| compile(cc, program, lib)).clone()
}

fn compile(cc: &str, program: &str, lib: Lib) -> PathBuf {
    let libs = lib_dir();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("capi_c")
        .join(format!("{lib:?}").to_lowercase());
    std::fs::create_dir_all(&out_dir).expect("target tmp dir is writable");
    let out = out_dir.join(program);
    // Written under a private name, then renamed: concurrent `cargo test` runs never see a
    // half-written binary.
    let tmp = out_dir.join(format!("{program}.{}.tmp", std::process::id()));
    let source = Path::new(ROOT)
        .join("ffi/tests")
        .join(format!("{program}.c"));
    let mut cmd = Command::new(cc);
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(Path::new(ROOT).join("include"))
        .arg(&source)
        .arg("-o")
        .arg(&tmp);
    match lib {
        Lib::Shared => {
            cmd.arg("-L")
                .arg(&libs)
                .arg("-lkmscks")
                .arg(format!("-Wl,-rpath,{}", libs.display()));
        }
        Lib::Static => {
            cmd.arg(libs.join("libkmscks.a")).args(static_libs());
        }
    }
    let o = cmd.output().unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{} does not compile cleanly against the {lib:?} library:\n{cmd:?}\n{}{}",
        source.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).expect("rename the built program into place");
    out
}

/// A program's output, for assertion messages.
fn shown(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Kills a child process that runs longer than [`RUN_TIMEOUT`], unless dropped first.
struct Watchdog {
    done: mpsc::Sender<()>,
    fired: mpsc::Receiver<()>,
}

impl Watchdog {
    fn new(child: &std::process::Child) -> Watchdog {
        let pid = child.id().to_string();
        let (done, wait) = mpsc::channel::<()>();
        let (fire, fired) = mpsc::channel();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(RUN_TIMEOUT) {
                // The child is not reaped before its waiter returns, so the pid is its own.
                let _ = Command::new("kill").arg("-KILL").arg(&pid).status();
                let _ = fire.send(());
            }
        });
        Watchdog { done, fired }
    }

    /// Panics when the watchdog killed the child.
    fn check(self, what: &str) {
        drop(self.done);
        if self.fired.recv().is_ok() {
            panic!("{what} still ran after {RUN_TIMEOUT:?}: killed");
        }
    }
}

/// The number of checks a program reports in its last line, `<name> (<mode>): N checks
/// passed`; panics (showing the output) when it failed or did not report.
fn checks_passed(o: &Output, what: &str) -> u64 {
    assert!(o.status.success(), "{what} failed:\n{}", shown(o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" checks passed"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("{what} did not report its checks:\n{}", shown(o)))
}

/// The command that runs the built program `bin` with the fresh library. Its rpath names
/// that library, but the dynamic loader takes cargo's LD_LIBRARY_PATH first, which holds
/// `<profile>/`: an older `cargo build`'s copy there would be the one tested (and one of an
/// older protocol version would fail to talk to the daemon).
fn run_built(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("LD_LIBRARY_PATH", lib_dir());
    cmd
}

/// Builds `program` against `lib`, runs it in `mode` on fresh state, and checks how many
/// checks passed (at least `min`, so that a program that stops early does not pass).
fn run(program: &'static str, lib: Lib, mode: Mode, min: u64) {
    let Some(cc) = compiler_or_skip() else {
        return;
    };
    let bin = built(&cc, program, lib);
    let what = format!("{program}.c ({lib:?} library, {mode:?})");
    let mut cmd = run_built(&bin);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dir = tempfile::tempdir().expect("a temp dir");
    let daemon = match mode {
        Mode::Embedded => {
            cmd.arg("embedded").arg(dir.path().join("data"));
            None
        }
        Mode::Daemon => {
            let d = TestDaemon::start(|_| {});
            cmd.arg("daemon").arg(&d.socket);
            Some(d)
        }
    };
    let child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    let watchdog = Watchdog::new(&child);
    let o = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {what}: {e}"));
    watchdog.check(&what);
    drop(daemon);
    let n = checks_passed(&o, &what);
    assert!(
        n >= min,
        "{what} passed only {n} checks, fewer than the {min} it makes:\n{}",
        shown(&o)
    );
    println!("{what}: {n} checks passed");
}

/// Four tests per C program: each library kind, each mode.
macro_rules! c_program_tests {
    ($($(#[doc = $doc:literal])* $program:literal, at least $min:literal checks => $spec:ident;)*) => {$(
        $(#[doc = $doc])*
        mod $spec {
            use super::*;

            #[test]
            fn in_process_with_the_shared_library() {
                run($program, Lib::Shared, Mode::Embedded, $min);
            }

            #[test]
            fn in_process_with_the_static_library() {
                run($program, Lib::Static, Mode::Embedded, $min);
            }

            #[test]
            fn through_the_daemon_with_the_shared_library() {
                run($program, Lib::Shared, Mode::Daemon, $min);
            }

            #[test]
            fn through_the_daemon_with_the_static_library() {
                run($program, Lib::Static, Mode::Daemon, $min);
            }
        }
    )*};
}

c_program_tests! {
    /// flow.c: the four-step flow (cluster, HSMs, initialized; kmsuser; store, connected; a
    /// key in it), then every function of the header with its outputs checked.
    "flow", at least 200 checks => the_four_step_flow_and_every_function_work_from_c;
    /// errors.c: NULLs, bad UTF-8, unknown ids, disabled keys, disconnected and failing
    /// stores, damaged ciphertexts, sizes, the free functions; refused calls change nothing.
    "errors", at least 250 checks => every_error_path_reachable_from_c_answers_its_code;
    /// threads.c: 8 threads on one handle, data-key round trips, per-thread last errors.
    "threads", at least 8000 checks => one_handle_serves_eight_c_threads_at_once;
    /// fork.c: a forked child refuses its inherited handle, closes it, and opens kmscks
    /// again once the parent has closed its own; the parent decrypts what the child made.
    "fork", at least 32 checks => a_forked_child_closes_its_handle_and_opens_kmscks_again;
}

/// restart.c against `lib`: the harness stops and restarts the daemon when the program asks
/// (one line each way on its stdin/stdout).
fn run_restart(lib: Lib) {
    let Some(cc) = compiler_or_skip() else {
        return;
    };
    let bin = built(&cc, "restart", lib);
    let what = format!("restart.c ({lib:?} library)");
    let mut daemon = TestDaemon::start(|_| {});
    let mut child = run_built(&bin)
        .arg("daemon")
        .arg(&daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let watchdog = Watchdog::new(&child);
    let mut to_program = child.stdin.take().expect("piped stdin");
    let from_program = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut transcript = Vec::new();
    // Ends when the program closes stdout (it exited, or failed a check).
    for line in from_program.lines() {
        let line = line.expect("read the program's stdout");
        let answer = match line.as_str() {
            "STOP" => {
                daemon.stop().expect("the daemon stops cleanly");
                Some("STOPPED")
            }
            "START" => {
                daemon.restart(|_| {});
                Some("STARTED")
            }
            _ => None,
        };
        transcript.push(line);
        if let Some(answer) = answer {
            // A program that failed a check has exited: it will not read the answer.
            let _ = writeln!(to_program, "{answer}");
        }
    }
    drop(to_program);
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("wait for {what}: {e}"));
    watchdog.check(&what);
    let o = Output {
        status,
        stdout: transcript.join("\n").into_bytes(),
        stderr: stderr_reader.join().unwrap_or_default().into_bytes(),
    };
    assert_eq!(
        transcript
            .iter()
            .filter(|l| *l == "STOP" || *l == "START")
            .count(),
        2,
        "{what} did not ask for the stop and the start:\n{}",
        shown(&o)
    );
    let n = checks_passed(&o, &what);
    assert!(n >= 35, "{what} passed only {n} checks:\n{}", shown(&o));
    println!("{what}: {n} checks passed");
}

#[test]
fn a_c_handle_answers_io_while_the_daemon_is_down_and_works_again_after_its_restart_shared() {
    run_restart(Lib::Shared);
}

#[test]
fn a_c_handle_answers_io_while_the_daemon_is_down_and_works_again_after_its_restart_static() {
    run_restart(Lib::Static);
}

#[test]
fn every_function_of_the_header_is_called_by_a_c_test_program() {
    let header = std::fs::read_to_string(Path::new(ROOT).join("include/kmscks.h"))
        .expect("include/kmscks.h is readable");
    let mut sources = String::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("ffi/tests")).expect("ffi/tests") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "c" || e == "h") {
            sources += &std::fs::read_to_string(&path).expect("a readable C source");
        }
    }
    // Declarations: `<type> kmscks_name(` at the start of a line (after the return type).
    let functions: Vec<&str> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && l.contains('('))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            name.starts_with("kmscks_").then_some(name)
        })
        .collect();
    assert!(
        functions.len() >= 40,
        "found only {} functions in the header: {functions:?}",
        functions.len()
    );
    let uncalled: Vec<&&str> = functions
        .iter()
        .filter(|f| !sources.contains(&format!("{f}(")))
        .collect();
    assert!(uncalled.is_empty(), "no C test program calls {uncalled:?}");
}

#[test]
fn the_static_and_the_shared_builds_link_different_library_kinds() {
    let Some(cc) = compiler_or_skip() else {
        return;
    };
    // The shared build needs libkmscks.so at run time; the static one carries the library.
    let needs_so = |lib| {
        let bin = built(&cc, "flow", lib);
        let bytes = std::fs::read(&bin).expect("the built program is readable");
        bytes.windows(12).any(|w| w == b"libkmscks.so")
    };
    assert!(
        needs_so(Lib::Shared),
        "the shared build does not name libkmscks.so"
    );
    assert!(
        !needs_so(Lib::Static),
        "the static build still names libkmscks.so"
    );
}
