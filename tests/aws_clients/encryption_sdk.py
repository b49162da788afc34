"""The AWS Encryption SDK for Python encrypts and decrypts through kmscks.

Run by tests/aws_clients.rs against a `--bootstrap` daemon (a CONNECTED custom key store whose
key is `alias/demo`). The SDK makes its own KMS clients from a botocore session; that session's
profile names the daemon as its `endpoint_url` (AWS's configured-endpoint setting), which is
all an application changes. Checked: an envelope under the store's key with an encryption
context (GenerateDataKey, then Decrypt), one under two keys decrypted with either
(Encrypt of the data key for the second), streaming in frames, the discovery provider, and a
provider restricted to another key failing to decrypt.
"""

import io
import os
import sys
import tempfile

import aws_encryption_sdk
import boto3
import botocore.session
from aws_encryption_sdk.identifiers import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import DiscoveryFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_check  # noqa: E402

endpoint = sys.argv[1]
config = os.path.join(tempfile.mkdtemp(), "config")
with open(config, "w") as f:
    # A session with a profile takes its credentials from the profile, not the environment.
    f.write(
        f"[profile kmscks]\nendpoint_url = {endpoint}\nregion = us-east-1\n"
        f"aws_access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n"
    )
os.environ["AWS_CONFIG_FILE"] = config


def session():
    """A botocore session whose clients reach the daemon, watched by shape_check."""
    s = botocore.session.Session(profile="kmscks")
    shape_check.watch_session(s)
    return s


kms = boto3.Session(botocore_session=session()).client("kms")
demo = kms.describe_key(KeyId="alias/demo")["KeyMetadata"]
assert demo["Origin"] == "AWS_CLOUDHSM", demo
store_key = demo["Arn"]
plain_key = kms.create_key(Description="outside the store")["KeyMetadata"]["Arn"]

client = aws_encryption_sdk.EncryptionSDKClient(
    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
)


def provider(*key_arns):
    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=list(key_arns), botocore_session=session()
    )


message = b"kmscks through the Encryption SDK " * 100
context = {"tenant": "a", "purpose": "encryption-sdk"}

# One key in the custom key store.
ciphertext, header = client.encrypt(
    source=message, encryption_context=context, key_provider=provider(store_key)
)
assert message not in ciphertext
assert [k.key_provider.key_info.decode() for k in header.encrypted_data_keys] == [store_key], header
decrypted, dheader = client.decrypt(source=ciphertext, key_provider=provider(store_key))
assert decrypted == message
for k, v in context.items():
    assert dheader.encryption_context[k] == v, dheader.encryption_context

# Two keys: either one decrypts alone.
both, header = client.encrypt(
    source=message, encryption_context=context, key_provider=provider(store_key, plain_key)
)
assert len(header.encrypted_data_keys) == 2, header
for key in (store_key, plain_key):
    assert client.decrypt(source=both, key_provider=provider(key))[0] == message

# A provider for another key only cannot decrypt what the store's key alone protects.
try:
    client.decrypt(source=ciphertext, key_provider=provider(plain_key))
    raise AssertionError("a provider without the key decrypted")
except aws_encryption_sdk.exceptions.DecryptKeyError:
    pass

# Discovery: any key of this account and partition.
account = store_key.split(":")[4]
discovery = aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
    discovery_filter=DiscoveryFilter(account_ids=[account], partition="aws"),
    botocore_session=session(),
)
assert client.decrypt(source=ciphertext, key_provider=discovery)[0] == message

# Streaming, in small frames.
big = os.urandom(1 << 20)
out = io.BytesIO()
with client.stream(
    mode="e", source=io.BytesIO(big), key_provider=provider(store_key), frame_length=4096,
    encryption_context=context,
) as encryptor:
    for chunk in encryptor:
        out.write(chunk)
back = io.BytesIO()
with client.stream(mode="d", source=io.BytesIO(out.getvalue()), key_provider=provider(store_key)) as d:
    for chunk in d:
        back.write(chunk)
assert back.getvalue() == big

problems = shape_check.problems()
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
print("Encryption SDK through kmscks ok")
