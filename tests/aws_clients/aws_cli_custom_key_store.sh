#!/usr/bin/env bash
# The `aws` CLI walks the four steps of a custom key store against kmscksd's AWS JSON endpoint,
# with nothing but --endpoint-url: what a runbook written for AWS does. Run by
# tests/aws_clients.rs as `aws_cli_custom_key_store.sh ENDPOINT`, with the credentials and
# Region in the environment, KMSCKS_WORK_DIR (a scratch directory) and KMSCKS_CA_HELPER
# (ca.py, for when openssl is missing). Activation and kmsuser are CloudHSM CLI's on AWS, not
# the aws CLI's: kmscks's extra operations, sent by extension.py beside this script.
# Exit status 3 with a reason on stderr: no way to sign the CSR here (the test skips).
set -euo pipefail

endpoint=$1
work=$KMSCKS_WORK_DIR
here=$(cd "$(dirname "$0")" && pwd)
export AWS_PAGER=""

kms() { aws --endpoint-url "$endpoint" kms "$@"; }
hsm() { aws --endpoint-url "$endpoint" cloudhsmv2 "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }

# expect_error CODE COMMAND...: the command fails with the AWS error CODE, as the CLI prints it.
expect_error() {
    local code=$1 out
    shift
    if out=$("$@" 2>&1); then
        fail "$* succeeded; expected $code"
    fi
    case $out in
        *"An error occurred ($code)"*) ;;
        *) fail "$*: expected $code, got: $out" ;;
    esac
}

# until_equal WHAT EXPECTED COMMAND...: runs COMMAND until it prints EXPECTED (at most 300
# times; each aws call takes a fraction of a second).
until_equal() {
    local what=$1 expected=$2 got
    shift 2
    for _ in $(seq 1 300); do
        got=$("$@")
        [ "$got" = "$expected" ] && return 0
    done
    fail "timed out waiting for $what (last: $got)"
}

cluster_state() {
    hsm describe-clusters --filters "clusterIds=$cluster" --query 'Clusters[0].State' --output text
}
store_state() {
    kms describe-custom-key-stores --custom-key-store-id "$store" \
        --query 'CustomKeyStores[0].ConnectionState' --output text
}

# ---- 1. The cluster.
cluster=$(hsm create-cluster --hsm-type hsm2m.medium --subnet-ids subnet-0a1b2c3d subnet-4e5f6a7b \
    --query Cluster.ClusterId --output text)
case $cluster in cluster-*) ;; *) fail "create-cluster: ClusterId $cluster" ;; esac
until_equal "UNINITIALIZED" UNINITIALIZED cluster_state
for zone in $(hsm describe-clusters --filters "clusterIds=$cluster" \
    --query 'Clusters[0].SubnetMapping | keys(@)' --output text); do
    got=$(hsm create-hsm --cluster-id "$cluster" --availability-zone "$zone" \
        --query Hsm.AvailabilityZone --output text)
    expect_eq "$got" "$zone" "create-hsm"
done
expect_eq "$(hsm describe-clusters --filters "clusterIds=$cluster" \
    --query 'length(Clusters[0].Hsms)' --output text)" 2 "HSMs in the cluster"
hsm describe-clusters --filters "clusterIds=$cluster" \
    --query 'Clusters[0].Certificates.ClusterCsr' --output text > "$work/cluster.csr"

# Sign the CSR with a CA of our own: openssl as the CloudHSM guide does, else ca.py.
if command -v openssl >/dev/null; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$work/customerCA.key"
    openssl req -new -x509 -days 3650 -key "$work/customerCA.key" \
        -subj "/CN=kmscks cli test CA" -out "$work/customerCA.crt"
    openssl x509 -req -days 3650 -in "$work/cluster.csr" -CA "$work/customerCA.crt" \
        -CAkey "$work/customerCA.key" -CAcreateserial -out "$work/cluster.crt" 2>/dev/null
else
    python3 "$KMSCKS_CA_HELPER" "$work/cluster.csr" "$work/cluster.crt" "$work/customerCA.crt"
fi
state=$(hsm initialize-cluster --cluster-id "$cluster" --signed-cert "file://$work/cluster.crt" \
    --trust-anchor "file://$work/customerCA.crt" --query State --output text)
case $state in INITIALIZE_IN_PROGRESS | INITIALIZED) ;; *) fail "initialize-cluster: $state" ;; esac
until_equal "INITIALIZED" INITIALIZED cluster_state
expect_error CloudHsmInvalidRequestException hsm initialize-cluster --cluster-id "$cluster" \
    --signed-cert "file://$work/cluster.crt" --trust-anchor "file://$work/customerCA.crt"

python3 "$here/extension.py" "$endpoint" cloudhsmv2 BaldrApiService.ActivateCluster \
    "{\"ClusterId\": \"$cluster\", \"Password\": \"adminPassw0rd\"}" > /dev/null
expect_eq "$(cluster_state)" ACTIVE "after activation"
python3 "$here/extension.py" "$endpoint" cloudhsmv2 BaldrApiService.CreateUser \
    "{\"ClusterId\": \"$cluster\", \"Username\": \"kmsuser\", \"Role\": \"crypto-user\", \"Password\": \"kmsuserPassw0rd\"}" \
    > /dev/null

# ---- 2. The custom key store.
store=$(kms create-custom-key-store --custom-key-store-name CliKeyStore \
    --cloud-hsm-cluster-id "$cluster" --trust-anchor-certificate "file://$work/customerCA.crt" \
    --key-store-password kmsuserPassw0rd --query CustomKeyStoreId --output text)
case $store in cks-*) ;; *) fail "create-custom-key-store: $store" ;; esac
expect_eq "$(store_state)" DISCONNECTED "a new store"
expect_error CustomKeyStoreNameInUseException kms create-custom-key-store \
    --custom-key-store-name CliKeyStore --cloud-hsm-cluster-id "$cluster" \
    --trust-anchor-certificate "file://$work/customerCA.crt" --key-store-password anotherPassw0rd

# ---- 3. Connected.
kms connect-custom-key-store --custom-key-store-id "$store" > /dev/null
until_equal "CONNECTED" CONNECTED store_state
# The JSON output, read by Python: the members an aws user's script reads.
kms describe-custom-key-stores --custom-key-store-id "$store" | python3 -c '
import json, sys
s = json.load(sys.stdin)["CustomKeyStores"][0]
assert s["CloudHsmClusterId"] == sys.argv[1], s
assert s["CustomKeyStoreType"] == "AWS_CLOUDHSM", s
assert s["TrustAnchorCertificate"].startswith("-----BEGIN CERTIFICATE-----"), s
# aws CLI v1 prints timestamps as received (epoch seconds), v2 as ISO 8601.
created = s["CreationDate"]
assert isinstance(created, (int, float)) and created > 1.7e9 or "T" in created, s
' "$cluster"

# ---- 4. A key in the store.
key=$(kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$store" \
    --description "made by the aws CLI" --query KeyMetadata.KeyId --output text)
kms describe-key --key-id "$key" --output json | python3 -c '
import json, sys
k = json.load(sys.stdin)["KeyMetadata"]
assert k["Origin"] == "AWS_CLOUDHSM" and k["KeyState"] == "Enabled", k
assert k["CustomKeyStoreId"] == sys.argv[1] and k["CloudHsmClusterId"] == sys.argv[2], k
assert k["Description"] == "made by the aws CLI", k
' "$store" "$cluster"
kms create-alias --alias-name alias/cli --target-key-id "$key"

printf 'hello from the cli' > "$work/msg.txt"
kms encrypt --key-id alias/cli --plaintext "fileb://$work/msg.txt" \
    --encryption-context tenant=a,purpose=cli --query CiphertextBlob --output text \
    | base64 -d > "$work/msg.enc"
kms decrypt --ciphertext-blob "fileb://$work/msg.enc" --encryption-context tenant=a,purpose=cli \
    --query Plaintext --output text | base64 -d > "$work/msg.out"
cmp "$work/msg.txt" "$work/msg.out" || fail "decrypt gave other bytes"
expect_error InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$work/msg.enc" \
    --encryption-context tenant=b,purpose=cli

# A data key, and its ciphertext re-encrypted into a second key of the store.
kms generate-data-key --key-id "$key" --key-spec AES_256 --encryption-context tenant=a \
    --output json > "$work/dk.json"
python3 -c '
import base64, json, sys
d = json.load(open(sys.argv[1]))
assert len(base64.b64decode(d["Plaintext"])) == 32, d
open(sys.argv[2], "wb").write(base64.b64decode(d["CiphertextBlob"]))
' "$work/dk.json" "$work/dk.enc"
other=$(kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$store" \
    --query KeyMetadata.Arn --output text)
kms re-encrypt --ciphertext-blob "fileb://$work/dk.enc" --source-encryption-context tenant=a \
    --destination-key-id "$other" --destination-encryption-context tenant=b \
    --query CiphertextBlob --output text | base64 -d > "$work/dk.re"
expect_eq "$(kms decrypt --ciphertext-blob "fileb://$work/dk.re" --encryption-context tenant=b \
    --query KeyId --output text)" "$other" "the re-encrypted data key's key"

# Grants, as a runbook gives one: to a principal, with a constraint in the CLI's shorthand.
grantee=arn:aws:iam::111122223333:user/cli-app
expect_error DryRunOperationException kms create-grant --key-id "$key" \
    --grantee-principal "$grantee" --operations Decrypt --dry-run
grant=$(kms create-grant --key-id "$key" --grantee-principal "$grantee" \
    --operations Decrypt Encrypt --constraints 'EncryptionContextSubset={tenant=a}' \
    --retiring-principal "$grantee" --name cli-grant --query GrantId --output text)
expect_eq "$(kms list-grants --key-id "$key" --query 'Grants[0].GrantId' --output text)" \
    "$grant" "list-grants"
expect_eq "$(kms list-grants --key-id "$key" \
    --query 'Grants[0].Constraints.EncryptionContextSubset.tenant' --output text)" a \
    "the grant's constraint"
expect_eq "$(kms list-retirable-grants --retiring-principal "$grantee" \
    --query 'length(Grants)' --output text)" 1 "list-retirable-grants"
expect_error InvalidGrantIdException kms revoke-grant --key-id "$key" --grant-id nope
kms revoke-grant --key-id "$key" --grant-id "$grant"
expect_eq "$(kms list-grants --key-id "$key" --query 'length(Grants)' --output text)" 0 \
    "after revoke-grant"

# Key states.
kms disable-key --key-id "$key"
expect_error DisabledException kms encrypt --key-id "$key" --plaintext "fileb://$work/msg.txt"
kms enable-key --key-id "$key"
expect_eq "$(kms schedule-key-deletion --key-id "$key" --pending-window-in-days 7 \
    --query KeyState --output text)" PendingDeletion "schedule-key-deletion"
expect_error KMSInvalidStateException kms encrypt --key-id "$key" --plaintext "fileb://$work/msg.txt"
kms cancel-key-deletion --key-id "$key" > /dev/null
expect_eq "$(kms describe-key --key-id "$key" --query KeyMetadata.KeyState --output text)" \
    Disabled "after cancel-key-deletion"

# Key rotation: refused for the store's key, as AWS refuses it; a default-store key rotates, and
# a blob sealed before the rotation still decrypts.
expect_error UnsupportedOperationException kms enable-key-rotation --key-id "$key"
plain=$(kms create-key --query KeyMetadata.KeyId --output text)
kms encrypt --key-id "$plain" --plaintext "fileb://$work/msg.txt" \
    --query CiphertextBlob --output text | base64 -d > "$work/before.enc"
kms enable-key-rotation --key-id "$plain" --rotation-period-in-days 180
expect_eq "$(kms get-key-rotation-status --key-id "$plain" --query RotationPeriodInDays --output text)" \
    180 "get-key-rotation-status"
expect_eq "$(kms rotate-key-on-demand --key-id "$plain" --query KeyId --output text)" "$plain" \
    "rotate-key-on-demand"
expect_eq "$(kms list-key-rotations --key-id "$plain" --query 'Rotations[0].RotationType' --output text)" \
    ON_DEMAND "list-key-rotations"
expect_eq "$(kms decrypt --ciphertext-blob "fileb://$work/before.enc" --query Plaintext --output text \
    | base64 -d)" "$(cat "$work/msg.txt")" "decrypt after rotation"
kms disable-key-rotation --key-id "$plain"

# Errors as the CLI prints them.
expect_error NotFoundException kms describe-key --key-id alias/none
expect_error CustomKeyStoreNotFoundException kms describe-custom-key-stores \
    --custom-key-store-id cks-1234567890abcdef0
expect_error CustomKeyStoreInvalidStateException kms delete-custom-key-store \
    --custom-key-store-id "$store"
expect_error CloudHsmResourceNotFoundException hsm create-hsm --cluster-id cluster-234abcdefgh \
    --availability-zone us-east-1a
expect_error CloudHsmInvalidRequestException hsm delete-cluster --cluster-id "$cluster"

# A third HSM, removed by its IP address as AWS's guide does.
ip=$(hsm create-hsm --cluster-id "$cluster" --availability-zone "$zone" --query Hsm.EniIp --output text)
hsm delete-hsm --cluster-id "$cluster" --eni-ip "$ip" > /dev/null
expect_eq "$(hsm describe-clusters --filters "clusterIds=$cluster" \
    --query 'length(Clusters[0].Hsms)' --output text)" 2 "HSMs after delete-hsm --eni-ip"

echo "aws CLI custom key store flow ok"
