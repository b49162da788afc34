//! Test fixtures shared by the PKI's unit tests, so each file tests its own job with the same
//! inputs: OpenSSL-made certificates, a ready cluster key with its CSR, a CA and the signed
//! cluster certificate, and PEM written with any wrapping.

use base64::Engine as _;
use rcgen::{CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer, KeyPair};

use super::parse::parse_csr;
use super::pem::decode_pem;
use super::ca::CaKeyAlgorithm;
use super::{cluster_csr_pem, CertificateAuthority, ClusterKey};

/// An RSA-2048 CA made by `openssl req -x509 -newkey rsa:2048 -sha256` (basicConstraints
/// critical CA:TRUE), an OpenSSL P-256 CSR, and that CSR signed by that CA with
/// `openssl x509 -req -sha256` (a v1 certificate, no extensions).
pub(super) const OPENSSL_RSA_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIDUzCCAjugAwIBAgIULg6e/4yRT2XwtVbkmz2alMYRS6gwDQYJKoZIhvcNAQEL
BQAwOTELMAkGA1UEBhMCVVMxFTATBgNVBAoMDEV4YW1wbGUgQ29ycDETMBEGA1UE
AwwKY3VzdG9tZXJDQTAeFw0yNjExMzAxMDE0MDlaFw0zNjExMjkxMDE0MDlaMDkx
CzAJBgNVBAYTAlVTMRUwEwYDVQQKDAxFeGFtcGxlIENvcnAxEzARBgNVBAMMCmN1
c3RvbWVyQ0EwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDJuTZiiLMK
5ntoeCa9nA8LObYeL5yAVyDJ8sGil1d4tad8qY0+yfzJjnIDsUTfObJrojmyD3Pm
LQg5JM4M7XgKdlSy4GlNRV/6odGsUkDsi/YcoeEs99z8A/jxILgRdhGZWQ2cD8D/
ZQlSiA0sFZgACP1mYTmpRQrFBAg302amIk9z+xSnYuGYTr9s9Ub7GFwMGLIVc5uE
Lym9lXdgeUjfc45Nn8SvDJ+Dc8AIerwO1iuPCWLm+079J07yU/rT2wIu4ekuiynv
XLhOD08zJnQDMNISfcoTmKfchB7J3r0r/OFFEnk5Nsr9rBVWGAU1DXyycMLyLZ9z
Bfgzlo4K5hjrAgMBAAGjUzBRMB0GA1UdDgQWBBRKj7HNkBe4AXfSgNvLinxPdM7m
VzAfBgNVHSMEGDAWgBRKj7HNkBe4AXfSgNvLinxPdM7mVzAPBgNVHRMBAf8EBTAD
AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCda/IrQw/J+nPc+LUuu4+dOVn1ghO1YTDL
Nh/Pjp+tJIFlGO2vuKAw/0X4y4iBFbxBqh6J6p9qkZavM/+W0zSXCQYcEAnSnXb+
Zwj960ZfNSL14P6xCHa0mpWd84ogAjRkZDmV7v1SNKmO3sBbhYES8PI0uC6m+hNw
0UI/v5dB59hcSLIsz5FVoMlDSQes60/lcrbhPdVFhVZhLDPnaCv0nTHG2L01NNL8
iYMAUajcmYlJrMHupq5MH8xGcaeaINLwaiN5AjfrvjdAsjndJvhPn7nufh7wr92W
mrS04NDfgYtYfrCFvPnMV2hnJANRfkZiYK1qAUZyZm+tIqZBQyAR
-----END CERTIFICATE-----
";
pub(super) const OPENSSL_CSR: &str = "\
-----BEGIN CERTIFICATE REQUEST-----
MIHZMIGAAgEAMB4xHDAaBgNVBAMME0hTTTpjbHVzdGVyLW9wZW5zc2wwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARDIKFHy/kVAThvMjP4oSmeuhG8B3Ypf0/QYLF6
Dh5Cdw127HN9Qbq8wq+hyUW5j0/EkA71palUCdZg8ZQ3GMphoAAwCgYIKoZIzj0E
AwIDSAAwRQIgca7shRi1qkyWgbtk8+5oHQZSFC04I3kyzpnzPbq5JwMCIQDGx2DG
3vE1Gd5yspw1OPBGzSqb3Pg7joSLUP0Yvo86+Q==
-----END CERTIFICATE REQUEST-----
";
pub(super) const OPENSSL_SIGNED: &str = "\
-----BEGIN CERTIFICATE-----
MIICEjCB+wIURxozdhfmEncdtwv+JxJ13s1yvb0wDQYJKoZIhvcNAQELBQAwOTEL
MAkGA1UEBhMCVVMxFTATBgNVBAoMDEV4YW1wbGUgQ29ycDETMBEGA1UEAwwKY3Vz
dG9tZXJDQTAeFw0yNjExMzAxMDE0MDlaFw0zNjExMjkxMDE0MDlaMB4xHDAaBgNV
BAMME0hTTTpjbHVzdGVyLW9wZW5zc2wwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AARDIKFHy/kVAThvMjP4oSmeuhG8B3Ypf0/QYLF6Dh5Cdw127HN9Qbq8wq+hyUW5
j0/EkA71palUCdZg8ZQ3GMphMA0GCSqGSIb3DQEBCwUAA4IBAQCSmCgZlPUOuIsY
4hGJ4BRF6IZ37nRawXoyHBM0U9aCtPN5s2+n+Z0jyOsh6ppiWP51svglGXpS7R2N
PlbLhX8jXTMAk0kVWPaoqYU+spvDemtO6xOlgrEXze12yKVyIlwDVHxxzXChhMfZ
72HsHm6eGWT7pW8RS7RYb6EwAZKl7TRUkMfAjsmuYmLdcvlLw/KE9K/BQQYmH0Iz
tGq8l0SOpVGCnrLsZ4uGQ63zg/sgUeImMBUIVFXejkOsq+pywOcbwWnEng3T/RKA
IVRwp3uceiEIJ5aj3DeJ0ZQxykeFwUG3WHIe3tnt6guZsbz09H1DsA8XVRKQLjFS
pF0lgcl3
-----END CERTIFICATE-----
";

/// A cluster key, its CSR, a CA and the signed cluster certificate.
pub(super) struct Setup {
    pub(super) key: ClusterKey,
    pub(super) csr: String,
    pub(super) ca: CertificateAuthority,
    pub(super) signed: String,
}

pub(super) fn setup_with(alg: CaKeyAlgorithm) -> Setup {
    let key = ClusterKey::generate();
    let csr = cluster_csr_pem(&key, "cluster-abcdefghijk").unwrap();
    let ca = CertificateAuthority::generate_with("customerCA", alg).unwrap();
    let signed = ca.sign_csr(&csr).unwrap();
    Setup {
        key,
        csr,
        ca,
        signed,
    }
}

pub(super) fn setup() -> Setup {
    setup_with(CaKeyAlgorithm::EcdsaP256)
}

pub(super) fn der_of(pem: &str) -> Vec<u8> {
    decode_pem(pem, &["CERTIFICATE", "CERTIFICATE REQUEST"], "test input").unwrap()
}

/// PEM with the given label, base64 wrapped at `width` columns, lines ended by `eol`.
pub(super) fn to_pem(label: &str, der: &[u8], width: usize, eol: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----{eol}");
    for line in b64.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str(eol);
    }
    out.push_str(&format!("-----END {label}-----{eol}"));
    out
}

/// A self-signed certificate from raw rcgen parameters, with its key.
pub(super) fn self_signed(cn: &str, is_ca: IsCa) -> (String, KeyPair, CertificateParams) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = is_ca;
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, key, params)
}

pub(super) fn sign_with(csr: &str, params: &CertificateParams, key: &KeyPair) -> String {
    let csr = CertificateSigningRequestParams::from_pem(csr).unwrap();
    csr.signed_by(&Issuer::from_params(params, key))
        .unwrap()
        .pem()
}

pub(super) fn csr_public_key(csr_pem: &str) -> Vec<u8> {
    let der = der_of(csr_pem);
    let csr = parse_csr(&der).unwrap();
    csr.certification_request_info.subject_pki.raw.to_vec()
}
