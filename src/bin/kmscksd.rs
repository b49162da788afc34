//! `kmscksd`: the kmscks daemon. Thin: flags and config file → [`DaemonConfig`], a tracing
//! subscriber, SIGTERM/SIGINT → [`Shutdown`], then [`kmscks::daemon`] does the work.
//!
//! The process is made non-dumpable first ([`kmscks::daemon::forbid_core_dumps`]).
//!
//! Logs never include secrets: no request or reply bodies (plaintexts, ciphertexts, data keys,
//! passwords, policies) are ever logged, at any level.

/// mimalloc: the data plane hands out many small, short-lived buffers (blobs, data keys) from
/// several threads; glibc malloc spends a fifth of a batch's time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use kmscks::daemon::{Daemon, DaemonConfig, DaemonFlags, Shutdown};

/// The kmscks daemon: AWS KMS custom key stores on a Unix socket.
///
/// Every flag is also a key of the TOML config file (`--config`), in snake case; flags win
/// over the file, the file over the defaults. See kmscksd.toml.
#[derive(Parser, Debug)]
#[command(name = "kmscksd", version)]
struct Args {
    /// TOML config file (unknown keys are refused).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    options: DaemonFlags,
}

/// The flags, parsed from the command line; the help shows each option's default.
fn parse_args() -> Args {
    let matches = DaemonFlags::show_defaults(Args::command()).get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn config(args: Args) -> kmscks::Result<DaemonConfig> {
    let mut c = match &args.config {
        Some(path) => DaemonConfig::from_file(path)?,
        None => DaemonConfig::default(),
    };
    args.options.apply(&mut c);
    c.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    // Before any key is loaded: no core dump or same-uid ptrace may copy the keys out.
    if let Err(e) = kmscks::daemon::forbid_core_dumps() {
        eprintln!("kmscksd: {e}");
        return ExitCode::from(2);
    }
    let config = match config(parse_args()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kmscksd: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let shutdown = Shutdown::new();
    // Signal handlers are installed now (a signal during `bind` is kept), but their thread is
    // spawned only after `bind`: `bind` reads the passphrase and removes KMSCKS_PASSPHRASE
    // from the environment (wiping its value in place first), which is sound only while
    // this process has a single thread.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("kmscksd: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };

    let daemon = match Daemon::bind(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kmscksd: {e}");
            return ExitCode::from(1);
        }
    };
    let on_signal = shutdown.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "signal received");
            on_signal.trigger();
        }
    });
    if let Some(report) = daemon.bootstrap_report() {
        println!("{report}");
    }
    println!("kmscksd: listening on {}", daemon.socket().display());
    if let Some(addr) = daemon.http_address() {
        println!("kmscksd: AWS JSON endpoint at http://{addr}");
    }
    match daemon.serve(shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmscksd: {e}");
            ExitCode::from(1)
        }
    }
}
