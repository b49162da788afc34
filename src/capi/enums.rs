//! The C enums of AWS's states: a key's state, a custom key store's connection state and its
//! connection error code, with constants `KMSCKS_<TYPE>_<AWS NAME>`.
//!
//! The Rust enums (`types::state`, made by `aws_enum!`) are the source; each C enum here is
//! held to its Rust enum by an exhaustive `match` (a new AWS value does not compile until it
//! has a C constant) and by a test that every constant's name is the AWS spelling in
//! SCREAMING_SNAKE_CASE. Numbers start at 1 (0 is `…_NONE` where "none" is an answer, and
//! never a state), are stable and never reused.

use crate::types::{ConnectionErrorCode, ConnectionState, KeyState};

/// A KMS key's state (AWS `KeyState`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // AWS's states
pub enum kmscks_key_state {
    KMSCKS_KEY_STATE_CREATING = 1,
    KMSCKS_KEY_STATE_ENABLED = 2,
    KMSCKS_KEY_STATE_DISABLED = 3,
    KMSCKS_KEY_STATE_PENDING_DELETION = 4,
    KMSCKS_KEY_STATE_PENDING_IMPORT = 5,
    KMSCKS_KEY_STATE_PENDING_REPLICA_DELETION = 6,
    KMSCKS_KEY_STATE_UNAVAILABLE = 7,
    KMSCKS_KEY_STATE_UPDATING = 8,
}

impl From<KeyState> for kmscks_key_state {
    fn from(s: KeyState) -> kmscks_key_state {
        use kmscks_key_state::*;
        match s {
            KeyState::Creating => KMSCKS_KEY_STATE_CREATING,
            KeyState::Enabled => KMSCKS_KEY_STATE_ENABLED,
            KeyState::Disabled => KMSCKS_KEY_STATE_DISABLED,
            KeyState::PendingDeletion => KMSCKS_KEY_STATE_PENDING_DELETION,
            KeyState::PendingImport => KMSCKS_KEY_STATE_PENDING_IMPORT,
            KeyState::PendingReplicaDeletion => KMSCKS_KEY_STATE_PENDING_REPLICA_DELETION,
            KeyState::Unavailable => KMSCKS_KEY_STATE_UNAVAILABLE,
            KeyState::Updating => KMSCKS_KEY_STATE_UPDATING,
        }
    }
}

/// A custom key store's connection state (AWS `ConnectionState`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // AWS's states
pub enum kmscks_connection_state {
    KMSCKS_CONNECTION_STATE_CONNECTED = 1,
    KMSCKS_CONNECTION_STATE_CONNECTING = 2,
    KMSCKS_CONNECTION_STATE_FAILED = 3,
    KMSCKS_CONNECTION_STATE_DISCONNECTED = 4,
    KMSCKS_CONNECTION_STATE_DISCONNECTING = 5,
}

impl From<ConnectionState> for kmscks_connection_state {
    fn from(s: ConnectionState) -> kmscks_connection_state {
        use kmscks_connection_state::*;
        match s {
            ConnectionState::Connected => KMSCKS_CONNECTION_STATE_CONNECTED,
            ConnectionState::Connecting => KMSCKS_CONNECTION_STATE_CONNECTING,
            ConnectionState::Failed => KMSCKS_CONNECTION_STATE_FAILED,
            ConnectionState::Disconnected => KMSCKS_CONNECTION_STATE_DISCONNECTED,
            ConnectionState::Disconnecting => KMSCKS_CONNECTION_STATE_DISCONNECTING,
        }
    }
}

/// Why a custom key store's connection FAILED (AWS `ConnectionErrorCode`), or `…_NONE`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // AWS's codes
pub enum kmscks_connection_error_code {
    /// The store has no connection error code (it is not FAILED).
    KMSCKS_CONNECTION_ERROR_CODE_NONE = 0,
    KMSCKS_CONNECTION_ERROR_CODE_INVALID_CREDENTIALS = 1,
    KMSCKS_CONNECTION_ERROR_CODE_CLUSTER_NOT_FOUND = 2,
    KMSCKS_CONNECTION_ERROR_CODE_NETWORK_ERRORS = 3,
    KMSCKS_CONNECTION_ERROR_CODE_INTERNAL_ERROR = 4,
    KMSCKS_CONNECTION_ERROR_CODE_INSUFFICIENT_CLOUDHSM_HSMS = 5,
    KMSCKS_CONNECTION_ERROR_CODE_USER_LOCKED_OUT = 6,
    KMSCKS_CONNECTION_ERROR_CODE_USER_NOT_FOUND = 7,
    KMSCKS_CONNECTION_ERROR_CODE_USER_LOGGED_IN = 8,
    KMSCKS_CONNECTION_ERROR_CODE_SUBNET_NOT_FOUND = 9,
    KMSCKS_CONNECTION_ERROR_CODE_INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET = 10,
}

impl From<Option<ConnectionErrorCode>> for kmscks_connection_error_code {
    fn from(c: Option<ConnectionErrorCode>) -> kmscks_connection_error_code {
        use kmscks_connection_error_code::*;
        use ConnectionErrorCode as E;
        match c {
            None => KMSCKS_CONNECTION_ERROR_CODE_NONE,
            Some(E::InvalidCredentials) => KMSCKS_CONNECTION_ERROR_CODE_INVALID_CREDENTIALS,
            Some(E::ClusterNotFound) => KMSCKS_CONNECTION_ERROR_CODE_CLUSTER_NOT_FOUND,
            Some(E::NetworkErrors) => KMSCKS_CONNECTION_ERROR_CODE_NETWORK_ERRORS,
            Some(E::InternalError) => KMSCKS_CONNECTION_ERROR_CODE_INTERNAL_ERROR,
            Some(E::InsufficientCloudhsmHsms) => {
                KMSCKS_CONNECTION_ERROR_CODE_INSUFFICIENT_CLOUDHSM_HSMS
            }
            Some(E::UserLockedOut) => KMSCKS_CONNECTION_ERROR_CODE_USER_LOCKED_OUT,
            Some(E::UserNotFound) => KMSCKS_CONNECTION_ERROR_CODE_USER_NOT_FOUND,
            Some(E::UserLoggedIn) => KMSCKS_CONNECTION_ERROR_CODE_USER_LOGGED_IN,
            Some(E::SubnetNotFound) => KMSCKS_CONNECTION_ERROR_CODE_SUBNET_NOT_FOUND,
            Some(E::InsufficientFreeAddressesInSubnet) => {
                KMSCKS_CONNECTION_ERROR_CODE_INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET
            }
        }
    }
}
