"""boto3 walks the four steps of a custom key store against kmscksd's AWS JSON endpoint.

Run by tests/aws_clients.rs with the endpoint URL (credentials and Region in the environment).
What a program written for AWS does, with nothing but `endpoint_url` changed:

1. cloudhsmv2: create_cluster (polled from CREATE_IN_PROGRESS to UNINITIALIZED), create_hsm
   in two zones, the cluster CSR from describe_clusters signed by a CA made here,
   initialize_cluster (polled to INITIALIZED); activation and kmsuser are CloudHSM CLI's on
   AWS, here kmscks's extra operations (`extension.call`).
2. kms: create_custom_key_store, 3. connect_custom_key_store (polled to CONNECTED),
4. create_key in the store; then the cryptographic operations with an encryption context,
   grants (another principal decrypting through one until it retires it), the key-state
   rules, key rotation of a default-store key, imported key material, and the exceptions as
   botocore's classes.

Every raw answer is checked against botocore's model of the operation (`shape_check`).
Exit status 3 with a reason on stderr: no way to sign the CSR here (the test skips).
"""

import datetime
import os
import sys
import time

import boto3
import botocore.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ca  # noqa: E402
import extension  # noqa: E402
import shape_check  # noqa: E402
from expect import fails  # noqa: E402

endpoint = sys.argv[1]
kms = boto3.client("kms", endpoint_url=endpoint)
hsm = boto3.client("cloudhsmv2", endpoint_url=endpoint)
shape_check.watch(kms)
shape_check.watch(hsm)

KMSUSER_PASSWORD = "kmsuserPassw0rd"


def until(what, probe, timeout=30.0):
    """Polls `probe` until it returns something true, and returns that; fails after `timeout`.
    The pause between polls only bounds how often we look."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def cluster(cluster_id):
    found = hsm.describe_clusters(Filters={"clusterIds": [cluster_id]})["Clusters"]
    assert [c["ClusterId"] for c in found] == [cluster_id], found
    return found[0]


def cluster_in(cluster_id, state):
    c = cluster(cluster_id)
    return c if c["State"] == state else None


# ---- 1. The cluster: created, HSMs in two zones, initialized with our CA, activated, kmsuser.
subnets = ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]
created = hsm.create_cluster(
    HsmType="hsm2m.medium", SubnetIds=subnets, TagList=[{"Key": "team", "Value": "kms"}]
)["Cluster"]
cluster_id = created["ClusterId"]
assert created["State"] in ("CREATE_IN_PROGRESS", "UNINITIALIZED"), created
assert created["HsmType"] == "hsm2m.medium", created
assert sorted(created["SubnetMapping"].values()) == sorted(subnets), created
c = until("the cluster to be UNINITIALIZED", lambda: cluster_in(cluster_id, "UNINITIALIZED"))
zones = sorted(c["SubnetMapping"])
assert len(zones) == 2 and zones[0] != zones[1], c

for zone in zones:
    h = hsm.create_hsm(ClusterId=cluster_id, AvailabilityZone=zone)["Hsm"]
    assert h["AvailabilityZone"] == zone and h["ClusterId"] == cluster_id, h
    assert h["SubnetId"] == c["SubnetMapping"][zone], h
c = cluster(cluster_id)
assert sorted(h["AvailabilityZone"] for h in c["Hsms"]) == zones, c
csr = c["Certificates"]["ClusterCsr"]
assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----"), csr

try:
    signed_cert, trust_anchor = ca.sign(csr)
except ca.Unavailable as e:
    print(f"skipped: {e}", file=sys.stderr)
    sys.exit(3)

# A certificate not signed by the anchor is refused, and the cluster stays UNINITIALIZED.
_, other_anchor = ca.sign(csr)
fails(
    hsm.exceptions.CloudHsmInvalidRequestException,
    hsm.initialize_cluster,
    ClusterId=cluster_id,
    SignedCert=signed_cert,
    TrustAnchor=other_anchor,
)
init = hsm.initialize_cluster(ClusterId=cluster_id, SignedCert=signed_cert, TrustAnchor=trust_anchor)
assert init["State"] in ("INITIALIZE_IN_PROGRESS", "INITIALIZED"), init
c = until("the cluster to be INITIALIZED", lambda: cluster_in(cluster_id, "INITIALIZED"))
assert c["Certificates"]["ClusterCertificate"].strip() == signed_cert.strip(), c
fails(
    hsm.exceptions.CloudHsmInvalidRequestException,
    hsm.initialize_cluster,
    ClusterId=cluster_id,
    SignedCert=signed_cert,
    TrustAnchor=trust_anchor,
)

activated = extension.call(
    hsm, "BaldrApiService.ActivateCluster", {"ClusterId": cluster_id, "Password": "adminPassw0rd"}
)
assert activated["Cluster"]["State"] == "ACTIVE", activated
assert cluster(cluster_id)["State"] == "ACTIVE"
extension.call(
    hsm,
    "BaldrApiService.CreateUser",
    {"ClusterId": cluster_id, "Username": "kmsuser", "Role": "crypto-user", "Password": KMSUSER_PASSWORD},
)

# cloudhsmv2's own tagging operations (TagResource, UntagResource, ListTags).
assert cluster(cluster_id)["TagList"] == [{"Key": "team", "Value": "kms"}]
hsm.tag_resource(ResourceId=cluster_id, TagList=[{"Key": "env", "Value": "test"}])
tags = hsm.list_tags(ResourceId=cluster_id)["TagList"]
assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "test"), ("team", "kms")], tags
hsm.untag_resource(ResourceId=cluster_id, TagKeyList=["env"])
assert hsm.list_tags(ResourceId=cluster_id)["TagList"] == [{"Key": "team", "Value": "kms"}]

# ---- 2. The custom key store.
store_id = kms.create_custom_key_store(
    CustomKeyStoreName="ExampleKeyStore",
    CloudHsmClusterId=cluster_id,
    TrustAnchorCertificate=trust_anchor,
    KeyStorePassword=KMSUSER_PASSWORD,
)["CustomKeyStoreId"]
store = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
assert store["ConnectionState"] == "DISCONNECTED", store
assert store["CloudHsmClusterId"] == cluster_id, store
assert store["CustomKeyStoreName"] == "ExampleKeyStore", store
assert store["CustomKeyStoreType"] == "AWS_CLOUDHSM", store
assert store["TrustAnchorCertificate"].strip() == trust_anchor.strip(), store
assert store["CreationDate"].year >= 2024, store

# The same request again names the same (DISCONNECTED) store, as on AWS; the name with other
# properties is in use, and so is the cluster under another name.
again = kms.create_custom_key_store(
    CustomKeyStoreName="ExampleKeyStore",
    CloudHsmClusterId=cluster_id,
    TrustAnchorCertificate=trust_anchor,
    KeyStorePassword=KMSUSER_PASSWORD,
)
assert again["CustomKeyStoreId"] == store_id, again
fails(
    kms.exceptions.CustomKeyStoreNameInUseException,
    kms.create_custom_key_store,
    CustomKeyStoreName="ExampleKeyStore",
    CloudHsmClusterId=cluster_id,
    TrustAnchorCertificate=trust_anchor,
    KeyStorePassword="anotherPassw0rd",
)
fails(
    kms.exceptions.CloudHsmClusterInUseException,
    kms.create_custom_key_store,
    CustomKeyStoreName="OtherKeyStore",
    CloudHsmClusterId=cluster_id,
    TrustAnchorCertificate=trust_anchor,
    KeyStorePassword=KMSUSER_PASSWORD,
)
fails(
    kms.exceptions.CloudHsmClusterNotFoundException,
    kms.create_custom_key_store,
    CustomKeyStoreName="NoSuchCluster",
    CloudHsmClusterId="cluster-234abcdefgh",
    TrustAnchorCertificate=trust_anchor,
    KeyStorePassword=KMSUSER_PASSWORD,
)
fails(
    kms.exceptions.CustomKeyStoreNotFoundException,
    kms.describe_custom_key_stores,
    CustomKeyStoreId="cks-1234567890abcdef0",
)
# A key cannot be made in a store that is not connected.
fails(
    kms.exceptions.CustomKeyStoreInvalidStateException,
    kms.create_key,
    Origin="AWS_CLOUDHSM",
    CustomKeyStoreId=store_id,
)

# ---- 3. Connected.
kms.connect_custom_key_store(CustomKeyStoreId=store_id)


def store_connected():
    s = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    assert s["ConnectionState"] in ("CONNECTING", "CONNECTED"), s
    return s["ConnectionState"] == "CONNECTED"


until("the store to be CONNECTED", store_connected)
# A connected store cannot be deleted.
fails(
    kms.exceptions.CustomKeyStoreInvalidStateException,
    kms.delete_custom_key_store,
    CustomKeyStoreId=store_id,
)

# ---- 4. A key in the store, and what it does.
key = kms.create_key(
    Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id, Description="in the store"
)["KeyMetadata"]
key_id = key["KeyId"]
assert key["Origin"] == "AWS_CLOUDHSM", key
assert key["CustomKeyStoreId"] == store_id, key
assert key["CloudHsmClusterId"] == cluster_id, key
assert key["KeyState"] == "Enabled" and key["Enabled"], key
assert key["KeyManager"] == "CUSTOMER", key
assert key["KeySpec"] == "SYMMETRIC_DEFAULT" and key["KeyUsage"] == "ENCRYPT_DECRYPT", key
assert key["Arn"].endswith(f":key/{key_id}"), key
assert key["CreationDate"].year >= 2024, key
kms.create_alias(AliasName="alias/in-store", TargetKeyId=key_id)
described = kms.describe_key(KeyId="alias/in-store")["KeyMetadata"]
assert described["KeyId"] == key_id, described
listed = kms.list_keys()["Keys"]
assert any(k["KeyId"] == key_id for k in listed), listed

ctx = {"tenant": "a", "purpose": "boto3"}
enc = kms.encrypt(KeyId="alias/in-store", Plaintext=b"hello store", EncryptionContext=ctx)
assert enc["KeyId"] == key["Arn"], enc
assert enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", enc
dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
assert dec["Plaintext"] == b"hello store" and dec["KeyId"] == key["Arn"], dec
dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx, KeyId=key_id)
assert dec["Plaintext"] == b"hello store", dec
fails(
    kms.exceptions.InvalidCiphertextException,
    kms.decrypt,
    CiphertextBlob=enc["CiphertextBlob"],
    EncryptionContext={"tenant": "b", "purpose": "boto3"},
)
fails(kms.exceptions.InvalidCiphertextException, kms.decrypt, CiphertextBlob=enc["CiphertextBlob"])
fails(kms.exceptions.InvalidCiphertextException, kms.decrypt, CiphertextBlob=b"\x01" * 64)

dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == key["Arn"], dk
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
dk128 = kms.generate_data_key(KeyId=key_id, NumberOfBytes=16)
assert len(dk128["Plaintext"]) == 16, dk128
bare = kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_128", EncryptionContext=ctx)
assert "Plaintext" not in bare, bare
assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]) == 16
assert len(kms.generate_random(NumberOfBytes=24)["Plaintext"]) == 24

# ReEncrypt into a second key of the store, under a new context.
other = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id)["KeyMetadata"]
new_ctx = {"tenant": "a", "purpose": "moved"}
re = kms.re_encrypt(
    CiphertextBlob=enc["CiphertextBlob"],
    SourceEncryptionContext=ctx,
    DestinationKeyId=other["KeyId"],
    DestinationEncryptionContext=new_ctx,
)
assert re["SourceKeyId"] == key["Arn"] and re["KeyId"] == other["Arn"], re
assert re["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", re
assert re["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", re
moved = kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext=new_ctx)
assert moved["Plaintext"] == b"hello store" and moved["KeyId"] == other["Arn"], moved
fails(
    kms.exceptions.InvalidCiphertextException,
    kms.re_encrypt,
    CiphertextBlob=enc["CiphertextBlob"],
    SourceEncryptionContext={"tenant": "b"},
    DestinationKeyId=other["KeyId"],
)
fails(
    kms.exceptions.IncorrectKeyException,
    kms.decrypt,
    CiphertextBlob=enc["CiphertextBlob"],
    EncryptionContext=ctx,
    KeyId=other["KeyId"],
)

# Key-state rules.
kms.disable_key(KeyId=key_id)
assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
fails(kms.exceptions.DisabledException, kms.encrypt, KeyId=key_id, Plaintext=b"x")
fails(
    kms.exceptions.DisabledException,
    kms.decrypt,
    CiphertextBlob=enc["CiphertextBlob"],
    EncryptionContext=ctx,
)
kms.enable_key(KeyId=key_id)
deletion = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
assert deletion["KeyState"] == "PendingDeletion" and deletion["KeyId"] == key["Arn"], deletion
assert deletion["PendingWindowInDays"] == 7, deletion
assert deletion["DeletionDate"] > key["CreationDate"], deletion
fails(kms.exceptions.KMSInvalidStateException, kms.encrypt, KeyId=key_id, Plaintext=b"x")
fails(kms.exceptions.KMSInvalidStateException, kms.enable_key, KeyId=key_id)
assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == key["Arn"]
# As on AWS, a key whose deletion is cancelled is Disabled.
assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
kms.enable_key(KeyId=key_id)
fails(kms.exceptions.UnsupportedOperationException, kms.enable_key_rotation, KeyId=key_id)
fails(kms.exceptions.UnsupportedOperationException, kms.get_key_rotation_status, KeyId=key_id)
fails(kms.exceptions.UnsupportedOperationException, kms.rotate_key_on_demand, KeyId=key_id)

# Rotation of a default-store key: the schedule, an on-demand rotation, the list, and a blob
# sealed before the rotation still decrypting.
plain = kms.create_key()["KeyMetadata"]
old_blob = kms.encrypt(KeyId=plain["KeyId"], Plaintext=b"before")["CiphertextBlob"]
status = kms.get_key_rotation_status(KeyId=plain["KeyId"])
status.pop("ResponseMetadata")
assert status == {"KeyRotationEnabled": False, "KeyId": plain["Arn"]}, status
kms.enable_key_rotation(KeyId=plain["KeyId"], RotationPeriodInDays=180)
status = kms.get_key_rotation_status(KeyId=plain["Arn"])
assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 180, status
assert status["NextRotationDate"] > plain["CreationDate"], status
assert kms.rotate_key_on_demand(KeyId=plain["KeyId"])["KeyId"] == plain["KeyId"]
rotations = kms.list_key_rotations(KeyId=plain["KeyId"])
assert [r["RotationType"] for r in rotations["Rotations"]] == ["ON_DEMAND"], rotations
assert not rotations["Truncated"], rotations
assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"before"
new_blob = kms.encrypt(KeyId=plain["KeyId"], Plaintext=b"after")["CiphertextBlob"]
assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"after"
kms.disable_key_rotation(KeyId=plain["KeyId"])
assert not kms.get_key_rotation_status(KeyId=plain["KeyId"])["KeyRotationEnabled"]

# Imported key material: the developer guide's steps, the material wrapped by the
# `cryptography` package (not exercised, saying so, when it is not installed).
try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
except ImportError:
    print("note: imported key material not exercised: python3 cryptography is not installed")
else:
    OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ext = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert ext["KeyState"] == "PendingImport" and ext["Origin"] == "EXTERNAL", ext
    params = kms.get_parameters_for_import(
        KeyId=ext["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_3072"
    )
    public = serialization.load_der_public_key(params["PublicKey"])
    assert public.key_size == 3072, public.key_size
    material = os.urandom(32)
    # The default ExpirationModel is KEY_MATERIAL_EXPIRES: ValidTo is required.
    done = kms.import_key_material(
        KeyId=ext["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=public.encrypt(material, OAEP_SHA256),
        ValidTo=params["ParametersValidTo"] + datetime.timedelta(days=30),
    )
    assert len(done["KeyMaterialId"]) == 64, done
    meta = kms.describe_key(KeyId=ext["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES", meta
    assert meta["ValidTo"] > params["ParametersValidTo"], meta
    imported_blob = kms.encrypt(KeyId=ext["KeyId"], Plaintext=b"imported")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=ext["KeyId"])
    fails(kms.exceptions.KMSInvalidStateException, kms.decrypt, CiphertextBlob=imported_blob)
    fails(
        kms.exceptions.IncorrectKeyMaterialException,
        kms.import_key_material,
        KeyId=ext["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=public.encrypt(os.urandom(32), OAEP_SHA256),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    kms.import_key_material(
        KeyId=ext["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=public.encrypt(material, OAEP_SHA256),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert kms.decrypt(CiphertextBlob=imported_blob)["Plaintext"] == b"imported"

# Grants: another principal (the IAM user an access key id names) uses the key through one.
# The daemon's credentials file names this key (tests/aws_clients.rs, APP_CREDENTIALS).
app_arn = "arn:aws:iam::111122223333:user/app"
assert key["Arn"].split(":")[4] == "111122223333", key
app = boto3.client("kms", endpoint_url=endpoint, aws_access_key_id="AKIDAPP", aws_secret_access_key="app-secret")
shape_check.watch(app)


def error_code(call, *args, **kwargs):
    """The AWS error code `call` fails with (for errors botocore's KMS model has no class for)."""
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} did not fail")


assert error_code(app.decrypt, CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx) == "AccessDeniedException"
grant_args = dict(
    KeyId=key_id,
    GranteePrincipal=app_arn,
    RetiringPrincipal=app_arn,
    Operations=["Decrypt", "DescribeKey"],
    Constraints={"EncryptionContextSubset": {"tenant": "a"}},
    Name="boto3-app",
)
fails(kms.exceptions.DryRunOperationException, kms.create_grant, DryRun=True, **grant_args)
assert kms.list_grants(KeyId=key_id)["Grants"] == []
g = kms.create_grant(**grant_args)
assert len(g["GrantId"]) == 64 and g["GrantToken"], g
again = kms.create_grant(**grant_args)
assert again["GrantId"] == g["GrantId"] and again["GrantToken"] != g["GrantToken"], again
dec = app.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx, GrantTokens=[g["GrantToken"]])
assert dec["Plaintext"] == b"hello store", dec
assert app.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"] == key["Arn"]
assert error_code(app.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionContext=ctx) == "AccessDeniedException"
listed = kms.list_grants(KeyId=key_id)["Grants"]
assert [x["GrantId"] for x in listed] == [g["GrantId"]], listed
assert listed[0]["Constraints"] == {"EncryptionContextSubset": {"tenant": "a"}}, listed
assert listed[0]["GranteePrincipal"] == app_arn and listed[0]["Name"] == "boto3-app", listed
assert listed[0]["CreationDate"] >= key["CreationDate"], listed
retirable = kms.list_retirable_grants(RetiringPrincipal=app_arn)["Grants"]
assert [x["GrantId"] for x in retirable] == [g["GrantId"]], retirable
fails(kms.exceptions.DryRunOperationException, kms.revoke_grant, KeyId=key_id, GrantId=g["GrantId"], DryRun=True)
fails(kms.exceptions.InvalidGrantTokenException, kms.retire_grant, GrantToken="not-a-token")
fails(kms.exceptions.InvalidGrantIdException, kms.revoke_grant, KeyId=key_id, GrantId="nope")
fails(kms.exceptions.NotFoundException, kms.revoke_grant, KeyId=key_id, GrantId="0" * 64)
app.retire_grant(GrantToken=g["GrantToken"])
assert error_code(app.decrypt, CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx) == "AccessDeniedException"
g = kms.create_grant(KeyId=key_id, GranteePrincipal=app_arn, Operations=["Encrypt"])
kms.revoke_grant(KeyId=key_id, GrantId=g["GrantId"])
assert kms.list_grants(KeyId=key_id)["Grants"] == []

# The other errors an application meets.
fails(kms.exceptions.NotFoundException, kms.describe_key, KeyId="alias/none")
fails(kms.exceptions.NotFoundException, kms.describe_key, KeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
fails(kms.exceptions.AlreadyExistsException, kms.create_alias, AliasName="alias/in-store", TargetKeyId=key_id)
fails(kms.exceptions.CustomKeyStoreNotFoundException, kms.connect_custom_key_store, CustomKeyStoreId="cks-1234567890abcdef0")
fails(hsm.exceptions.CloudHsmResourceNotFoundException, hsm.create_hsm, ClusterId="cluster-234abcdefgh", AvailabilityZone="us-east-1a")
fails(hsm.exceptions.CloudHsmInvalidRequestException, hsm.delete_cluster, ClusterId=cluster_id)
fails(hsm.exceptions.CloudHsmInvalidRequestException, hsm.create_cluster, HsmType="hsm9.huge", SubnetIds=subnets)

# A third HSM, removed by its network interface's IP address (how AWS's guide removes one).
extra = hsm.create_hsm(ClusterId=cluster_id, AvailabilityZone=zones[0])["Hsm"]
gone = hsm.delete_hsm(ClusterId=cluster_id, EniIp=extra["EniIp"])
assert gone["HsmId"] == extra["HsmId"], gone
assert extra["HsmId"] not in [h["HsmId"] for h in cluster(cluster_id)["Hsms"]]
fails(hsm.exceptions.CloudHsmResourceNotFoundException, hsm.delete_hsm, ClusterId=cluster_id, EniId="eni-0000000000")

# Disconnected: the store's keys cannot be used, and come back on reconnection.
kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
until(
    "the store to be DISCONNECTED",
    lambda: kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]["ConnectionState"]
    == "DISCONNECTED",
)
fails(kms.exceptions.KMSInvalidStateException, kms.encrypt, KeyId=key_id, Plaintext=b"x")
kms.connect_custom_key_store(CustomKeyStoreId=store_id)
until("the store to be CONNECTED again", store_connected)
assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == b"hello store"

problems = shape_check.problems()
for op, code in shape_check.unmodeled_errors():
    print(f"note: {op} answered {code}, which botocore's model of {op} does not list")
assert not problems, "answers that are not in AWS's shapes:\n" + "\n".join(problems)
print("boto3 custom key store flow ok")
