"""boto3 uses RSA encryption keys and ECC key agreement keys of kmscksd's default key store
through the AWS JSON endpoint, and Python's `cryptography` checks them independently.

Run by tests/aws_clients.rs with the endpoint URL (credentials and Region in the environment).
RSA: create_key with KeyUsage ENCRYPT_DECRYPT, get_public_key (EncryptionAlgorithms), a
ciphertext `cryptography` makes with RSAES-OAEP from the public key decrypted by decrypt, and
one encrypt makes decrypted again; re_encrypt between an RSA and a symmetric key. ECC:
create_key with KeyUsage KEY_AGREEMENT, derive_shared_secret with a public key `cryptography`
made, equal to the secret `cryptography` derives from the KMS key's public key. The exceptions
as botocore's classes; every raw answer checked against botocore's model (`shape_check`).
Exit status 3 with a reason on stderr: `cryptography` is not installed (the test skips).
"""

import os
import sys

import boto3

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
except ImportError:
    print("python3 has no cryptography module (pip install cryptography)", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_check  # noqa: E402
from expect import fails  # noqa: E402

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)
shape_check.watch(kms)

def validation_fails(call, **kwargs):
    """Asserts that `call` answers ValidationException (which botocore has no class for)."""
    e = fails(kms.exceptions.ClientError, call, **kwargs)
    assert e.response["Error"]["Code"] == "ValidationException", e.response


OAEP = {
    "RSAES_OAEP_SHA_1": padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    "RSAES_OAEP_SHA_256": padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
}

# RSA encryption.
meta = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
assert meta["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], meta
assert "SigningAlgorithms" not in meta, meta
rsa_key = meta["KeyId"]
pub = kms.get_public_key(KeyId=rsa_key)
assert pub["KeyUsage"] == "ENCRYPT_DECRYPT" and pub["EncryptionAlgorithms"] == meta["EncryptionAlgorithms"], pub
public = serialization.load_der_public_key(pub["PublicKey"])
for algorithm, oaep in OAEP.items():
    sealed = public.encrypt(b"sealed by cryptography", oaep)
    out = kms.decrypt(KeyId=rsa_key, CiphertextBlob=sealed, EncryptionAlgorithm=algorithm)
    assert out["Plaintext"] == b"sealed by cryptography" and out["EncryptionAlgorithm"] == algorithm, out
    enc = kms.encrypt(KeyId=rsa_key, Plaintext=b"by kms", EncryptionAlgorithm=algorithm)
    assert len(enc["CiphertextBlob"]) == 256 and enc["EncryptionAlgorithm"] == algorithm, enc
    back = kms.decrypt(KeyId=rsa_key, CiphertextBlob=enc["CiphertextBlob"], EncryptionAlgorithm=algorithm)
    assert back["Plaintext"] == b"by kms", back
symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
blob = kms.encrypt(KeyId=symmetric, Plaintext=b"moved")["CiphertextBlob"]
moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=rsa_key, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
assert moved["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256", moved
out = kms.decrypt(KeyId=rsa_key, CiphertextBlob=moved["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")
assert out["Plaintext"] == b"moved", out
fails(kms.exceptions.InvalidKeyUsageException, kms.encrypt, KeyId=rsa_key, Plaintext=b"m")
validation_fails(kms.encrypt, KeyId=rsa_key, Plaintext=b"m" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
validation_fails(kms.encrypt, KeyId=rsa_key, Plaintext=b"m", EncryptionAlgorithm="RSAES_OAEP_SHA_256", EncryptionContext={"a": "b"})
fails(kms.exceptions.InvalidCiphertextException, kms.decrypt, KeyId=rsa_key, CiphertextBlob=b"\x01" * 256, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
fails(kms.exceptions.DryRunOperationException, kms.encrypt, KeyId=rsa_key, Plaintext=b"m", EncryptionAlgorithm="RSAES_OAEP_SHA_1", DryRun=True)

# ECDH key agreement.
for spec, curve in [("ECC_NIST_P256", ec.SECP256R1()), ("ECC_NIST_P384", ec.SECP384R1()), ("ECC_NIST_P521", ec.SECP521R1())]:
    meta = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert meta["KeyAgreementAlgorithms"] == ["ECDH"], meta
    key_id = meta["KeyId"]
    pub = kms.get_public_key(KeyId=key_id)
    assert pub["KeyUsage"] == "KEY_AGREEMENT" and pub["KeyAgreementAlgorithms"] == ["ECDH"], pub
    kms_public = serialization.load_der_public_key(pub["PublicKey"])
    local = ec.generate_private_key(curve)
    local_der = local.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=local_der)
    assert out["SharedSecret"] == local.exchange(ec.ECDH(), kms_public), spec
    assert out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyOrigin"] == "AWS_KMS" and out["KeyId"] == meta["Arn"], out
    fails(kms.exceptions.DryRunOperationException, kms.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=local_der, DryRun=True)
validation_fails(kms.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=b"garbage")
fails(kms.exceptions.InvalidKeyUsageException, kms.derive_shared_secret, KeyId=symmetric, KeyAgreementAlgorithm="ECDH", PublicKey=local_der)

problems = shape_check.problems()
for op, code in shape_check.unmodeled_errors():
    print(f"note: {op} answered {code}, which botocore's model of {op} does not list")
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
