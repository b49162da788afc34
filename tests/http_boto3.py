"""boto3 against kmscksd's AWS JSON endpoint (run by tests/http.rs with the endpoint URL).

Checks what an SDK user relies on: the key lifecycle, the crypto operations with an
encryption context, key-state rules, and botocore's exception classes for kmscks's errors;
and the CloudHSM v2 client reaching the simulated cluster API. With a second argument
`verified` (the daemon checks signatures), botocore's own SigV4 signatures are accepted and a
wrong secret or an unknown key gets AWS's errors.
"""

import sys

import boto3
import botocore.exceptions

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)

if len(sys.argv) > 2 and sys.argv[2] == "verified":
    for key_id, secret, code in [
        ("AKIDBOTO", "not-the-secret", "InvalidSignatureException"),
        ("AKIDNOBODY", "whatever", "UnrecognizedClientException"),
    ]:
        other = boto3.client(
            "kms",
            endpoint_url=endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        try:
            other.list_keys()
            raise AssertionError(f"{key_id} with a wrong secret got in")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == code, e.response

key = kms.create_key(Description="boto3")["KeyMetadata"]
assert key["KeyState"] == "Enabled", key
assert key["Description"] == "boto3", key
key_id = key["KeyId"]

kms.create_alias(AliasName="alias/boto3", TargetKeyId=key_id)
assert any(a["AliasName"] == "alias/boto3" for a in kms.list_aliases()["Aliases"])

ctx = {"tenant": "a"}
enc = kms.encrypt(KeyId="alias/boto3", Plaintext=b"hello", EncryptionContext=ctx)
assert enc["KeyId"].endswith(key_id), enc
dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
assert dec["Plaintext"] == b"hello", dec

dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
assert len(dk["Plaintext"]) == 32
again = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])
assert again["Plaintext"] == dk["Plaintext"]

try:
    kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"tenant": "b"})
    raise AssertionError("a wrong context decrypted")
except kms.exceptions.InvalidCiphertextException:
    pass

kms.disable_key(KeyId=key_id)
try:
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    raise AssertionError("a disabled key encrypted")
except kms.exceptions.DisabledException:
    pass
kms.enable_key(KeyId=key_id)

try:
    kms.describe_key(KeyId="alias/none")
    raise AssertionError("an unknown alias was described")
except kms.exceptions.NotFoundException as e:
    assert e.response["Error"]["Code"] == "NotFoundException"

deletion = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
assert deletion["KeyState"] == "PendingDeletion", deletion
kms.cancel_key_deletion(KeyId=key_id)

hsm = boto3.client("cloudhsmv2", endpoint_url=endpoint)
cluster = hsm.create_cluster(HsmType="hsm2m.medium", SubnetIds=["subnet-0a1b2c3d", "subnet-4e5f6a7b"])
cluster_id = cluster["Cluster"]["ClusterId"]
described = hsm.describe_clusters(Filters={"clusterIds": [cluster_id]})["Clusters"]
assert [c["ClusterId"] for c in described] == [cluster_id], described

print("boto3 flow ok")
