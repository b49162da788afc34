//! The cluster side of the C API: a simulated CloudHSM cluster, its HSMs, its initialization
//! and its crypto users — the steps before a custom key store can be created on it. Every call
//! works in the configured Region (its request names none): the C functions' arguments are a
//! fixed contract.

use std::ffi::c_char;

use super::boundary::{client, guard, optional_text, out, put, text, CResult};
use super::handle::{expect_response, kmscks_client};
use super::memory::c_string;
use super::result::{kmscks_result, Failure};
use crate::api::hsm::{
    ActivateClusterRequest, ClusterIdRequest, CreateClusterRequest, CreateHsmRequest,
    DeleteHsmRequest, InitializeClusterRequest, UserRequest,
};
use crate::ops::Request;
use crate::secret::Password;
use crate::types::HsmUserRole;

/// Creates a cluster in the default Region with subnets in its zones `a` and `b`
/// (`us-east-1a` and `us-east-1b` by default), as `kmscks cloudhsm create-cluster` does;
/// writes its id (`cluster-…`) to `*cluster_id` (free with `kmscks_string_free`).
///
/// # Safety
/// `c` is a live handle; `cluster_id` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_cluster(
    c: *const kmscks_client,
    cluster_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let out = out(cluster_id, "cluster_id")?;
        let request = Request::CreateCluster(CreateClusterRequest::default());
        let r = expect_response!(c.call(&request)?, CreateCluster)?;
        let id = c_string(r.cluster.cluster_id.as_str())?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, id) };
        Ok(())
    })
}

/// Adds an HSM to the cluster in `availability_zone` (one of the cluster's zones); writes its
/// id (`hsm-…`) to `*hsm_id`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `hsm_id` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_hsm(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    availability_zone: *const c_char,
    hsm_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let zone = unsafe { text(availability_zone, "availability_zone") }?;
        let out = out(hsm_id, "hsm_id")?;
        let request = Request::CreateHsm(CreateHsmRequest {
            cluster_id: cluster_id.to_owned(),
            availability_zone: zone.to_owned(),
            region: None,
        });
        let r = expect_response!(c.call(&request)?, CreateHsm)?;
        let id = c_string(r.hsm.hsm_id.as_str())?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, id) };
        Ok(())
    })
}

/// Removes an HSM from its cluster (its key objects stay on the cluster's other HSMs).
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_delete_hsm(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    hsm_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let hsm_id = unsafe { text(hsm_id, "hsm_id") }?;
        let request = Request::DeleteHsm(DeleteHsmRequest {
            cluster_id: cluster_id.to_owned(),
            hsm_id: hsm_id.to_owned(),
            ..Default::default()
        });
        expect_response!(c.call(&request)?, DeleteHsm)?;
        Ok(())
    })
}

/// Writes the cluster's certificate signing request (PEM) to `*csr_pem`: what your CA signs
/// before `kmscks_initialize_cluster` with your own trust anchor.
///
/// # Safety
/// `c` is a live handle; `cluster_id` is NUL-terminated; `csr_pem` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_get_cluster_csr(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    csr_pem: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let out = out(csr_pem, "csr_pem")?;
        let request = Request::DescribeClusters(crate::api::hsm::DescribeClustersRequest {
            filters: [("clusterIds".to_owned(), vec![cluster_id.to_owned()])].into(),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, DescribeClusters)?;
        // The filter answers an unknown id with no cluster, not an error: the error is the
        // one every other call names an unknown cluster with.
        let cluster = r
            .clusters
            .iter()
            .find(|cl| cl.cluster_id.as_str() == cluster_id)
            .ok_or_else(|| {
                Failure::from(crate::err!(
                    CloudHsmResourceNotFoundException,
                    "The cluster {cluster_id} does not exist."
                ))
            })?;
        let csr = Some(cluster)
            // DescribeClusters keeps the CSR after initialization, as AWS does; there is
            // nothing left to sign then.
            .filter(|cl| cl.state == crate::types::ClusterState::Uninitialized)
            .and_then(|cl| cl.certificates.cluster_csr.as_deref())
            .ok_or_else(|| {
                Failure::from(crate::err!(
                    CloudHsmInvalidRequestException,
                    "cluster {cluster_id} has no certificate signing request (it is not \
                     UNINITIALIZED)"
                ))
            })?;
        let csr = c_string(csr)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, csr) };
        Ok(())
    })
}

/// Initializes the cluster, and writes the trust anchor (the CA certificate, PEM) to
/// `*trust_anchor_pem`.
///
/// - `trust_anchor_pem_or_null` NULL: kmscks makes a CA, signs the cluster's CSR with it, and
///   activates the cluster (UNINITIALIZED → ACTIVE); it returns the CA certificate: keep it,
///   `kmscks_create_custom_key_store` needs it.
/// - otherwise, a PEM bundle of two certificates, as AWS's InitializeCluster takes them: the
///   cluster certificate your CA signed from the CSR (`kmscks_get_cluster_csr`), then your CA
///   certificate (the trust anchor), which is also what is written back. The cluster is then
///   INITIALIZED, as on AWS: `kmscks_activate_cluster` makes it ACTIVE.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `trust_anchor_pem` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_initialize_cluster(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    trust_anchor_pem_or_null: *const c_char,
    trust_anchor_pem: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let given = unsafe { optional_text(trust_anchor_pem_or_null, "trust_anchor_pem_or_null") }?;
        let out = out(trust_anchor_pem, "trust_anchor_pem")?;
        let anchor = match given {
            None => {
                let request = Request::InitializeClusterWithNewCa(ClusterIdRequest {
                    cluster_id: cluster_id.to_owned(),
                    region: None,
                });
                let r = expect_response!(c.call(&request)?, InitializeClusterWithNewCa)?;
                r.trust_anchor.ok_or_else(|| {
                    Failure::internal("InitializeCluster returned no trust anchor")
                })?
            }
            Some(bundle) => {
                let (signed_cert, trust_anchor) = split_bundle(bundle)?;
                let request = Request::InitializeCluster(InitializeClusterRequest {
                    cluster_id: cluster_id.to_owned(),
                    signed_cert: signed_cert.to_owned(),
                    trust_anchor: trust_anchor.to_owned(),
                    region: None,
                });
                expect_response!(c.call(&request)?, InitializeCluster)?;
                trust_anchor.to_owned()
            }
        };
        let anchor = c_string(&anchor)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, anchor) };
        Ok(())
    })
}

/// The two PEM certificates of an initialization bundle: (signed cluster cert, trust anchor).
fn split_bundle(bundle: &str) -> CResult<(&str, &str)> {
    const END: &str = "-----END CERTIFICATE-----";
    let certs: Vec<&str> = bundle
        .match_indices(END)
        .scan(0, |start, (at, _)| {
            let cert = bundle[*start..at + END.len()].trim();
            *start = at + END.len();
            Some(cert)
        })
        .collect();
    // What follows the last END line: nothing but white space, or it is a third certificate
    // cut short (or text) that would otherwise be dropped unseen.
    let tail = bundle.rfind(END).map_or("", |at| &bundle[at + END.len()..]);
    if !tail.trim().is_empty() {
        return Err(Failure::invalid(
            "trust_anchor_pem_or_null",
            format!(
                "holds text after its last certificate's END line ({} bytes, starting {:?}); \
                 it must hold two PEM certificates and nothing else: the cluster certificate \
                 signed by your CA, then the CA certificate",
                tail.trim().len(),
                tail.trim().chars().take(27).collect::<String>()
            ),
        ));
    }
    match certs.as_slice() {
        [signed, anchor] => Ok((signed, anchor)),
        _ => Err(Failure::invalid(
            "trust_anchor_pem_or_null",
            format!(
                "holds {} PEM certificates; it must hold two: the cluster certificate signed \
                 by your CA, then the CA certificate",
                certs.len()
            ),
        )),
    }
}

/// Creates a crypto user (CU) on the cluster's HSMs, e.g. `kmsuser`, which a custom key store
/// logs in as.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_crypto_user(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    username: *const c_char,
    password: *const c_char,
) -> kmscks_result {
    // SAFETY: forwarded contract.
    unsafe { user_call(c, cluster_id, username, password, "password", true) }
}

/// Activates an INITIALIZED cluster (one initialized with your own bundle) by setting its admin
/// password, as the CloudHSM CLI's `cluster activate` does: the cluster becomes ACTIVE.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_activate_cluster(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    admin_password: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let password = unsafe { text(admin_password, "admin_password") }?;
        let request = Request::ActivateCluster(ActivateClusterRequest {
            cluster_id: cluster_id.to_owned(),
            password: Password::new(password),
        });
        expect_response!(c.call(&request)?, ActivateCluster)?;
        Ok(())
    })
}

/// Changes a crypto user's password on the cluster's HSMs (then update the custom key store's
/// `key_store_password`, as on AWS).
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_change_crypto_user_password(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    username: *const c_char,
    new_password: *const c_char,
) -> kmscks_result {
    // SAFETY: forwarded contract.
    unsafe { user_call(c, cluster_id, username, new_password, "new_password", false) }
}

/// CreateUser (crypto user) or ChangePassword.
///
/// # Safety
/// As the two callers.
unsafe fn user_call(
    c: *const kmscks_client,
    cluster_id: *const c_char,
    username: *const c_char,
    password: *const c_char,
    password_name: &str,
    create: bool,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let username = unsafe { text(username, "username") }?;
        let password = unsafe { text(password, password_name) }?;
        let request = UserRequest {
            cluster_id: cluster_id.to_owned(),
            username: username.to_owned(),
            role: create.then_some(HsmUserRole::CryptoUser),
            password: Password::new(password),
        };
        if create {
            expect_response!(c.call(&Request::CreateUser(request))?, CreateUser)?;
        } else {
            expect_response!(c.call(&Request::ChangePassword(request))?, ChangePassword)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::split_bundle;

    const A: &str = "-----BEGIN CERTIFICATE-----\nMIIBa\n-----END CERTIFICATE-----";
    const B: &str = "-----BEGIN CERTIFICATE-----\nMIIBb\n-----END CERTIFICATE-----";

    #[test]
    fn a_bundle_is_two_certificates_and_nothing_after_them() {
        let two = format!("{A}\n{B}\n");
        assert_eq!(split_bundle(&two).ok(), Some((A, B)));
        let refused = |bundle: &str| match split_bundle(bundle) {
            Ok(certs) => panic!("{bundle:?} was split into {certs:?}"),
            Err(e) => e.message,
        };
        let cut_short = format!("{A}\n{B}\n-----BEGIN CERTIFICATE-----\nMIIB");
        let e = refused(&cut_short);
        assert!(e.contains("after its last certificate"), "{e}");
        let e = refused(&format!("{A}\n"));
        assert!(e.contains("holds 1 PEM certificates"), "{e}");
        let e = refused("not a certificate");
        assert!(e.contains("holds 0 PEM certificates"), "{e}");
    }
}
