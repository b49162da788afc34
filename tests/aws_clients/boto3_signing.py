"""boto3 uses asymmetric signing keys of kmscksd's default key store through the AWS JSON
endpoint, and Python's `cryptography` verifies what it signs.

Run by tests/aws_clients.rs with the endpoint URL (credentials and Region in the environment).
create_key with each RSA and ECC KeySpec and KeyUsage SIGN_VERIFY, get_public_key (DER
SubjectPublicKeyInfo, loaded by `cryptography`), sign with each algorithm the key allows
(RAW and DIGEST), the signature verified by `cryptography` and by verify, and the exceptions
as botocore's classes. Every raw answer is checked against botocore's model (`shape_check`).
Exit status 3 with a reason on stderr: `cryptography` is not installed (the test skips).
"""

import hashlib
import os
import sys

import boto3

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
except ImportError:
    print("python3 has no cryptography module (pip install cryptography)", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_check  # noqa: E402
from expect import fails  # noqa: E402

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)
shape_check.watch(kms)


HASHES = {"256": (hashes.SHA256, hashlib.sha256), "384": (hashes.SHA384, hashlib.sha384), "512": (hashes.SHA512, hashlib.sha512)}


def independent_verify(public, algorithm, message, signature):
    """Raises unless `cryptography` verifies the signature."""
    h = HASHES[algorithm[-3:]][0]()
    if algorithm.startswith("ECDSA"):
        public.verify(signature, message, ec.ECDSA(h))
    elif algorithm.startswith("RSASSA_PSS"):
        public.verify(signature, message, padding.PSS(padding.MGF1(h), h.digest_size), h)
    else:
        public.verify(signature, message, padding.PKCS1v15(), h)


message = b"signed by kmscks"
for spec in ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"]:
    meta = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert meta["KeySpec"] == spec and meta["KeyUsage"] == "SIGN_VERIFY", meta
    assert "EncryptionAlgorithms" not in meta, meta
    key_id = meta["KeyId"]
    pub = kms.get_public_key(KeyId=key_id)
    assert pub["KeySpec"] == spec and pub["SigningAlgorithms"] == meta["SigningAlgorithms"], pub
    public = serialization.load_der_public_key(pub["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey if spec.startswith("RSA") else ec.EllipticCurvePublicKey)
    for algorithm in meta["SigningAlgorithms"]:
        sig = kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm)
        assert sig["SigningAlgorithm"] == algorithm and sig["KeyId"] == meta["Arn"], sig
        independent_verify(public, algorithm, message, sig["Signature"])
        ok = kms.verify(KeyId=key_id, Message=message, SigningAlgorithm=algorithm, Signature=sig["Signature"])
        assert ok["SignatureValid"] is True, ok
        digest = HASHES[algorithm[-3:]][1](message).digest()
        by_digest = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)
        independent_verify(public, algorithm, message, by_digest["Signature"])
        fails(kms.exceptions.KMSInvalidSignatureException, kms.verify, KeyId=key_id, Message=b"other", SigningAlgorithm=algorithm, Signature=sig["Signature"])

key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
fails(kms.exceptions.InvalidKeyUsageException, kms.sign, KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_512")
fails(kms.exceptions.DryRunOperationException, kms.sign, KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
fails(kms.exceptions.InvalidKeyUsageException, kms.encrypt, KeyId=key_id, Plaintext=b"m")
symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
fails(kms.exceptions.UnsupportedOperationException, kms.get_public_key, KeyId=symmetric)
fails(kms.exceptions.InvalidKeyUsageException, kms.sign, KeyId=symmetric, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")

problems = shape_check.problems()
for op, code in shape_check.unmodeled_errors():
    print(f"note: {op} answered {code}, which botocore's model of {op} does not list")
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
print("boto3 signing key flow ok")
