//! `kmscksd`: the kmscks daemon. Thin: flags and config file → [`DaemonConfig`], a tracing
//! subscriber, SIGTERM/SIGINT → [`Shutdown`], then [`kmscks::daemon`] does the work.
//!
//! Logs never include secrets: no request or reply bodies (plaintexts, ciphertexts, data keys,
//! passwords, policies) are ever logged, at any level.

/// mimalloc: the data plane hands out many small, short-lived buffers (blobs, data keys) from
/// several threads; glibc malloc spends a fifth of a batch's time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kmscks::daemon::{Daemon, DaemonConfig, Shutdown};

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
    /// Data directory [default: $XDG_DATA_HOME/kmscks or ~/.local/share/kmscks].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Unix socket [default: $KMSCKS_SOCKET, $XDG_RUNTIME_DIR/kmscks.sock or /tmp/kmscks-UID.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Socket file permission bits, octal [default: 660].
    #[arg(long, value_name = "OCTAL", value_parser = parse_octal)]
    socket_mode: Option<u32>,
    /// Numeric group to give the socket file.
    #[arg(long, value_name = "GID")]
    socket_gid: Option<u32>,
    /// On an empty data directory, create a ready system with key alias/demo.
    #[arg(long)]
    bootstrap: bool,
    /// Connections served at once [default: 1024].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Close a connection that completes no request for this long [default: 300].
    #[arg(long, value_name = "SECS")]
    idle_timeout_secs: Option<u64>,
    /// Close a client whose unread replies exceed this [default: 8388608].
    #[arg(long, value_name = "BYTES")]
    max_pending_reply_bytes: Option<usize>,
    /// Longest WaitForConnection wait, ms [default: 60000].
    #[arg(long, value_name = "MS")]
    max_wait_millis: Option<u64>,
    /// Log filter, EnvFilter syntax; RUST_LOG wins when set [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Data-plane shards (pinned HSM worker threads); 0 = one per core [default: 0].
    #[arg(long, value_name = "N")]
    engine_shards: Option<usize>,
    /// Account id in ARNs [default: 111122223333].
    #[arg(long, value_name = "ID")]
    account_id: Option<String>,
    /// Region in ARNs [default: us-east-1].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8).map_err(|e| format!("'{s}' is not an octal mode: {e}"))
}

fn config(args: Args) -> kmscks::Result<DaemonConfig> {
    let mut c = match &args.config {
        Some(path) => DaemonConfig::from_file(path)?,
        None => DaemonConfig::default(),
    };
    macro_rules! over {
        ($($f:ident),*) => { $( if let Some(v) = args.$f { c.$f = v; } )* };
    }
    over!(
        data_dir,
        socket,
        socket_mode,
        max_connections,
        idle_timeout_secs,
        max_pending_reply_bytes,
        max_wait_millis,
        log_level,
        engine_shards,
        account_id,
        region
    );
    if args.socket_gid.is_some() {
        c.socket_gid = args.socket_gid;
    }
    c.bootstrap |= args.bootstrap;
    c.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    let config = match config(Args::parse()) {
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
    let on_signal = shutdown.clone();
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]);
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "signal received");
                    on_signal.trigger();
                }
            });
        }
        Err(e) => {
            eprintln!("kmscksd: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    }

    let daemon = match Daemon::bind(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kmscksd: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(report) = daemon.bootstrap_report() {
        println!("{report}");
    }
    println!("kmscksd: listening on {}", daemon.socket().display());
    match daemon.serve(shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmscksd: {e}");
            ExitCode::from(1)
        }
    }
}
