"""boto3 uses HMAC keys of kmscksd's default key store through the AWS JSON endpoint.

Run by tests/aws_clients.rs with the endpoint URL (credentials and Region in the environment).
What a program written for AWS does with an HMAC key: create_key with an HMAC KeySpec and
KeyUsage GENERATE_VERIFY_MAC, describe_key (MacAlgorithms), generate_mac and verify_mac, and
the exceptions as botocore's classes (KMSInvalidMacException, InvalidKeyUsageException,
DryRunOperationException). Every raw answer is checked against botocore's model
(`shape_check`).
"""

import os
import sys

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_check  # noqa: E402
from expect import fails  # noqa: E402

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)
shape_check.watch(kms)


SPECS = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
for spec, length in SPECS.items():
    algorithm = "HMAC_SHA_" + spec.split("_")[1]
    meta = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert meta["KeySpec"] == spec, meta
    assert meta["MacAlgorithms"] == [algorithm], meta
    assert "EncryptionAlgorithms" not in meta, meta
    key_id = meta["KeyId"]
    out = kms.generate_mac(KeyId=key_id, Message=b"hello", MacAlgorithm=algorithm)
    assert len(out["Mac"]) == length, out
    assert out["MacAlgorithm"] == algorithm and out["KeyId"] == meta["Arn"], out
    ok = kms.verify_mac(KeyId=key_id, Message=b"hello", MacAlgorithm=algorithm, Mac=out["Mac"])
    assert ok["MacValid"] is True and ok["MacAlgorithm"] == algorithm, ok
    bad = bytes([out["Mac"][0] ^ 1]) + out["Mac"][1:]
    fails(kms.exceptions.KMSInvalidMacException, kms.verify_mac, KeyId=key_id, Message=b"hello", MacAlgorithm=algorithm, Mac=bad)

key_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
fails(kms.exceptions.InvalidKeyUsageException, kms.generate_mac, KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_512")
fails(kms.exceptions.InvalidKeyUsageException, kms.encrypt, KeyId=key_id, Plaintext=b"m")
fails(kms.exceptions.DryRunOperationException, kms.generate_mac, KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256", DryRun=True)
fails(kms.exceptions.UnsupportedOperationException, kms.enable_key_rotation, KeyId=key_id)
symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
fails(kms.exceptions.InvalidKeyUsageException, kms.generate_mac, KeyId=symmetric, Message=b"m", MacAlgorithm="HMAC_SHA_256")

problems = shape_check.problems()
for op, code in shape_check.unmodeled_errors():
    print(f"note: {op} answered {code}, which botocore's model of {op} does not list")
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
print("boto3 HMAC key flow ok")
