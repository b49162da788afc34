//! The four-step getting-started flow, as the quickstart example runs it.

mod common;

use common::*;
use kmscks::types::{ConnectionState, KeyManager, KeyState, Origin};

#[test]
fn four_steps_give_a_connected_store_and_a_cloudhsm_key() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "ExampleKeyStore");
    let entry = describe_store(&kms, &f.store_id);
    assert_eq!(entry.connection_state, ConnectionState::Connected);
    assert_eq!(entry.connection_error_code, None);
    let key_id = create_key(&kms, Some(&f.store_id));
    let md = describe_key(&kms, &key_id);
    assert_eq!(md.origin, Origin::AwsCloudhsm);
    assert_eq!(md.key_manager, KeyManager::Customer);
    assert_eq!(md.key_state, KeyState::Enabled);
    assert!(md.enabled);
    assert_eq!(
        md.cloud_hsm_cluster_id.as_deref(),
        Some(f.cluster.cluster_id.as_str())
    );
    assert_eq!(md.custom_key_store_id.as_deref(), Some(f.store_id.as_str()));
    // The key material lives in the cluster, labelled with the key ARN.
    let objects = kms.list_key_objects(&f.cluster.cluster_id).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].label, md.arn);
    assert_eq!(objects[0].owner, "kmsuser");
    assert!(!objects[0].extractable);
    assert_eq!(objects[0].hsms.len(), 2);
    // JSON uses AWS's member names.
    let json = serde_json::to_value(&md).unwrap();
    assert_eq!(json["AWSAccountId"], "111122223333");
    assert_eq!(json["KeyManager"], "CUSTOMER");
    assert!(json.get("DeletionDate").is_none());
}
