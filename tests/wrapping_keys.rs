//! Wrapping-key files are created by the commit path, outside any transaction: CreateCluster's
//! new lineage key exists once the call returns, and a refused call leaves no file behind.

use std::fs;
use std::path::Path;

use kmscks::api::hsm::CreateClusterRequest;
use kmscks::{ErrorKind, Kms};

fn key_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn create_cluster_has_written_its_lineage_key_file_when_it_returns() {
    let t = tempfile::tempdir().unwrap();
    let kms = Kms::open(t.path()).unwrap();
    assert_eq!(key_files(t.path()), ["kms-master.key"]);
    let c = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let lineage = format!("cluster-{}.key", &c.cluster_id.as_str()["cluster-".len()..]);
    assert_eq!(key_files(t.path()), [lineage, "kms-master.key".to_owned()]);
}

#[test]
fn a_refused_create_cluster_writes_no_key_file() {
    let t = tempfile::tempdir().unwrap();
    let kms = Kms::open(t.path()).unwrap();
    let e = kms
        .create_cluster(&CreateClusterRequest {
            hsm_type: Some("not-an-hsm".into()),
            ..CreateClusterRequest::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CloudHsmInvalidRequestException);
    assert_eq!(key_files(t.path()), ["kms-master.key"]);
}
