//! `kmscksd`: the daemon serving kmscks over a Unix socket.
//!
//! [`Daemon::bind`] binds the socket (see `listener`), opens the data directory and, when
//! asked, bootstraps a ready system ([`bootstrap`]); [`Daemon::serve`] runs the mio event
//! loops (`event_loops` of them) until a [`Shutdown`] handle is triggered. [`run`] does both.
//!
//! The socket is created with its final mode (default 0600) and, by default, in a private
//! per-user directory (`listener`, `crate::paths`). Each connection must begin with a Hello
//! (anything else first: a protocol error and the close) and acts as the principal of its
//! peer's uid (`identity`); its frames are decoded with [`crate::protocol`] and answered by the
//! engine, with consecutive data-plane requests of one read batched into one engine call. No
//! uid can starve another: connections and memory are counted per uid (`quota`), a client that
//! does not read is stopped being read (back-pressure), and each connection gets a bounded
//! amount of work per event-loop turn (`event_loop::turn`); `docs/protocol.md` states the rules.
//!
//! Never logged: request and reply bodies (plaintexts, ciphertexts, data keys, passwords, key
//! policies, trust anchors), whatever their size. Logged: peer uid/gid/pid and principal,
//! connection open/close and why, protocol errors (kind and message, which never quote body
//! bytes), limits hit.

pub mod bootstrap;
mod config;
mod conn;
mod control_pace;
mod control_thread;
mod dispatch;
pub mod echo;
mod event_loop;
mod harden;
mod http;
mod identity;
mod listener;
mod loops;
mod priority;
mod quota;
mod turns;
pub mod wake;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The per-user default data directory (`$XDG_DATA_HOME/kmscks`, else
/// `~/.local/share/kmscks`, else `./kmscks-data`): the default of [`DaemonConfig::data_dir`].
pub use crate::paths::default_data_dir;
pub use bootstrap::Bootstrap;
pub use config::{DaemonConfig, DaemonFlags};
pub use harden::forbid_core_dumps;
pub use http::{amz_date as sigv4_amz_date, authorization as sigv4_authorization};

use crate::err;
use crate::error::Result;
use crate::{Kms, KmsConfig, Passphrase};

/// A handle that stops a running daemon: clone it, give one to [`run`], trigger the other
/// (from a signal handler thread, a test…). Triggering before the loop starts stops it as soon
/// as it starts.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    /// Every event loop's waker.
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// A new, untriggered handle.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the daemon to stop: stop accepting, finish in-flight work, flush replies, remove
    /// the socket file.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for w in wakers {
            let _ = w.wake();
        }
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    fn add_waker(&self, waker: Arc<mio::Waker>) {
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(waker);
        // A trigger that came before the waker existed is seen by the loop's first check.
    }
}

/// A daemon whose socket is bound and whose data directory is open, not yet serving.
#[derive(Debug)]
pub struct Daemon {
    config: DaemonConfig,
    kms: Kms,
    listener: listener::Listener,
    /// The AWS JSON endpoint and who its requests act as, when `http` is configured.
    http: Option<(http::HttpEndpoint, http::Identities)>,
    bootstrap: Option<Bootstrap>,
}

impl Daemon {
    /// Validates `config`, binds the socket, opens the data directory, and bootstraps when
    /// `config.bootstrap` is set.
    ///
    /// Errors: `ValidationException` for a bad config; `StoreInUseException` when a live
    /// daemon answers on the socket or another process holds the data directory; the data
    /// directory's own errors (`StorageException`…).
    ///
    /// The passphrase sealing the key files is read first
    /// ([`Passphrase::take_from_environment`]: `KMSCKS_PASSPHRASE_FILE`, else
    /// `KMSCKS_PASSPHRASE`, which is then removed from the environment; without one, refused
    /// when `require_passphrase` is set, else a warning): call this before the process spawns
    /// any thread (`kmscksd` does).
    pub fn bind(config: DaemonConfig) -> Result<Daemon> {
        config.validate()?;
        let passphrase = take_passphrase(&config)?;
        let listener =
            listener::Listener::bind(&config.socket, config.socket_mode, config.socket_gid)?;
        let http = match config.http_address()? {
            Some(addr) => Some((
                http::HttpEndpoint::bind(addr)?,
                http::Identities::new(
                    &config.http_root_access_keys,
                    &config.http_credentials,
                    &config.http_hosts,
                    &config.scope(),
                )?,
            )),
            None => None,
        };
        let kms = Kms::open_with(
            &config.data_dir,
            KmsConfig {
                scope: config.scope(),
                event_log_file_bytes: config.event_log_file_bytes,
                event_log_retain_days: config.event_log_retain_days,
                data_plane_event_interval: (config.data_plane_event_interval_secs > 0)
                    .then(|| std::time::Duration::from_secs(config.data_plane_event_interval_secs)),
                generate_random_principals: config
                    .generate_random_principals(identity::daemon_uid())?,
                engine: config.engine(),
                passphrase,
                quotas: config.quotas(),
                cluster_transition: std::time::Duration::from_millis(config.cluster_transition_ms),
                ..KmsConfig::default()
            },
        )?;
        let bootstrap = if config.bootstrap {
            Some(bootstrap::bootstrap(&kms, listener.path())?)
        } else {
            None
        };
        Ok(Daemon {
            config,
            kms,
            listener,
            http,
            bootstrap,
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        self.listener.path()
    }

    /// The address of the AWS JSON endpoint over HTTP, when `http` is configured (with port
    /// 0, the port the system chose).
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        self.http
            .as_ref()
            .map(|(endpoint, _)| endpoint.local_addr())
    }

    /// What bootstrap did, when it was asked for.
    pub fn bootstrap_report(&self) -> Option<&Bootstrap> {
        self.bootstrap.as_ref()
    }

    /// The engine handle (account root).
    pub fn kms(&self) -> &Kms {
        &self.kms
    }

    /// Serves until `shutdown` is triggered; then stops accepting, finishes in-flight work,
    /// flushes replies, removes the socket file and closes the data directory.
    pub fn serve(self, shutdown: Shutdown) -> Result<()> {
        tracing::info!(socket = %self.listener.path().display(), data_dir = %self.config.data_dir.display(), "serving");
        let control = control_thread::ControlThread::start_paced(
            self.config.control_nice,
            self.config.control_busy_percent,
        )?;
        let http = match self.http {
            Some((endpoint, ids)) => {
                tracing::info!(address = %endpoint.local_addr(), "serving AWS JSON over HTTP");
                let limits = http::Limits {
                    quotas: quota::Quotas::new(&self.config, crate::peer::effective_uid()),
                    idle_timeout: std::time::Duration::from_secs(self.config.idle_timeout_secs),
                    max_pending_answers: self.config.max_pending_reply_bytes,
                };
                Some(endpoint.spawn(
                    self.kms.clone(),
                    limits,
                    ids,
                    shutdown.clone(),
                    control.queue(),
                )?)
            }
            None => None,
        };
        let (loops, _shared) = loops::build(
            self.config.event_loop_count(),
            self.listener,
            self.kms,
            self.config,
            &shutdown,
            &control.queue(),
        )?;
        let out = loops::serve(loops, &shutdown);
        if let Some(thread) = http {
            // It sees the trigger within its tick.
            let _ = thread.join();
        }
        // Every loop is gone: the control threads end once what the loops queued has run.
        control.join();
        // The event loops (and with them the last engine handle) are gone: every commit
        // was already durable (journal fsync per change); dropping joins the background worker
        // and unlocks the data directory.
        tracing::info!("stopped");
        out
    }
}

/// Reads the passphrase that seals the key files, once: from the file named by
/// `KMSCKS_PASSPHRASE_FILE`, else from `KMSCKS_PASSPHRASE`, whose value is then wiped in
/// place and the variable removed (children do not inherit it, `std::env` and
/// `/proc/<pid>/environ` no longer show it; it was visible there from `exec` until now, and
/// whatever started the daemon may keep a copy — the file has neither weakness). Without a
/// passphrase: refused when `require_passphrase` is set, else a warning naming what is stored
/// in the clear.
///
/// Changing the environment is sound only while no other thread reads it through the C
/// library. This runs at the very start of [`Daemon::bind`], which `kmscksd` calls from
/// `main` before it spawns any thread (its signal thread is started after `bind` returns);
/// kmscks itself starts its threads (engine shards, background worker, compaction) only later,
/// in `Kms::open_with`. An embedding program calling `bind` with threads of its own running
/// must not have them call `getenv`/`setenv` meanwhile.
fn take_passphrase(config: &DaemonConfig) -> Result<Passphrase> {
    const ENV: &str = Passphrase::ENV;
    const FILE_ENV: &str = Passphrase::FILE_ENV;
    const KEYS_DIR: &str = Passphrase::KEY_FILES_DIR;
    let passphrase = Passphrase::take_from_environment()?;
    if !passphrase.is_given() {
        if config.require_passphrase {
            return Err(err!(
                ValidationException,
                "require_passphrase is set but no passphrase was given: set \
                 {FILE_ENV} to a file (owned by this uid, mode 0600) holding the \
                 passphrase, or {ENV}"
            ));
        }
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            "no passphrase: the wrapping keys in {}/{KEYS_DIR}/ (the KMS master key, which \
             wraps default-store key material and key store passwords and authenticates the \
             journal and snapshots, and each cluster's key, which wraps its HSM key objects \
             and user password hashes) are stored in the clear, readable by anyone who can \
             read that directory. Set {FILE_ENV} to a file (owned by this uid, mode \
             0600) holding a passphrase (or {ENV}), and require_passphrase \
             (--require-passphrase) to refuse to start without one",
            config.data_dir.display()
        );
    }
    Ok(passphrase)
}

/// Binds, bootstraps when configured (logging what it made), and serves until `shutdown`.
pub fn run(config: DaemonConfig, shutdown: Shutdown) -> Result<()> {
    let daemon = Daemon::bind(config)?;
    if let Some(b) = daemon.bootstrap_report() {
        tracing::info!("{b}");
    }
    daemon.serve(shutdown)
}
