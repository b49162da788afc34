//! White-box: a data-plane sync that fails part-way (key material that cannot be read) still
//! enforces what was committed with it, and fails the key it could not sync closed until a
//! later sync succeeds; one that unwinds part-way (a panic) is made good by the next sync,
//! which resets the engine and sends everything.

use super::*;
use crate::api::kms::{CreateKeyRequest, EncryptRequest};
use crate::control::Change;
use crate::error::ErrorKind;
use crate::hsm::Wrapper;
use crate::kms::model::Lifecycle;
use crate::kms::state::KmsChange;
use crate::secret::{KeyMaterial, SecretBytes};
use crate::types::KeyId;

/// Key files that cannot be read: every unwrap fails.
struct Unreadable;

fn unreadable() -> crate::KmsError {
    err!(StorageException, "key file unreadable (injected)")
}

impl Wrapper for Unreadable {
    fn wrap_key(&self, _: &str, _: &[u8], _: &KeyMaterial) -> Result<Vec<u8>> {
        Err(unreadable())
    }
    fn unwrap_key(&self, _: &str, _: &[u8], _: &[u8]) -> Result<KeyMaterial> {
        Err(unreadable())
    }
    fn wrap_bytes(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
        Err(unreadable())
    }
    fn unwrap_bytes(&self, _: &str, _: &[u8], _: &[u8]) -> Result<SecretBytes> {
        Err(unreadable())
    }
}

/// Key files whose reading panics: a sync that needs key material unwinds part-way.
struct Panicking;

impl Wrapper for Panicking {
    fn wrap_key(&self, _: &str, _: &[u8], _: &KeyMaterial) -> Result<Vec<u8>> {
        panic!("wrap_key panics (injected)")
    }
    fn unwrap_key(&self, _: &str, _: &[u8], _: &[u8]) -> Result<KeyMaterial> {
        panic!("unwrap_key panics (injected)")
    }
    fn wrap_bytes(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
        panic!("wrap_bytes panics (injected)")
    }
    fn unwrap_bytes(&self, _: &str, _: &[u8], _: &[u8]) -> Result<SecretBytes> {
        panic!("unwrap_bytes panics (injected)")
    }
}

fn new_key(kms: &Kms) -> String {
    kms.create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id
}

fn encrypt(kms: &Kms, key: &str) -> Result<()> {
    kms.encrypt(&EncryptRequest {
        key_id: key.to_owned(),
        plaintext: SecretBytes::from_slice(b"x"),
        ..Default::default()
    })
    .map(|_| ())
}

#[test]
fn a_disable_committed_with_a_failing_sync_is_enforced_and_the_unsynced_key_fails_closed() {
    let kms = Kms::in_memory();
    let (disabled, unsynced) = (new_key(&kms), new_key(&kms));
    encrypt(&kms, &disabled).unwrap();
    encrypt(&kms, &unsynced).unwrap();
    {
        let mut guard = lock(&kms.shared.core);
        let core = &mut *guard;
        let id = |k: &str| KeyId::parse(k).unwrap();
        // One commit: `disabled` is disabled, and `unsynced` needs its material again, which
        // cannot be read at that moment.
        let mut off = core.state.kms.keys[&id(&disabled)].clone();
        off.lifecycle = Lifecycle::Disabled;
        let same = core.state.kms.keys[&id(&unsynced)].clone();
        let changes = vec![
            Change::Kms(KmsChange::PutKey(Box::new(off))),
            Change::Kms(KmsChange::PutKey(Box::new(same))),
        ];
        for c in changes.clone() {
            core.state.apply(c);
        }
        core.mirror.forget_replicas(&id(&unsynced));
        let synced = core.mirror.sync(
            &kms.shared.engine,
            &core.state,
            &kms.shared.config.scope,
            &Unreadable,
            &changes,
        );
        assert!(synced.unwrap_err().message().contains("injected"));
    }
    let e = encrypt(&kms, &disabled).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException, "{e}");
    let e = encrypt(&kms, &unsynced).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException, "{e}");
    assert!(e.message().contains("data plane"), "{e}");

    // The next commit syncs with readable key files: the failed key is retried and reopens.
    new_key(&kms);
    encrypt(&kms, &unsynced).unwrap();
    assert_eq!(
        encrypt(&kms, &disabled).unwrap_err().kind(),
        ErrorKind::DisabledException
    );
}

#[test]
fn a_disable_whose_sync_unwound_part_way_is_enforced_by_the_next_sync_which_resends_everything() {
    let kms = Kms::in_memory();
    let (disabled, untouched) = (new_key(&kms), new_key(&kms));
    encrypt(&kms, &disabled).unwrap();
    encrypt(&kms, &untouched).unwrap();
    {
        let mut guard = lock(&kms.shared.core);
        let core = &mut *guard;
        // Invariant: the id came from CreateKey.
        let id = KeyId::parse(&disabled).unwrap();
        // One commit disables the key, whose sync then needs its material again and panics
        // reading it: the mirror has recorded the closed gate by then, the engine never got it.
        let mut off = core.state.kms.keys[&id].clone();
        off.lifecycle = Lifecycle::Disabled;
        let changes = vec![Change::Kms(KmsChange::PutKey(Box::new(off)))];
        for c in changes.clone() {
            core.state.apply(c);
        }
        core.mirror.forget_replicas(&id);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            core.mirror.sync(
                &kms.shared.engine,
                &core.state,
                &kms.shared.config.scope,
                &Panicking,
                &changes,
            )
        }));
        assert!(unwound.is_err(), "the sync was to unwind part-way");
    }

    // The next commit names another key only, yet its sync resets the engine and sends
    // everything: the disable is enforced, and the other keys still serve.
    let created = new_key(&kms);
    let e = encrypt(&kms, &disabled).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException, "{e}");
    encrypt(&kms, &untouched).unwrap();
    encrypt(&kms, &created).unwrap();
}
