//! kmscks: AWS KMS custom key stores, on one machine.
//!
//! kmscks re-implements the AWS KMS *custom key store* feature: KMS keys whose key material is
//! generated and kept inside the HSMs of a (here simulated) CloudHSM cluster that the user owns.
//!
//! # Layers
//!
//! Each layer is a module and names only the layers below it (`tests/layering.rs` holds the
//! code to this list), lowest first:
//!
//! 1. `error`, `secret`, `types` — the error table, secret containers, ids, limits, clock;
//!    `vecs` — pushing onto a vector without a store-forwarding stall, for the hot paths;
//! 2. `crypto` — blobs, key wrapping, subkeys, pooled randomness;
//! 3. `engine` — the sharded data plane (encrypt, decrypt, data keys) over `crypto`;
//! 4. `api` — the request/response types of every operation; `ops` — the operation table;
//! 5. `hsm` — the simulated CloudHSM (clusters, HSMs, users, backups, key objects);
//! 6. `kms` — KMS keys, aliases, policies, custom key stores, over `hsm`;
//! 7. `store` — the data directory (journal, snapshots, key file, lock);
//! 8. `control` — the control plane: state, transactions, keyring (composes `hsm`, `kms`,
//!    `store`); `dataplane` — mirrors the control state into the `engine`;
//! 9. `service` — [`Kms`], the handle every interface calls;
//! 10. interfaces: `protocol` (framing and codec, from the op table; knows nothing of the
//!     service), `client` ([`Client`], over `protocol`), `daemon` (`kmscksd`: serves a [`Kms`]
//!     over `protocol`); `paths` (the per-user default socket, in a private directory both
//!     check, and data directory, which `client` and `daemon` re-export) and `peer` (the
//!     `SO_PEERCRED` credentials of a socket's other end and our own uid, over `error`: how the
//!     daemon knows its callers and the client its daemon); `sockwait` (how the client waits
//!     for a reply on its socket, over nothing). The binaries (`kmscks`: the CLI and `kmscks bench`'s load
//!     generators; `kmscksd`) sit above and use only this public surface.
//!
//! # Public surface
//!
//! [`Kms`] and [`KmsConfig`] (the service in this process), [`Client`] (the same operations
//! over the daemon's socket), the request/response types ([`api`]) and the operation table
//! ([`ops`]), the errors ([`KmsError`], [`ErrorKind`], [`Result`]), [`secret`] and [`types`],
//! the wire [`protocol`], the [`daemon`], and the data-plane [`engine`] for direct use. The
//! other modules are the implementation. The `internals` feature (off by default) makes them
//! public for kmscks's own white-box tests and benches; it is not a stable API.

/// Declares an implementation module that kmscks's own white-box tests and benches reach:
/// `pub` (and hidden from the docs) with the `internals` feature, `pub(crate)` without it.
/// Without the feature its `pub` items are the white-box surface, unreachable by design.
macro_rules! internal_mod {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        #[allow(unreachable_pub)]
        pub(crate) mod $name;
    };
}

/// An item (a function, a method) that hands out an implementation type for kmscks's own
/// white-box tests: `pub` and hidden with the `internals` feature, `pub(crate)` without it.
macro_rules! internal_item {
    ($(#[$attr:meta])* pub $($item:tt)*) => {
        $(#[$attr])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub $($item)*
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        pub(crate) $($item)*
    };
}

pub mod api;
pub mod client;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod ops;
pub mod protocol;
pub mod secret;
pub mod types;

// The C API (`include/kmscks.h`): its `kmscks_*` functions are exported from the cdylib and
// staticlib; nothing in it is part of the Rust API.
#[allow(unreachable_pub)]
mod capi;

internal_mod!(control);
internal_mod!(crypto);
internal_mod!(dataplane);
internal_mod!(hsm);
internal_mod!(kms);
mod paths;
mod peer;
mod service;
mod sockwait;
mod vecs;
internal_mod!(store);

pub use client::Client;
pub use service::{BatchScratch, Kms, KmsConfig, Passphrase, QuotaConfig};

pub use error::{ErrorKind, KmsError, Result};
