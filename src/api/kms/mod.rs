//! Requests and responses of the KMS operations, with AWS's JSON member names, so that the
//! socket, C and HTTP layers can serialise them unchanged; and [`Refused`], the one list of the
//! `aws kms` operations kmscks refuses. Below the operation table (`crate::ops`), which names
//! these types.

use serde::{Deserialize, Serialize};

use crate::secret::Password;
use crate::types::{
    ConnectionErrorCode, ConnectionState, CustomKeyStoreType, EncryptionAlgorithm, KeyManager,
    KeySpec, KeyState, KeyUsage, Origin, PolicyAction, RotationType, Timestamp,
};

mod agreement;
mod batch;
mod borrowed;
mod data;
mod events;
mod grants;
mod import;
mod key_pair;
mod keys;
mod mac;
mod refused;
mod rotation;
mod sign;
mod stores;
mod usage;

pub use agreement::*;
pub use batch::*;
pub use borrowed::*;
pub use data::*;
pub use events::*;
pub use grants::*;
pub use import::*;
pub use key_pair::*;
pub use keys::*;
pub use mac::*;
pub use refused::*;
pub use rotation::*;
pub use sign::*;
pub use stores::*;
pub use usage::*;
