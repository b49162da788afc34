"""The customer's CA of CloudHSM's InitializeCluster step, made by the test itself.

On AWS the cluster owner signs the cluster CSR with their own CA and hands both certificates
to InitializeCluster; the AWS-client tests (tests/aws_clients.rs) do the same, with Python's
`cryptography` package when it is installed, else the `openssl` command. Neither: `Unavailable`
(the caller skips with a printed reason).

As a command, for the shell test: `python3 ca.py CSR_FILE SIGNED_CERT_OUT TRUST_ANCHOR_OUT`
(exit status 3 when neither tool is there).
"""

import os
import shutil
import subprocess
import sys
import tempfile


class Unavailable(Exception):
    """Neither `cryptography` nor `openssl` is installed."""


def sign(csr_pem):
    """Makes a CA and signs `csr_pem` (text) with it: (signed certificate, CA certificate), PEM."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            raise Unavailable("neither Python's cryptography package nor openssl is installed")
        return _sign_with_openssl(csr_pem)
    return _sign_with_cryptography(csr_pem)


def _sign_with_cryptography(csr_pem):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    year = datetime.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kmscks test customer CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + 10 * year)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid, "the cluster CSR's signature does not verify"
    signed = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_name)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + 10 * year)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return signed.public_bytes(pem).decode(), ca_cert.public_bytes(pem).decode()


def _sign_with_openssl(csr_pem):
    with tempfile.TemporaryDirectory() as d:
        p = lambda name: os.path.join(d, name)  # noqa: E731
        with open(p("cluster.csr"), "w") as f:
            f.write(csr_pem)
        run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", p("ca.key"))
        run("req", "-new", "-x509", "-days", "3650", "-key", p("ca.key"),
            "-subj", "/CN=kmscks test customer CA", "-out", p("ca.crt"))
        run("x509", "-req", "-days", "3650", "-in", p("cluster.csr"), "-CA", p("ca.crt"),
            "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p("cluster.crt"))
        with open(p("cluster.crt")) as signed, open(p("ca.crt")) as anchor:
            return signed.read(), anchor.read()


if __name__ == "__main__":
    csr_file, signed_out, anchor_out = sys.argv[1:4]
    try:
        with open(csr_file) as f:
            signed, anchor = sign(f.read())
    except Unavailable as e:
        print(f"ca.py: {e}", file=sys.stderr)
        sys.exit(3)
    with open(signed_out, "w") as f:
        f.write(signed)
    with open(anchor_out, "w") as f:
        f.write(anchor)
