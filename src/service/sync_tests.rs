//! White-box: a data-plane sync that fails part-way (key material that cannot be read) still
//! enforces what was committed with it, and fails the key it could not sync closed until a
//! later sync succeeds; one that unwinds part-way (a panic) is made good by the next sync,
//! which resets the engine and sends everything.

use super::*;
use crate::api::kms::{CreateKeyRequest, EncryptRequest};
use crate::control::Change;
use crate::engine::Control;
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

#[test]
fn a_key_still_failing_from_an_earlier_sync_stays_closed_without_failing_a_change_to_another() {
    let kms = Kms::in_memory();
    let (failing, other) = (new_key(&kms), new_key(&kms));
    let mut guard = lock(&kms.shared.core);
    let core = &mut *guard;
    let id = |k: &str| KeyId::parse(k).unwrap();
    let sync_with_unreadable_key_files = |key: &str, core: &mut Core| {
        let same = core.state.kms.keys[&id(key)].clone();
        let changes = vec![Change::Kms(KmsChange::PutKey(Box::new(same)))];
        for c in changes.clone() {
            core.state.apply(c);
        }
        core.mirror.sync(
            &kms.shared.engine,
            &core.state,
            &kms.shared.config.scope,
            &Unreadable,
            &changes,
        )
    };
    // The change to `failing` needs its material, which cannot be read: that change fails.
    core.mirror.forget_replicas(&id(&failing));
    let e = sync_with_unreadable_key_files(&failing, core).unwrap_err();
    assert!(e.message().contains("injected"), "{e}");
    // A later change to `other` alone retries `failing`, which fails again: closed still,
    // but the change to `other` reached the engine and is not reported as failed.
    sync_with_unreadable_key_files(&other, core).unwrap();
    drop(guard);
    let e = encrypt(&kms, &failing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException, "{e}");
    encrypt(&kms, &other).unwrap();
}

#[test]
fn a_commit_unwinding_after_its_change_empties_the_engine_until_the_worker_rebuilds_it_whole() {
    let kms = Kms::in_memory();
    let (disabled, untouched) = (new_key(&kms), new_key(&kms));
    encrypt(&kms, &disabled).unwrap();
    encrypt(&kms, &untouched).unwrap();
    // Held through the unwind, so that the worker's rebuild waits and the engine is seen as
    // the unwind left it.
    let mut guard = lock(&kms.shared.core);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut fail_closed = commit::FailClosedOnUnwind::new(&kms.shared);
        // Invariant: the id came from CreateKey.
        let id = KeyId::parse(&disabled).unwrap();
        let mut off = guard.state.kms.keys[&id].clone();
        off.lifecycle = Lifecycle::Disabled;
        guard
            .state
            .apply(Change::Kms(KmsChange::PutKey(Box::new(off))));
        fail_closed.applied();
        panic!("the commit unwinds between its change and its sync (injected)");
    }));
    assert!(unwound.is_err(), "the commit was to unwind");
    // Closed: the engine serves no key, the disabled one least of all.
    assert!(encrypt(&kms, &disabled).is_err());
    assert!(encrypt(&kms, &untouched).is_err());
    drop(guard);
    kms.wait_for_background();
    // Rebuilt whole from the state: the disable is enforced, the other key serves again.
    let e = encrypt(&kms, &disabled).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException, "{e}");
    encrypt(&kms, &untouched).unwrap();
}

/// Commits `change` together with a change of `other`'s gate in one batch the engine refuses
/// whole: the engine loses `other` behind the mirror's back first, so the batch names a key
/// it lacks.
fn commit_a_batch_the_engine_refuses(kms: &Kms, other: &str, change: Change) {
    let mut guard = lock(&kms.shared.core);
    let core = &mut *guard;
    // Invariant: the id came from CreateKey.
    let other_id = KeyId::parse(other).unwrap();
    kms.shared
        .engine
        .apply(&[Control::RemoveKey { key: other_id }])
        .unwrap();
    let mut off = core.state.kms.keys[&other_id].clone();
    off.lifecycle = Lifecycle::Disabled;
    let changes = vec![change, Change::Kms(KmsChange::PutKey(Box::new(off)))];
    for c in changes.clone() {
        core.state.apply(c);
    }
    let synced = core.mirror.sync(
        &kms.shared.engine,
        &core.state,
        &kms.shared.config.scope,
        &core.keyring,
        &changes,
    );
    assert!(synced.is_err(), "the engine was to refuse the batch");
}

#[test]
fn an_alias_deleted_in_a_batch_the_engine_refused_names_no_key_until_the_next_sync() {
    use crate::api::kms::AliasRequest;
    let kms = Kms::in_memory();
    let (named, other) = (new_key(&kms), new_key(&kms));
    kms.create_alias(&AliasRequest {
        alias_name: "alias/a".into(),
        target_key_id: named.clone(),
    })
    .unwrap();
    encrypt(&kms, "alias/a").unwrap();
    let alias = Change::Kms(KmsChange::DeleteAlias("alias/a".into()));
    commit_a_batch_the_engine_refuses(&kms, &other, alias);
    // The deleted alias names nothing, though its key still serves by id.
    let e = encrypt(&kms, "alias/a").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException, "{e}");
    encrypt(&kms, &named).unwrap();
}

#[test]
fn a_commit_unwinding_before_the_state_holds_its_change_keeps_the_engine_empty_and_refuses_writes()
{
    let kms = Kms::in_memory();
    let key = new_key(&kms);
    encrypt(&kms, &key).unwrap();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _core = lock(&kms.shared.core);
        let _fail_closed = commit::FailClosedOnUnwind::new(&kms.shared);
        panic!("the commit unwinds while the state takes its record (injected)");
    }));
    assert!(unwound.is_err(), "the commit was to unwind");
    kms.wait_for_background();
    // The state may lack part of a durable change: nothing is rebuilt from it, and nothing
    // more is changed, until a restart replays the journal.
    assert!(encrypt(&kms, &key).is_err());
    let e = kms.create_key(&CreateKeyRequest::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInternalException, "{e}");
    assert!(e.message().contains("restart kmscks"), "{e}");
}

#[test]
fn a_commit_made_while_its_thread_unwinds_from_elsewhere_leaves_the_engine_serving() {
    let kms = Kms::in_memory();
    let key = new_key(&kms);
    /// As it is dropped (its thread unwinding from a panic of its own), creates a key, then
    /// encrypts under the first one at once.
    struct CommitOnDrop<'k> {
        kms: &'k Kms,
        key: &'k str,
        served: &'k std::cell::Cell<Option<bool>>,
    }
    impl Drop for CommitOnDrop<'_> {
        fn drop(&mut self) {
            new_key(self.kms);
            self.served.set(Some(encrypt(self.kms, self.key).is_ok()));
        }
    }
    let served = std::cell::Cell::new(None);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _on_drop = CommitOnDrop {
            kms: &kms,
            key: &key,
            served: &served,
        };
        panic!("something else unwinds (injected)");
    }));
    assert!(unwound.is_err());
    // That commit's guard did not take the unwinding for its own: the engine was not emptied.
    assert_eq!(served.get(), Some(true));
}

#[test]
fn a_key_deleted_in_a_batch_the_engine_refused_is_served_no_more() {
    let kms = Kms::in_memory();
    let (deleted, other) = (new_key(&kms), new_key(&kms));
    encrypt(&kms, &deleted).unwrap();
    // Invariant: the id came from CreateKey.
    let deleted_id = KeyId::parse(&deleted).unwrap();
    commit_a_batch_the_engine_refuses(&kms, &other, Change::Kms(KmsChange::DeleteKey(deleted_id)));
    // The deleted key is gone from the engine, not left serving until the next sync.
    let e = encrypt(&kms, &deleted).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException, "{e}");
}
