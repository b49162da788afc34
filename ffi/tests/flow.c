/*
 * flow.c: the four-step flow of a custom key store (cluster with two HSMs, initialized; the
 * kmsuser crypto user; the store, connected; a key in it), then every function of kmscks.h at
 * least once with its outputs checked. Written only from the header.
 *
 * Usage: flow embedded <data_dir> | flow daemon <socket_path>   (see check.h)
 */
#include "check.h"

#include <time.h>

#define KMSUSER_PASSWORD "kmsuserPassword1"
#define KMSUSER_PASSWORD_2 "kmsuserPassword2"

static const kmscks_context_entry CTX[] = {
    {"purpose", "c-flow"},
    {"tenant", "t-1"},
};
#define CTX_LEN (sizeof CTX / sizeof CTX[0])

static const uint8_t MESSAGE[] = "the quick brown fox, encrypted from C";

/* Step 1 to 3 on a fresh cluster: writes the cluster id and its trust anchor. */
static void make_cluster(const kmscks_client *c, char **cluster_id, char **anchor) {
    char *hsm_a = NULL, *hsm_b = NULL;
    CHECK_OK(kmscks_create_cluster(c, cluster_id));
    CHECK(strncmp(*cluster_id, "cluster-", 8) == 0);
    CHECK_OK(kmscks_create_hsm(c, *cluster_id, "us-east-1a", &hsm_a));
    CHECK_OK(kmscks_create_hsm(c, *cluster_id, "us-east-1b", &hsm_b));
    CHECK(strncmp(hsm_a, "hsm-", 4) == 0 && strncmp(hsm_b, "hsm-", 4) == 0);
    CHECK(strcmp(hsm_a, hsm_b) != 0);
    kmscks_string_free(hsm_a);
    kmscks_string_free(hsm_b);
    CHECK_OK(kmscks_initialize_cluster(c, *cluster_id, NULL, anchor));
    CHECK(strstr(*anchor, "-----BEGIN CERTIFICATE-----") != NULL);
    CHECK(count_of(*anchor, "-----END CERTIFICATE-----") == 1);
    CHECK_OK(kmscks_create_crypto_user(c, *cluster_id, "kmsuser", KMSUSER_PASSWORD));
}

/* Encrypt with a context, decrypt (key ARN out), check the round trip. */
static void encrypt_decrypt(const kmscks_client *c, const char *key_id, const char *key_uuid) {
    kmscks_buffer ct = {0}, pt = {0};
    char *arn = NULL;
    CHECK_OK(kmscks_encrypt(c, key_id, MESSAGE, sizeof MESSAGE, CTX, CTX_LEN, &ct));
    CHECK(ct.data != NULL && ct.len > sizeof MESSAGE);
    CHECK(!contains_bytes(ct.data, ct.len, MESSAGE, sizeof MESSAGE));
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, CTX, CTX_LEN, &pt, &arn));
    CHECK(same_bytes(&pt, MESSAGE, sizeof MESSAGE));
    CHECK(strncmp(arn, "arn:aws:kms:", 12) == 0);
    CHECK(strstr(arn, ":key/") != NULL && strstr(arn, key_uuid) != NULL);
    kmscks_string_free(arn);
    kmscks_buffer_free(&pt);
    CHECK(pt.data == NULL && pt.len == 0);
    kmscks_buffer_free(&ct);
    CHECK(ct.data == NULL && ct.len == 0);
}

static void data_keys(const kmscks_client *c, const char *key_id) {
    kmscks_buffer dk = {0}, dk_ct = {0}, back = {0}, ct2 = {0};
    CHECK_OK(kmscks_generate_data_key(c, key_id, 32, CTX, CTX_LEN, &dk, &dk_ct));
    CHECK(dk.len == 32 && dk_ct.len > 32);
    CHECK_OK(kmscks_decrypt(c, dk_ct.data, dk_ct.len, CTX, CTX_LEN, &back, NULL));
    CHECK(same_bytes(&back, dk.data, dk.len));
    kmscks_buffer_free(&back);
    kmscks_buffer_free(&dk);
    kmscks_buffer_free(&dk_ct);

    CHECK_OK(kmscks_generate_data_key_without_plaintext(c, key_id, 64, NULL, 0, &ct2));
    CHECK(ct2.len > 64);
    CHECK_OK(kmscks_decrypt(c, ct2.data, ct2.len, NULL, 0, &back, NULL));
    CHECK(back.len == 64);
    kmscks_buffer_free(&back);
    kmscks_buffer_free(&ct2);
}

static void re_encrypt(const kmscks_client *c, const char *from, const char *to,
                       const char *to_uuid) {
    static const kmscks_context_entry dest_ctx[] = {{"stage", "re-encrypted"}};
    kmscks_buffer ct = {0}, ct2 = {0}, pt = {0};
    char *arn = NULL;
    CHECK_OK(kmscks_encrypt(c, from, MESSAGE, sizeof MESSAGE, CTX, CTX_LEN, &ct));
    CHECK_OK(kmscks_re_encrypt(c, ct.data, ct.len, CTX, CTX_LEN, to, dest_ctx, 1, &ct2));
    CHECK(ct2.len > 0 && (ct2.len != ct.len || memcmp(ct2.data, ct.data, ct.len) != 0));
    CHECK_OK(kmscks_decrypt(c, ct2.data, ct2.len, dest_ctx, 1, &pt, &arn));
    CHECK(same_bytes(&pt, MESSAGE, sizeof MESSAGE));
    CHECK(strstr(arn, to_uuid) != NULL);
    /* The new blob needs the new context. */
    kmscks_buffer_free(&pt);
    CHECK_CODE(kmscks_decrypt(c, ct2.data, ct2.len, CTX, CTX_LEN, &pt, NULL),
               KMSCKS_INVALID_CIPHERTEXT);
    kmscks_string_free(arn);
    kmscks_buffer_free(&ct);
    kmscks_buffer_free(&ct2);
}

static void random_bytes(const kmscks_client *c, const char *store_id) {
    kmscks_buffer a = {0}, b = {0};
    CHECK_OK(kmscks_generate_random(c, NULL, 32, &a));
    CHECK_OK(kmscks_generate_random(c, store_id, 32, &b));
    CHECK(a.len == 32 && b.len == 32);
    CHECK(memcmp(a.data, b.data, 32) != 0);
    kmscks_buffer_free(&a);
    kmscks_buffer_free(&b);
    CHECK_OK(kmscks_generate_random(c, NULL, 1024, &a));
    CHECK(a.len == 1024);
    kmscks_buffer_free(&a);
}

/* HMAC and signing keys of the default key store: a MAC and a signature round trip, and a
   wrong one answers its exception's code. */
static void macs_and_signatures(const kmscks_client *c) {
    char *hmac = NULL, *ec = NULL;
    kmscks_buffer mac = {0}, sig = {0}, pub = {0};
    CHECK_OK(kmscks_create_key_of_spec(c, "HMAC_256", "GENERATE_VERIFY_MAC", &hmac));
    CHECK_OK(kmscks_generate_mac(c, hmac, "HMAC_SHA_256", MESSAGE, sizeof MESSAGE, &mac));
    CHECK(mac.len == 32);
    CHECK_OK(kmscks_verify_mac(c, hmac, "HMAC_SHA_256", MESSAGE, sizeof MESSAGE, mac.data, mac.len));
    CHECK_CODE(kmscks_verify_mac(c, hmac, "HMAC_SHA_256", MESSAGE, 3, mac.data, mac.len),
               KMSCKS_KMS_INVALID_MAC);
    CHECK_OK(kmscks_create_key_of_spec(c, "ECC_NIST_P256", "SIGN_VERIFY", &ec));
    CHECK_OK(kmscks_sign(c, ec, "ECDSA_SHA_256", MESSAGE, sizeof MESSAGE, NULL, &sig));
    CHECK_OK(kmscks_verify(c, ec, "ECDSA_SHA_256", MESSAGE, sizeof MESSAGE, "RAW", sig.data, sig.len));
    CHECK_CODE(kmscks_verify(c, ec, "ECDSA_SHA_256", MESSAGE, 3, NULL, sig.data, sig.len),
               KMSCKS_KMS_INVALID_SIGNATURE);
    CHECK_CODE(kmscks_sign(c, ec, "ECDSA_SHA_384", MESSAGE, sizeof MESSAGE, NULL, &pub),
               KMSCKS_INVALID_KEY_USAGE);
    CHECK_OK(kmscks_get_public_key(c, ec, &pub));
    CHECK(pub.len > 0 && pub.data[0] == 0x30);
    kmscks_buffer_free(&mac);
    kmscks_buffer_free(&sig);
    kmscks_buffer_free(&pub);
    kmscks_string_free(hmac);
    kmscks_string_free(ec);
}

/* RSA encryption and ECDH key agreement: an RSA ciphertext round trip naming the algorithm,
   the context refused, and two agreement keys deriving one secret from each other's public
   key. */
static void rsa_encryption_and_key_agreement(const kmscks_client *c) {
    char *rsa = NULL, *a = NULL, *b = NULL;
    kmscks_buffer ct = {0}, pt = {0}, pub_a = {0}, pub_b = {0}, ab = {0}, ba = {0};
    CHECK_OK(kmscks_create_key_of_spec(c, "RSA_2048", "ENCRYPT_DECRYPT", &rsa));
    CHECK_OK(kmscks_encrypt_with_algorithm(c, rsa, "RSAES_OAEP_SHA_256", MESSAGE, sizeof MESSAGE,
                                           NULL, 0, &ct));
    CHECK(ct.len == 256);
    CHECK_OK(kmscks_decrypt_with_algorithm(c, rsa, "RSAES_OAEP_SHA_256", ct.data, ct.len, NULL, 0,
                                           &pt));
    CHECK(pt.len == sizeof MESSAGE && memcmp(pt.data, MESSAGE, pt.len) == 0);
    kmscks_buffer_free(&pt);
    CHECK_CODE(kmscks_decrypt_with_algorithm(c, rsa, "RSAES_OAEP_SHA_1", ct.data, ct.len, NULL, 0,
                                             &pt),
               KMSCKS_INVALID_CIPHERTEXT);
    CHECK_CODE(kmscks_encrypt_with_algorithm(c, rsa, "RSAES_OAEP_SHA_256", MESSAGE,
                                             sizeof MESSAGE, CTX, CTX_LEN, &pt),
               KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_encrypt_with_algorithm(c, rsa, "RSA_MAYBE", MESSAGE, sizeof MESSAGE, NULL,
                                             0, &pt),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_OK(kmscks_create_key_of_spec(c, "ECC_NIST_P256", "KEY_AGREEMENT", &a));
    CHECK_OK(kmscks_create_key_of_spec(c, "ECC_NIST_P256", "KEY_AGREEMENT", &b));
    CHECK_OK(kmscks_get_public_key(c, a, &pub_a));
    CHECK_OK(kmscks_get_public_key(c, b, &pub_b));
    CHECK_OK(kmscks_derive_shared_secret(c, a, "ECDH", pub_b.data, pub_b.len, &ab));
    CHECK_OK(kmscks_derive_shared_secret(c, b, "ECDH", pub_a.data, pub_a.len, &ba));
    CHECK(ab.len == 32 && ba.len == 32 && memcmp(ab.data, ba.data, 32) == 0);
    CHECK_CODE(kmscks_derive_shared_secret(c, a, "ECDH", MESSAGE, sizeof MESSAGE, &ba),
               KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_derive_shared_secret(c, rsa, "ECDH", pub_b.data, pub_b.len, &ba),
               KMSCKS_INVALID_KEY_USAGE);
    kmscks_buffer_free(&ct);
    kmscks_buffer_free(&pub_a);
    kmscks_buffer_free(&pub_b);
    kmscks_buffer_free(&ab);
    kmscks_buffer_free(&ba);
    kmscks_string_free(rsa);
    kmscks_string_free(a);
    kmscks_string_free(b);
}

/* Data key pairs: the private key comes back in the clear and sealed under a default-store
   key (kmscks_decrypt opens it with the same context); a custom key store key refuses. */
static void data_key_pairs(const kmscks_client *c, const char *default_key, const char *store_key) {
    kmscks_buffer priv = {0}, priv_ct = {0}, pub = {0}, back = {0};
    CHECK_OK(kmscks_generate_data_key_pair(c, default_key, "ECC_NIST_P256", CTX, CTX_LEN, &priv,
                                           &priv_ct, &pub));
    CHECK(priv.len > 0 && priv.data[0] == 0x30 && pub.len > 0 && pub.data[0] == 0x30);
    CHECK_OK(kmscks_decrypt(c, priv_ct.data, priv_ct.len, CTX, CTX_LEN, &back, NULL));
    CHECK(back.len == priv.len && memcmp(back.data, priv.data, priv.len) == 0);
    CHECK_CODE(kmscks_decrypt(c, priv_ct.data, priv_ct.len, NULL, 0, &back, NULL),
               KMSCKS_INVALID_CIPHERTEXT);
    kmscks_buffer_free(&priv);
    kmscks_buffer_free(&priv_ct);
    kmscks_buffer_free(&pub);
    kmscks_buffer_free(&back);
    CHECK_OK(kmscks_generate_data_key_pair_without_plaintext(c, default_key, "ECC_NIST_EDWARDS25519",
                                                             NULL, 0, &priv_ct, &pub));
    CHECK_OK(kmscks_decrypt(c, priv_ct.data, priv_ct.len, NULL, 0, &back, NULL));
    CHECK(back.len > 0 && pub.len == 44);
    kmscks_buffer_free(&priv_ct);
    kmscks_buffer_free(&pub);
    kmscks_buffer_free(&back);
    CHECK_CODE(kmscks_generate_data_key_pair_without_plaintext(c, store_key, "ECC_NIST_P256", NULL,
                                                               0, &priv_ct, &pub),
               KMSCKS_UNSUPPORTED_OPERATION);
    CHECK_CODE(kmscks_generate_data_key_pair(c, default_key, "RSA_1024", NULL, 0, &priv, &priv_ct,
                                             &pub),
               KMSCKS_INVALID_ARGUMENT);
    CHECK(strstr(kmscks_last_error_message(), "key_pair_spec") != NULL);
    CHECK_CODE(kmscks_generate_data_key_pair(c, default_key, "ECC_NIST_P256", NULL, 0, NULL,
                                             &priv_ct, &pub),
               KMSCKS_INVALID_ARGUMENT);
}

static void batches(const kmscks_client *c, const char *key_a, const char *key_b) {
    enum { N = 4 };
    kmscks_data_key_request dk_items[N] = {
        {key_a, 32, CTX, CTX_LEN},
        {key_b, 16, NULL, 0},
        {"alias/no-such-alias", 32, NULL, 0},
        {key_a, 1, NULL, 0},
    };
    kmscks_data_key_result dk_results[N];
    static const uint8_t pt0[] = "zero", pt1[] = "one";
    kmscks_encrypt_request enc_items[3] = {
        {key_a, pt0, sizeof pt0, NULL, 0},
        {"00000000-0000-0000-0000-000000000000", pt1, sizeof pt1, NULL, 0},
        {key_b, pt1, sizeof pt1, CTX, CTX_LEN},
    };
    kmscks_encrypt_result enc_results[3];
    kmscks_buffer back = {0};
    size_t i;

    memset(dk_results, 0xAB, sizeof dk_results);
    CHECK_OK(kmscks_generate_data_key_batch(c, dk_items, N, dk_results));
    CHECK(dk_results[0].result == KMSCKS_OK && dk_results[0].plaintext.len == 32);
    CHECK(dk_results[1].result == KMSCKS_OK && dk_results[1].plaintext.len == 16);
    CHECK(dk_results[2].result == KMSCKS_NOT_FOUND);
    CHECK(dk_results[2].plaintext.data == NULL && dk_results[2].plaintext.len == 0);
    CHECK(dk_results[2].ciphertext.data == NULL && dk_results[2].ciphertext.len == 0);
    CHECK(dk_results[3].result == KMSCKS_OK && dk_results[3].plaintext.len == 1);
    CHECK_OK(kmscks_decrypt(c, dk_results[0].ciphertext.data, dk_results[0].ciphertext.len, CTX,
                            CTX_LEN, &back, NULL));
    CHECK(same_bytes(&back, dk_results[0].plaintext.data, 32));
    kmscks_buffer_free(&back);
    for (i = 0; i < N; i++) {
        kmscks_buffer_free(&dk_results[i].plaintext);
        kmscks_buffer_free(&dk_results[i].ciphertext);
    }

    CHECK_OK(kmscks_encrypt_batch(c, enc_items, 3, enc_results));
    CHECK(enc_results[0].result == KMSCKS_OK && enc_results[0].ciphertext.len > 0);
    CHECK(enc_results[1].result == KMSCKS_NOT_FOUND && enc_results[1].ciphertext.data == NULL);
    CHECK(enc_results[2].result == KMSCKS_OK);
    CHECK_OK(kmscks_decrypt(c, enc_results[2].ciphertext.data, enc_results[2].ciphertext.len,
                            CTX, CTX_LEN, &back, NULL));
    CHECK(same_bytes(&back, pt1, sizeof pt1));
    kmscks_buffer_free(&back);
    for (i = 0; i < 3; i++) kmscks_buffer_free(&enc_results[i].ciphertext);

    /* An empty batch is a batch. */
    CHECK_OK(kmscks_encrypt_batch(c, NULL, 0, NULL));
    CHECK_OK(kmscks_generate_data_key_batch(c, NULL, 0, NULL));
}

static void aliases_and_tags(const kmscks_client *c, const char *key_id) {
    kmscks_buffer ct = {0}, pt = {0};
    char *json = NULL;
    static const kmscks_context_entry tags[] = {{"team", "c-api"}, {"env", "test"}};
    const char *untag[] = {"env"};

    CHECK_OK(kmscks_create_alias(c, "alias/c-flow", key_id));
    CHECK_OK(kmscks_encrypt(c, "alias/c-flow", MESSAGE, sizeof MESSAGE, NULL, 0, &ct));
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, NULL));
    CHECK(same_bytes(&pt, MESSAGE, sizeof MESSAGE));
    kmscks_buffer_free(&pt);
    kmscks_buffer_free(&ct);

    CHECK_OK(kmscks_list_aliases_json(c, key_id, 0, NULL, &json));
    CHECK(strstr(json, "\"AliasName\":\"alias/c-flow\"") != NULL);
    CHECK(strstr(json, key_id) != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_list_aliases_json(c, NULL, 0, NULL, &json));
    CHECK(strstr(json, "alias/c-flow") != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_describe_key_json(c, "alias/c-flow", &json));
    CHECK(strstr(json, key_id) != NULL);
    kmscks_string_free(json);

    CHECK_OK(kmscks_delete_alias(c, "alias/c-flow"));
    CHECK_CODE(kmscks_encrypt(c, "alias/c-flow", MESSAGE, sizeof MESSAGE, NULL, 0, &ct),
               KMSCKS_NOT_FOUND);
    CHECK(ct.data == NULL);
    CHECK_OK(kmscks_list_aliases_json(c, key_id, 0, NULL, &json));
    CHECK(strstr(json, "alias/c-flow") == NULL);
    kmscks_string_free(json);

    CHECK_OK(kmscks_tag_resource(c, key_id, tags, 2));
    CHECK_OK(kmscks_untag_resource(c, key_id, untag, 1));
    CHECK_OK(kmscks_tag_resource(c, key_id, NULL, 0));
    CHECK_OK(kmscks_untag_resource(c, key_id, NULL, 0));

    /* A grant, constrained to a context, then revoked. */
    {
        const char *ops[] = {"Encrypt", "Decrypt"};
        static const kmscks_context_entry subset[] = {{"team", "c-api"}};
        char *grant_id = NULL, *grant_token = NULL;
        CHECK_OK(kmscks_create_grant(c, key_id, "arn:aws:iam::111122223333:user/uid-4242", ops,
                                     2, subset, 1, &grant_id, &grant_token));
        CHECK(grant_id != NULL && strlen(grant_id) == 64);
        CHECK(grant_token != NULL && strlen(grant_token) > 0);
        CHECK_OK(kmscks_revoke_grant(c, key_id, grant_id));
        CHECK_CODE(kmscks_revoke_grant(c, key_id, grant_id), KMSCKS_NOT_FOUND);
        kmscks_string_free(grant_id);
        kmscks_string_free(grant_token);
    }

    /* A key for imported material: pending import; its wrapping key and token; material that
     * does not unwrap refused (the wrapping itself is RSA-OAEP, the caller's: OpenSSL's
     * EVP_PKEY_encrypt); no material to delete yet. */
    {
        char *external = NULL;
        kmscks_buffer public_key = {0}, token = {0};
        int64_t valid_to = 0;
        kmscks_key_state state = 0;
        static const uint8_t not_wrapped[256] = {1};
        CHECK_OK(kmscks_create_external_key(c, "imported from C", &external));
        CHECK_OK(kmscks_get_key_state(c, external, &state));
        CHECK(state == KMSCKS_KEY_STATE_PENDING_IMPORT);
        CHECK_OK(kmscks_get_parameters_for_import(c, external, "RSAES_OAEP_SHA_256", "RSA_2048",
                                                  &public_key, &token, &valid_to));
        CHECK(public_key.len > 256 && token.len > 0 && valid_to > (int64_t)time(NULL));
        CHECK_CODE(kmscks_import_key_material(c, external, token.data, token.len, not_wrapped,
                                              sizeof not_wrapped, 0, NULL),
                   KMSCKS_INVALID_CIPHERTEXT);
        // A key that never had material: AWS's "no effect", a success that changes nothing.
        CHECK_OK(kmscks_delete_imported_key_material(c, external));
        CHECK_OK(kmscks_get_key_state(c, external, &state));
        CHECK(state == KMSCKS_KEY_STATE_PENDING_IMPORT);
        kmscks_buffer_free(&public_key);
        kmscks_buffer_free(&token);
        kmscks_string_free(external);
    }
}

static void key_lifecycle(const kmscks_client *c, const char *key_id) {
    kmscks_key_state state = 0;
    int64_t when = 0;
    time_t now = time(NULL);
    char *json = NULL;

    CHECK_OK(kmscks_get_key_state(c, key_id, &state));
    CHECK(state == KMSCKS_KEY_STATE_ENABLED);
    CHECK_OK(kmscks_disable_key(c, key_id));
    CHECK_OK(kmscks_get_key_state(c, key_id, &state));
    CHECK(state == KMSCKS_KEY_STATE_DISABLED);
    CHECK_OK(kmscks_enable_key(c, key_id));
    CHECK_OK(kmscks_get_key_state(c, key_id, &state));
    CHECK(state == KMSCKS_KEY_STATE_ENABLED);

    CHECK_OK(kmscks_schedule_key_deletion(c, key_id, 7, &when));
    /* Seven days from now, give or take a day (clock skew, a slow machine). */
    CHECK(when > (int64_t)now + 6 * 86400 && when < (int64_t)now + 8 * 86400);
    CHECK_OK(kmscks_get_key_state(c, key_id, &state));
    CHECK(state == KMSCKS_KEY_STATE_PENDING_DELETION);
    CHECK_OK(kmscks_describe_key_json(c, key_id, &json));
    CHECK(strstr(json, "\"KeyState\":\"PendingDeletion\"") != NULL);
    CHECK(strstr(json, "\"DeletionDate\"") != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_cancel_key_deletion(c, key_id));
    CHECK_OK(kmscks_get_key_state(c, key_id, &state));
    CHECK(state == KMSCKS_KEY_STATE_DISABLED);
    CHECK_OK(kmscks_enable_key(c, key_id));

    /* 0: AWS's default window, 30 days; NULL: the date is not wanted. */
    CHECK_OK(kmscks_schedule_key_deletion(c, key_id, 0, &when));
    CHECK(when > (int64_t)now + 29 * 86400 && when < (int64_t)now + 31 * 86400);
    CHECK_OK(kmscks_cancel_key_deletion(c, key_id));
    CHECK_OK(kmscks_schedule_key_deletion(c, key_id, 30, NULL));
    CHECK_OK(kmscks_cancel_key_deletion(c, key_id));
    CHECK_OK(kmscks_enable_key(c, key_id));
}

/* A second cluster: the CSR of a fresh cluster, the bundle check of initialize, a store that
 * is made, renamed and deleted, and an HSM removed. */
static void second_cluster(const kmscks_client *c) {
    char *cluster_id = NULL, *csr = NULL, *anchor = NULL, *store_id = NULL, *json = NULL;
    char *hsm_a = NULL, *hsm_b = NULL, *hsm_c = NULL, *untouched = (char *)"untouched";
    char *bundle;
    size_t n;

    CHECK_OK(kmscks_create_cluster(c, &cluster_id));
    CHECK_OK(kmscks_create_hsm(c, cluster_id, "us-east-1a", &hsm_a));
    CHECK_OK(kmscks_create_hsm(c, cluster_id, "us-east-1b", &hsm_b));
    CHECK_OK(kmscks_create_hsm(c, cluster_id, "us-east-1b", &hsm_c));
    CHECK_OK(kmscks_get_cluster_csr(c, cluster_id, &csr));
    CHECK(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----") != NULL);

    /* A bundle must hold two certificates: the CSR is none, one certificate is not two. */
    anchor = untouched;
    CHECK_CODE(kmscks_initialize_cluster(c, cluster_id, csr, &anchor), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("trust_anchor_pem_or_null");
    CHECK_MSG("holds 0 PEM certificates");
    CHECK(anchor == untouched);
    CHECK_CODE(kmscks_initialize_cluster(c, cluster_id, "not PEM at all", &anchor),
               KMSCKS_INVALID_ARGUMENT);
    CHECK(anchor == untouched);
    kmscks_string_free(csr);
    /* The cluster is still uninitialized: its CSR is still there. */
    CHECK_OK(kmscks_get_cluster_csr(c, cluster_id, &csr));
    kmscks_string_free(csr);

    /* Only an INITIALIZED cluster (one initialized with your own bundle) is activated. */
    CHECK_CODE(kmscks_activate_cluster(c, cluster_id, "adminPassw0rd"),
               KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    CHECK_MSG("not INITIALIZED");
    CHECK_OK(kmscks_initialize_cluster(c, cluster_id, NULL, &anchor));
    /* Without a bundle kmscks activates the cluster itself: nothing left to activate. */
    CHECK_CODE(kmscks_activate_cluster(c, cluster_id, "adminPassw0rd"),
               KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    /* An initialized cluster has no CSR to sign any more. */
    csr = untouched;
    CHECK_CODE(kmscks_get_cluster_csr(c, cluster_id, &csr), KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    CHECK(csr == untouched);

    /* Three certificates are not two either (the anchor thrice). */
    n = strlen(anchor);
    bundle = malloc(3 * (n + 1) + 1);
    CHECK(bundle != NULL);
    CHECK(snprintf(bundle, 3 * (n + 1) + 1, "%s\n%s\n%s\n", anchor, anchor, anchor) ==
          (int)(3 * (n + 1)));
    CHECK_CODE(kmscks_initialize_cluster(c, cluster_id, bundle, &csr), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("holds 3 PEM certificates");
    free(bundle);

    CHECK_OK(kmscks_create_crypto_user(c, cluster_id, "kmsuser", KMSUSER_PASSWORD));
    CHECK_OK(kmscks_create_custom_key_store(c, "c-flow-store-2", cluster_id, anchor,
                                            KMSUSER_PASSWORD, &store_id));
    CHECK_OK(kmscks_update_custom_key_store(c, store_id, "c-flow-store-2-renamed", NULL, NULL));
    CHECK_OK(kmscks_describe_custom_key_stores_json(c, store_id, &json));
    CHECK(strstr(json, "\"CustomKeyStoreName\":\"c-flow-store-2-renamed\"") != NULL);
    CHECK(strstr(json, "\"ConnectionState\":\"DISCONNECTED\"") != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_delete_custom_key_store(c, store_id));
    CHECK_CODE(kmscks_describe_custom_key_stores_json(c, store_id, &json),
               KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);

    CHECK_OK(kmscks_delete_hsm(c, cluster_id, hsm_c));
    CHECK_CODE(kmscks_delete_hsm(c, cluster_id, hsm_c), KMSCKS_CLOUD_HSM_RESOURCE_NOT_FOUND);

    kmscks_string_free(store_id);
    kmscks_string_free(anchor);
    kmscks_string_free(hsm_a);
    kmscks_string_free(hsm_b);
    kmscks_string_free(hsm_c);
    kmscks_string_free(cluster_id);
}

int main(int argc, char **argv) {
    kmscks_client *c = open_client(argc, argv);
    char *cluster_id = NULL, *anchor = NULL, *store_id = NULL, *json = NULL;
    char *store_key = NULL, *default_key = NULL, *arn = NULL;
    kmscks_connection_state state = 0;
    kmscks_connection_error_code code = 99;
    kmscks_key_state key_state = 0;
    kmscks_buffer ct = {0}, pt = {0}, ct2 = {0};
    size_t keys_before;

    CHECK(strcmp(kmscks_version(), KMSCKS_VERSION_STRING) == 0);
    CHECK(strcmp(kmscks_last_error_message(), "") == 0);

    /* 1-3: cluster, HSMs, initialized with kmscks's CA; the kmsuser crypto user. */
    make_cluster(c, &cluster_id, &anchor);

    /* 4: the custom key store, connected; a key in it. */
    CHECK_OK(kmscks_create_custom_key_store(c, "c-flow-store", cluster_id, anchor,
                                            KMSUSER_PASSWORD, &store_id));
    CHECK(strncmp(store_id, "cks-", 4) == 0);
    CHECK_OK(kmscks_get_connection_state(c, store_id, &state, &code));
    CHECK(state == KMSCKS_CONNECTION_STATE_DISCONNECTED);
    CHECK(code == KMSCKS_CONNECTION_ERROR_CODE_NONE);
    CHECK_OK(kmscks_connect_custom_key_store(c, store_id));
    CHECK_OK(kmscks_wait_connected(c, store_id, 30000));
    CHECK_OK(kmscks_get_connection_state(c, store_id, &state, NULL));
    CHECK(state == KMSCKS_CONNECTION_STATE_CONNECTED);
    CHECK_OK(kmscks_get_connection_state(c, store_id, NULL, NULL));

    keys_before = key_count(c);
    CHECK_OK(kmscks_create_key(c, store_id, "a key in the custom key store", &store_key));
    CHECK(strlen(store_key) == 36);
    CHECK_OK(kmscks_create_key(c, NULL, NULL, &default_key));
    CHECK(strlen(default_key) == 36 && strcmp(default_key, store_key) != 0);
    CHECK(key_count(c) == keys_before + 2);

    CHECK_OK(kmscks_list_keys_json(c, 0, NULL, &json));
    CHECK(strstr(json, store_key) != NULL && strstr(json, default_key) != NULL);
    CHECK(strstr(json, "\"KeyArn\"") != NULL);
    kmscks_string_free(json);
    /* Paging: one key per page, the marker leads to the next. */
    CHECK_OK(kmscks_list_keys_json(c, 1, NULL, &json));
    CHECK(count_of(json, "\"KeyId\"") == 1);
    CHECK(strstr(json, "\"Truncated\":true") != NULL && strstr(json, "\"NextMarker\"") != NULL);
    kmscks_string_free(json);

    CHECK_OK(kmscks_describe_key_json(c, store_key, &json));
    CHECK(strstr(json, store_id) != NULL);
    CHECK(strstr(json, cluster_id) != NULL);
    CHECK(strstr(json, "\"Description\":\"a key in the custom key store\"") != NULL);
    CHECK(strstr(json, "\"Origin\":\"AWS_CLOUDHSM\"") != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_describe_key_json(c, default_key, &json));
    CHECK(strstr(json, "\"Origin\":\"AWS_KMS\"") != NULL);
    kmscks_string_free(json);

    /* Crypto with both keys. */
    encrypt_decrypt(c, store_key, store_key);
    encrypt_decrypt(c, default_key, default_key);
    data_keys(c, store_key);
    data_keys(c, default_key);
    re_encrypt(c, default_key, store_key, store_key);
    re_encrypt(c, store_key, default_key, default_key);
    random_bytes(c, store_id);
    macs_and_signatures(c);
    data_key_pairs(c, default_key, store_key);
    rsa_encryption_and_key_agreement(c);
    batches(c, store_key, default_key);
    aliases_and_tags(c, store_key);
    key_lifecycle(c, default_key);

    /* Stores: describe, rename while connected. */
    CHECK_OK(kmscks_describe_custom_key_stores_json(c, NULL, &json));
    CHECK(strstr(json, store_id) != NULL);
    CHECK(strstr(json, "\"ConnectionState\":\"CONNECTED\"") != NULL);
    kmscks_string_free(json);
    CHECK_OK(kmscks_update_custom_key_store(c, store_id, "c-flow-store-renamed", NULL, NULL));
    CHECK_OK(kmscks_describe_custom_key_stores_json(c, store_id, &json));
    CHECK(strstr(json, "\"CustomKeyStoreName\":\"c-flow-store-renamed\"") != NULL);
    CHECK(strstr(json, cluster_id) != NULL);
    kmscks_string_free(json);

    /* The password changes only while disconnected. */
    CHECK_CODE(kmscks_update_custom_key_store(c, store_id, NULL, KMSUSER_PASSWORD_2, NULL),
               KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_OK(kmscks_encrypt(c, store_key, MESSAGE, sizeof MESSAGE, NULL, 0, &ct));

    /* Disconnected: the store's key is unusable; the default store's key is not. */
    CHECK_OK(kmscks_disconnect_custom_key_store(c, store_id));
    CHECK_OK(kmscks_get_connection_state(c, store_id, &state, &code));
    CHECK(state == KMSCKS_CONNECTION_STATE_DISCONNECTED ||
          state == KMSCKS_CONNECTION_STATE_DISCONNECTING);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, NULL), KMSCKS_KMS_INVALID_STATE);
    CHECK(pt.data == NULL);
    /* kmscks_wait_connected also waits out DISCONNECTING, and says where it ended. */
    CHECK_CODE(kmscks_wait_connected(c, store_id, 30000), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_MSG("DISCONNECTED");
    CHECK_OK(kmscks_get_connection_state(c, store_id, &state, &code));
    CHECK(state == KMSCKS_CONNECTION_STATE_DISCONNECTED);
    CHECK(code == KMSCKS_CONNECTION_ERROR_CODE_NONE);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, NULL), KMSCKS_KMS_INVALID_STATE);
    CHECK(pt.data == NULL);
    CHECK_CODE(kmscks_generate_data_key(c, store_key, 32, NULL, 0, &pt, &ct2),
               KMSCKS_KMS_INVALID_STATE);
    CHECK(pt.data == NULL && ct2.data == NULL);
    CHECK_OK(kmscks_get_key_state(c, store_key, &key_state));
    CHECK(key_state == KMSCKS_KEY_STATE_UNAVAILABLE);
    encrypt_decrypt(c, default_key, default_key);

    /* kmsuser's password changes on the cluster, then in the store; reconnect with it. */
    CHECK_OK(kmscks_change_crypto_user_password(c, cluster_id, "kmsuser", KMSUSER_PASSWORD_2));
    CHECK_OK(kmscks_update_custom_key_store(c, store_id, NULL, KMSUSER_PASSWORD_2, NULL));
    CHECK_OK(kmscks_connect_custom_key_store(c, store_id));
    CHECK_OK(kmscks_wait_connected(c, store_id, 30000));
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, &arn));
    CHECK(same_bytes(&pt, MESSAGE, sizeof MESSAGE));
    CHECK(strstr(arn, store_key) != NULL);
    kmscks_string_free(arn);
    kmscks_buffer_free(&pt);
    kmscks_buffer_free(&ct);

    second_cluster(c);

    /* The end: a store that holds keys cannot go; its keys are scheduled for deletion. */
    CHECK_OK(kmscks_disconnect_custom_key_store(c, store_id));
    /* kmscks_wait_settled waits out DISCONNECTING and says where the store settled. */
    state = KMSCKS_CONNECTION_STATE_CONNECTED;
    CHECK_OK(kmscks_wait_settled(c, store_id, 30000, &state));
    CHECK(state == KMSCKS_CONNECTION_STATE_DISCONNECTED);
    CHECK_OK(kmscks_wait_settled(c, store_id, 30000, NULL));
    CHECK_CODE(kmscks_delete_custom_key_store(c, store_id), KMSCKS_CUSTOM_KEY_STORE_HAS_CMKS);
    CHECK_OK(kmscks_connect_custom_key_store(c, store_id));
    CHECK_OK(kmscks_wait_connected(c, store_id, 30000));
    CHECK_OK(kmscks_schedule_key_deletion(c, store_key, 7, NULL));
    CHECK_OK(kmscks_schedule_key_deletion(c, default_key, 7, NULL));
    CHECK_OK(kmscks_get_key_state(c, store_key, &key_state));
    CHECK(key_state == KMSCKS_KEY_STATE_PENDING_DELETION);

    kmscks_string_free(store_key);
    kmscks_string_free(default_key);
    kmscks_string_free(store_id);
    kmscks_string_free(anchor);
    kmscks_string_free(cluster_id);
    kmscks_close(c);
    return finish("flow");
}
