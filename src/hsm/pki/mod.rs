//! The PKI of a simulated CloudHSM cluster: cluster key, cluster CSR, the user's CA, and the
//! checks InitializeCluster and CreateCustomKeyStore make on certificates.
//!
//! When the first HSM of a new cluster exists, the UNINITIALIZED cluster offers a cluster CSR
//! (`Certificates.ClusterCsr`). The user signs it with their own CA (`customerCA.crt`, the
//! *trust anchor*) and calls InitializeCluster with the signed cluster certificate and the trust
//! anchor; [`verify_cluster_certificate`] is the check made there. Two clusters are *related*
//! when their cluster certificates are equal, and KMS compares a `TrustAnchorCertificate` with
//! the cluster's: both comparisons are by DER ([`same_certificate`]), never by PEM text.
//!
//! Nothing here persists anything or maps errors to AWS exceptions: [`PkiError`] says exactly
//! what is wrong, and the caller picks the exception (CloudHsmInvalidRequestException for
//! InitializeCluster, IncorrectTrustAnchorException for CreateCustomKeyStore, ...).
//!
//! One file per job: [`PkiError`] (`error`), the cluster key and its CSR (`cluster_key`), the
//! user's CA (`ca`), PEM text to DER with byte offsets in errors (`pem`), DER to parsed X.509
//! and PKCS#10 and comparison by DER (`parse`), and the InitializeCluster check (`verify`).

mod ca;
mod cluster_key;
mod error;
mod parse;
mod pem;
mod verify;

#[cfg(test)]
mod fixtures;

pub use ca::CertificateAuthority;
pub use cluster_key::{cluster_csr_pem, ClusterKey};
pub use parse::same_certificate;
pub use verify::verify_cluster_certificate;
