//! The four steps of AWS's "getting started with a CloudHSM key store", on kmscks:
//! 1. an active cluster with two HSMs in different zones, and a kmsuser crypto user;
//! 2. create the custom key store;
//! 3. connect it and wait for CONNECTED;
//! 4. create a KMS key in it.
//!
//! Run: `cargo run --example quickstart` (in memory), or
//! `cargo run --example quickstart -- /path/to/data-dir` (durable).

use std::time::Duration;

use kmscks::api::hsm::{ClusterIdRequest, CreateClusterRequest, CreateHsmRequest, UserRequest};
use kmscks::api::kms::{
    CreateCustomKeyStoreRequest, CreateKeyRequest, CustomKeyStoreIdRequest,
    DescribeCustomKeyStoresRequest,
};
use kmscks::secret::Password;
use kmscks::types::{HsmUserRole, Origin};
use kmscks::Kms;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kms = match std::env::args().nth(1) {
        Some(dir) => Kms::open(dir)?,
        None => Kms::in_memory(),
    };

    // 1. The cluster: create it, add an HSM in each of two zones, initialise it with a CA that
    //    kmscks makes for us (the trust anchor), and create the kmsuser crypto user.
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())?
        .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    for zone in cluster.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })?;
    }
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&ClusterIdRequest {
            cluster_id: cluster_id.clone(),
            region: None,
        })?
        .trust_anchor
        .expect("kmscks made the CA");
    let kmsuser_password = "kmsuserPassw0rd";
    kms.create_hsm_user(&UserRequest {
        cluster_id: cluster_id.clone(),
        username: "kmsuser".into(),
        role: Some(HsmUserRole::CryptoUser),
        password: Password::new(kmsuser_password),
    })?;

    // 2. The custom key store.
    let store_id = kms
        .create_custom_key_store(&CreateCustomKeyStoreRequest {
            custom_key_store_name: "ExampleKeyStore".into(),
            cloud_hsm_cluster_id: Some(cluster_id.clone()),
            trust_anchor_certificate: Some(trust_anchor),
            key_store_password: Some(Password::new(kmsuser_password)),
            custom_key_store_type: None,
        })?
        .custom_key_store_id;

    // 3. Connect (asynchronous, as on AWS) and wait for CONNECTED.
    kms.connect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.clone(),
    })?;
    kms.wait_for_connection(&store_id, Duration::from_secs(10))?;
    let described = kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
        custom_key_store_id: Some(store_id.clone()),
        ..Default::default()
    })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&described.custom_key_stores[0])?
    );

    // 4. A KMS key whose material is generated inside the cluster.
    let key = kms.create_key(&CreateKeyRequest {
        custom_key_store_id: Some(store_id),
        origin: Some(Origin::AwsCloudhsm),
        description: Some("quickstart key".into()),
        ..Default::default()
    })?;
    println!("{}", serde_json::to_string_pretty(&key)?);
    Ok(())
}
