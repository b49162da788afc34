//! The custom key store operations of [`Kms`]: create, describe, update, delete, connect,
//! disconnect, and waiting for a connection attempt to settle.

use super::{deadline_after, Kms};

use std::time::Duration;

use crate::api::kms::*;
use crate::error::Result;
use crate::kms::{keys, stores};
use crate::ops::Op;
use crate::types::*;

impl Kms {
    // ---- Custom key stores ------------------------------------------------------------------

    /// CreateCustomKeyStore.
    pub fn create_custom_key_store(
        &self,
        req: &CreateCustomKeyStoreRequest,
    ) -> Result<CreateCustomKeyStoreResponse> {
        self.charge_key_store_api(Op::CreateCustomKeyStore)?;
        self.write(|tx| {
            keys::require_root(tx, Op::CreateCustomKeyStore.action())?;
            stores::create(tx, req)
        })
    }

    /// DescribeCustomKeyStores.
    pub fn describe_custom_key_stores(
        &self,
        req: &DescribeCustomKeyStoresRequest,
    ) -> Result<DescribeCustomKeyStoresResponse> {
        self.charge_key_store_api(Op::DescribeCustomKeyStores)?;
        self.read(|tx| {
            keys::require_root(tx, Op::DescribeCustomKeyStores.action())?;
            stores::describe(tx.state, req)
        })
    }

    /// UpdateCustomKeyStore.
    pub fn update_custom_key_store(&self, req: &UpdateCustomKeyStoreRequest) -> Result<Empty> {
        self.charge_key_store_api(Op::UpdateCustomKeyStore)?;
        self.write(|tx| {
            keys::require_root(tx, Op::UpdateCustomKeyStore.action())?;
            stores::update(tx, req)
        })
    }

    /// DeleteCustomKeyStore.
    pub fn delete_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        self.charge_key_store_api(Op::DeleteCustomKeyStore)?;
        self.write(|tx| {
            keys::require_root(tx, Op::DeleteCustomKeyStore.action())?;
            stores::delete(tx, req)
        })
    }

    /// ConnectCustomKeyStore: returns at once; poll DescribeCustomKeyStores (or
    /// [`Kms::wait_for_connection`]) for CONNECTED or FAILED.
    pub fn connect_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        self.charge_key_store_api(Op::ConnectCustomKeyStore)?;
        let follow = self.write(|tx| {
            keys::require_root(tx, Op::ConnectCustomKeyStore.action())?;
            stores::connect(tx, req)
        })?;
        self.follow_up(follow);
        Ok(Empty {})
    }

    /// DisconnectCustomKeyStore: keys are unusable at once; the store reads DISCONNECTING
    /// until the logout completes.
    pub fn disconnect_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        self.charge_key_store_api(Op::DisconnectCustomKeyStore)?;
        let follow = self.write(|tx| {
            keys::require_root(tx, Op::DisconnectCustomKeyStore.action())?;
            stores::disconnect(tx, req)
        })?;
        self.follow_up(follow);
        Ok(Empty {})
    }

    /// Waits until the store is neither CONNECTING nor DISCONNECTING (or `timeout` passes;
    /// `Duration::MAX` waits as long as it takes) and returns its description. Allowed to whom DescribeCustomKeyStores is (the account
    /// root): it returns the same description.
    pub fn wait_for_connection(
        &self,
        custom_key_store_id: &str,
        timeout: Duration,
    ) -> Result<CustomKeyStoreEntry> {
        self.read(|tx| keys::require_root(tx, Op::DescribeCustomKeyStores.action()))?;
        let deadline = deadline_after(timeout);
        let req = DescribeCustomKeyStoresRequest {
            custom_key_store_id: Some(custom_key_store_id.to_owned()),
            ..Default::default()
        };
        let mut core = self.shared.core()?;
        loop {
            let entry = stores::describe(&core.state.kms, &req)?
                .custom_key_stores
                .remove(0);
            let settled = !matches!(
                entry.connection_state,
                ConnectionState::Connecting | ConnectionState::Disconnecting
            );
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if settled || left.is_some_and(|l| l.is_zero()) {
                return Ok(entry);
            }
            let changed = &self.shared.changed;
            core = match left {
                Some(left) => {
                    let woken = changed.wait_timeout(core, left);
                    woken.unwrap_or_else(|p| p.into_inner()).0
                }
                None => changed.wait(core).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}
