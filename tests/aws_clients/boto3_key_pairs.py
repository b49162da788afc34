"""boto3 generates data key pairs through kmscksd's AWS JSON endpoint, and Python's
`cryptography` checks that each private key matches its public key.

Run by tests/aws_clients.rs with the endpoint URL (credentials and Region in the environment).
generate_data_key_pair with each KeyPairSpec kmscks makes: the PKCS#8 private key and the DER
SubjectPublicKeyInfo public key loaded by `cryptography` and matched, the encrypted private
key opened by decrypt with its encryption context; generate_data_key_pair_without_plaintext;
DryRun and the exceptions as botocore's classes. Every raw answer is checked against
botocore's model (`shape_check`).
Exit status 3 with a reason on stderr: `cryptography` is not installed (the test skips).
"""

import os
import sys

import boto3

try:
    from cryptography.hazmat.primitives import serialization
except ImportError:
    print("python3 has no cryptography module (pip install cryptography)", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_check  # noqa: E402
from expect import fails  # noqa: E402

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)
shape_check.watch(kms)

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

key = kms.create_key()["KeyMetadata"]
context = {"purpose": "key pairs"}
for spec in ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"]:
    pair = kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=context)
    assert pair["KeyPairSpec"] == spec and pair["KeyId"] == key["Arn"], pair
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    assert private.public_key().public_bytes(DER, SPKI) == pair["PublicKey"], spec
    serialization.load_der_public_key(pair["PublicKey"])
    opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"] and opened["KeyId"] == key["Arn"], spec

lean = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256")
assert "PrivateKeyPlaintext" not in lean, lean
private = serialization.load_der_private_key(
    kms.decrypt(CiphertextBlob=lean["PrivateKeyCiphertextBlob"])["Plaintext"], password=None
)
assert private.public_key().public_bytes(DER, SPKI) == lean["PublicKey"]

fails(kms.exceptions.DryRunOperationException, kms.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="RSA_4096", DryRun=True)
fails(kms.exceptions.UnsupportedOperationException, kms.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="SM2")
signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
fails(kms.exceptions.InvalidKeyUsageException, kms.generate_data_key_pair, KeyId=signing, KeyPairSpec="ECC_NIST_P256")
fails(kms.exceptions.NotFoundException, kms.generate_data_key_pair_without_plaintext, KeyId="alias/none", KeyPairSpec="ECC_NIST_P256")
kms.disable_key(KeyId=key["KeyId"])
fails(kms.exceptions.DisabledException, kms.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256")

problems = shape_check.problems()
for op, code in shape_check.unmodeled_errors():
    print(f"note: {op} answered {code}, which botocore's model of {op} does not list")
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
print("boto3 data key pair flow ok")
