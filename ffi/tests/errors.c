/*
 * errors.c: every error path a C caller can reach, and that a refused call changes nothing:
 * NULL for required pointers and outputs sharing memory (KMSCKS_INVALID_ARGUMENT naming the
 * argument, outputs untouched), strings that are not UTF-8, unknown keys, aliases and stores,
 * a disabled key, a disconnected store and one that fails to connect, damaged ciphertexts and
 * wrong contexts, sizes out of range, the free functions on NULL / zeroed / already-freed
 * structs, and result names.
 * Written only from the header.
 *
 * Usage: errors embedded <data_dir> | errors daemon <socket_path>   (see check.h)
 */
#include "check.h"

#define PASSWORD "errorsPassword1"
#define NO_SUCH_KEY "0b0b0b0b-0000-4000-8000-000000000000"
#define NO_SUCH_STORE "cks-0123456789abcdef0"

/* Not UTF-8: a lone continuation byte, then an overlong encoding of '/'. */
static const char BAD_UTF8[] = {'k', 'e', 'y', (char)0x80, (char)0xC0, (char)0xAF, 0};

static const uint8_t PT[] = "attack at dawn";
static const kmscks_context_entry CTX[] = {{"app", "errors"}};

/* A pointer no kmscks call may write: outputs are written only on success. */
static char SENTINEL_TEXT[] = "untouched";
#define SENTINEL ((char *)SENTINEL_TEXT)
static uint8_t SENTINEL_BYTES[4] = {1, 2, 3, 4};

static void reset(kmscks_buffer *b) {
    b->data = SENTINEL_BYTES;
    b->len = sizeof SENTINEL_BYTES;
}

static int untouched(const kmscks_buffer *b) {
    return b->data == SENTINEL_BYTES && b->len == sizeof SENTINEL_BYTES;
}

static void result_names(void) {
    CHECK(strcmp(kmscks_result_name(KMSCKS_OK), "OK") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_INVALID_ARGUMENT), "InvalidArgument") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_IO), "IO") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_INTERNAL), "Internal") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_NOT_FOUND), "NotFoundException") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_KMS_INVALID_STATE), "KMSInvalidStateException") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_CLOUD_HSM_CLUSTER_INVALID_CONFIGURATION),
                 "CloudHsmClusterInvalidConfigurationException") == 0);
    CHECK(strcmp(kmscks_result_name(KMSCKS_VALIDATION), "ValidationException") == 0);
    /* Numbers that are no code. */
    CHECK(strcmp(kmscks_result_name(4), "Unknown") == 0);
    CHECK(strcmp(kmscks_result_name(999), "Unknown") == 0);
    CHECK(strcmp(kmscks_result_name(1099), "Unknown") == 0);
    CHECK(strcmp(kmscks_result_name(0xFFFFFFFFu), "Unknown") == 0);
    /* Static strings: the same pointer each time. */
    CHECK(kmscks_result_name(KMSCKS_DISABLED) == kmscks_result_name(KMSCKS_DISABLED));
}

static void free_functions(const kmscks_client *c) {
    kmscks_buffer b = {0};
    kmscks_buffer zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    /* NULL, zeroed, and a struct freed before: all do nothing. */
    kmscks_buffer_free(NULL);
    kmscks_buffer_free(&zeroed);
    CHECK(zeroed.data == NULL && zeroed.len == 0);
    kmscks_string_free(NULL);
    kmscks_close(NULL);
    CHECK_OK(kmscks_generate_random(c, NULL, 16, &b));
    CHECK(b.data != NULL && b.len == 16);
    kmscks_buffer_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    kmscks_buffer_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    kmscks_open_options_init(NULL);
    /* None of these is a kmscks_* failure. */
    CHECK(strcmp(kmscks_last_error_message(), "") == 0);
}

/* NULL for each required pointer of several functions. */
static void null_arguments(const kmscks_client *c, const char *key) {
    char *out = SENTINEL;
    kmscks_buffer b, b2;
    kmscks_key_state state = 77;
    kmscks_context_entry bad_ctx[] = {{"k", NULL}};
    kmscks_context_entry bad_ctx_key[] = {{"ok", "v"}, {NULL, "v"}};
    kmscks_data_key_request items[2] = {{key, 32, NULL, 0}, {NULL, 32, NULL, 0}};
    kmscks_data_key_result results[2];
    kmscks_encrypt_request enc_items[1] = {{key, NULL, 3, NULL, 0}};
    kmscks_encrypt_result enc_results[1];

    /* Outputs sharing memory: the second would replace the first (a data key lost unwiped). */
    reset(&b);
    CHECK_CODE(kmscks_generate_data_key(c, key, 32, NULL, 0, &b, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ciphertext: shares its memory with plaintext");
    CHECK(untouched(&b));

    /* The handle. */
    CHECK_CODE(kmscks_create_key(NULL, NULL, NULL, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument c: is NULL");
    CHECK(out == SENTINEL);
    reset(&b);
    CHECK_CODE(kmscks_encrypt(NULL, key, PT, sizeof PT, NULL, 0, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument c");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_generate_random(NULL, NULL, 8, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_CODE(kmscks_list_keys_json(NULL, 0, NULL, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK(out == SENTINEL);

    /* Out-pointers. */
    CHECK_CODE(kmscks_create_key(c, NULL, NULL, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("key_id");
    CHECK_CODE(kmscks_create_cluster(c, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("cluster_id");
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ciphertext");
    reset(&b);
    CHECK_CODE(kmscks_generate_data_key(c, key, 32, NULL, 0, &b, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ciphertext");
    CHECK(untouched(&b));
    reset(&b);
    CHECK_CODE(kmscks_generate_data_key(c, key, 32, NULL, 0, NULL, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument plaintext");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_generate_data_key_without_plaintext(c, key, 32, NULL, 0, NULL),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_CODE(kmscks_get_key_state(c, key, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument state");
    CHECK_CODE(kmscks_describe_key_json(c, key, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument json");
    CHECK_CODE(kmscks_generate_random(c, NULL, 8, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument out");
    CHECK_CODE(kmscks_open(NULL, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument out");
    CHECK_CODE(kmscks_connect("/nonexistent/kmscks.sock", NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument out");

    /* Inputs. */
    CHECK_CODE(kmscks_enable_key(c, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument key_id: is NULL");
    CHECK_CODE(kmscks_get_key_state(c, NULL, &state), KMSCKS_INVALID_ARGUMENT);
    CHECK(state == 77);
    reset(&b);
    CHECK_CODE(kmscks_encrypt(c, NULL, PT, sizeof PT, NULL, 0, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument key_id");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_encrypt(c, key, NULL, 5, NULL, 0, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument pt: is NULL with length 5");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 2, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ctx: is NULL with count 2");
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, bad_ctx, 1, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ctx[0].value: is NULL");
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, bad_ctx_key, 2, &b),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ctx[1].key: is NULL");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_decrypt(c, NULL, 10, NULL, 0, &b, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ct");
    CHECK_CODE(kmscks_decrypt(c, PT, sizeof PT, NULL, 0, NULL, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument plaintext");
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_re_encrypt(c, PT, sizeof PT, NULL, 0, NULL, NULL, 0, &b),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument dest_key_id");
    CHECK_CODE(kmscks_re_encrypt(c, PT, sizeof PT, NULL, 0, key, NULL, 1, &b),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument dest_ctx");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_create_hsm(c, NULL, "us-east-1a", &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument cluster_id");
    CHECK_CODE(kmscks_create_hsm(c, "cluster-x", NULL, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument availability_zone");
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_create_crypto_user(c, "cluster-x", "kmsuser", NULL),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument password");
    CHECK_CODE(kmscks_create_custom_key_store(c, "n", "cluster-x", NULL, PASSWORD, &out),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument trust_anchor_pem");
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_connect_custom_key_store(c, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument store_id");
    CHECK_CODE(kmscks_wait_connected(c, NULL, 10), KMSCKS_INVALID_ARGUMENT);
    CHECK_CODE(kmscks_create_alias(c, "alias/x", NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_CODE(kmscks_create_alias(c, NULL, key), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument alias_name");
    CHECK_CODE(kmscks_tag_resource(c, key, NULL, 1), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument tags");
    CHECK_CODE(kmscks_untag_resource(c, key, NULL, 1), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument tag_keys");
    {
        char *gid = SENTINEL, *gtok = SENTINEL;
        const char *ops[] = {"Decrypt", "Fly"};
        CHECK_CODE(kmscks_create_grant(c, key, "arn:aws:iam::111122223333:user/u", NULL, 1,
                                       NULL, 0, &gid, &gtok),
                   KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument operations");
        CHECK_CODE(kmscks_create_grant(c, key, "arn:aws:iam::111122223333:user/u", ops, 2,
                                       NULL, 0, &gid, &gtok),
                   KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument operations[1]");
        CHECK_CODE(kmscks_create_grant(c, key, NULL, ops, 1, NULL, 0, &gid, &gtok),
                   KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument grantee_principal");
        CHECK(gid == SENTINEL && gtok == SENTINEL);
        CHECK_CODE(kmscks_revoke_grant(c, key, NULL), KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument grant_id");
    }

    /* Batches: the first bad member is named by index; nothing ran, nothing written. */
    memset(results, 0xAB, sizeof results);
    CHECK_CODE(kmscks_generate_data_key_batch(c, items, 2, results), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument items[1].key_id: is NULL");
    CHECK(results[0].result == 0xABABABABu && results[1].result == 0xABABABABu);
    CHECK_CODE(kmscks_generate_data_key_batch(c, items, 1, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument results");
    CHECK_CODE(kmscks_generate_data_key_batch(c, NULL, 1, results), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument items");
    memset(enc_results, 0xAB, sizeof enc_results);
    CHECK_CODE(kmscks_encrypt_batch(c, enc_items, 1, enc_results), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument items[0].pt");
    CHECK(enc_results[0].result == 0xABABABABu);

    /* A context is a map: a key given twice is refused. */
    {
        kmscks_context_entry twice[] = {{"a", "1"}, {"a", "2"}};
        reset(&b2);
        CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, twice, 2, &b2), KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument ctx[1].key");
        CHECK_MSG("appears twice");
        CHECK(untouched(&b2));
    }
}

static void bad_utf8(const kmscks_client *c, const char *key) {
    char *out = SENTINEL;
    kmscks_buffer b;
    kmscks_context_entry ctx[] = {{BAD_UTF8, "v"}};
    reset(&b);
    CHECK_CODE(kmscks_encrypt(c, BAD_UTF8, PT, sizeof PT, NULL, 0, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument key_id: is not UTF-8 (invalid byte at offset 3)");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, ctx, 1, &b), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument ctx[0].key: is not UTF-8");
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_create_key(c, NULL, BAD_UTF8, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("description");
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_create_alias(c, BAD_UTF8, key), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument alias_name: is not UTF-8");
    CHECK_CODE(kmscks_describe_custom_key_stores_json(c, BAD_UTF8, &out), KMSCKS_INVALID_ARGUMENT);
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_open(BAD_UTF8, (kmscks_client **)&out), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument data_dir: is not UTF-8");
    CHECK(out == SENTINEL);
}

static void unknown_ids(const kmscks_client *c) {
    char *out = SENTINEL;
    kmscks_buffer b, b2;
    kmscks_key_state state = 77;
    kmscks_connection_state cs = 77;
    reset(&b);
    CHECK_CODE(kmscks_encrypt(c, NO_SUCH_KEY, PT, sizeof PT, NULL, 0, &b), KMSCKS_NOT_FOUND);
    CHECK_MSG(NO_SUCH_KEY);
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_encrypt(c, "alias/no-such-alias", PT, sizeof PT, NULL, 0, &b),
               KMSCKS_NOT_FOUND);
    CHECK_MSG("alias/no-such-alias");
    CHECK_CODE(kmscks_get_key_state(c, NO_SUCH_KEY, &state), KMSCKS_NOT_FOUND);
    CHECK(state == 77);
    CHECK_CODE(kmscks_describe_key_json(c, "alias/no-such-alias", &out), KMSCKS_NOT_FOUND);
    CHECK_CODE(kmscks_enable_key(c, NO_SUCH_KEY), KMSCKS_NOT_FOUND);
    CHECK_CODE(kmscks_delete_alias(c, "alias/no-such-alias"), KMSCKS_NOT_FOUND);
    CHECK_CODE(kmscks_create_alias(c, "alias/points-nowhere", NO_SUCH_KEY), KMSCKS_NOT_FOUND);
    CHECK_CODE(kmscks_revoke_grant(c, NO_SUCH_KEY, "not-a-grant-id"),
               KMSCKS_INVALID_GRANT_ID);
    CHECK_CODE(kmscks_revoke_grant(c, NO_SUCH_KEY,
                                   "0000000000000000000000000000000000000000000000000000000000000000"),
               KMSCKS_NOT_FOUND);
    reset(&b2);
    CHECK_CODE(kmscks_generate_data_key(c, NO_SUCH_KEY, 32, NULL, 0, &b, &b2), KMSCKS_NOT_FOUND);
    CHECK(untouched(&b) && untouched(&b2));

    CHECK_CODE(kmscks_connect_custom_key_store(c, NO_SUCH_STORE),
               KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK_MSG(NO_SUCH_STORE);
    CHECK_CODE(kmscks_get_connection_state(c, NO_SUCH_STORE, &cs, NULL),
               KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK(cs == 77);
    /* Two outputs in one place: refused before anything is asked. */
    CHECK_CODE(kmscks_get_connection_state(c, NO_SUCH_STORE, &cs,
                                           (kmscks_connection_error_code *)&cs),
               KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument error_code: shares its memory with state");
    CHECK(cs == 77);
    CHECK_CODE(kmscks_wait_connected(c, NO_SUCH_STORE, 10), KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK_CODE(kmscks_create_key(c, NO_SUCH_STORE, NULL, &out), KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_generate_random(c, NO_SUCH_STORE, 8, &b), KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_describe_custom_key_stores_json(c, NO_SUCH_STORE, &out),
               KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK_CODE(kmscks_delete_custom_key_store(c, NO_SUCH_STORE),
               KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND);
    CHECK_CODE(kmscks_create_hsm(c, "cluster-doesnotexist", "us-east-1a", &out),
               KMSCKS_CLOUD_HSM_RESOURCE_NOT_FOUND);
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_get_cluster_csr(c, "cluster-doesnotexist", &out),
               KMSCKS_CLOUD_HSM_RESOURCE_NOT_FOUND);
    CHECK_MSG("cluster-doesnotexist");
    CHECK(out == SENTINEL);
}

static void ciphertexts(const kmscks_client *c, const char *key) {
    kmscks_buffer ct = {0}, pt;
    kmscks_context_entry other[] = {{"app", "someone-else"}};
    char *arn = SENTINEL;
    CHECK_OK(kmscks_encrypt(c, key, PT, sizeof PT, CTX, 1, &ct));
    reset(&pt);
    /* Wrong, missing and extra context. */
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, other, 1, &pt, &arn), KMSCKS_INVALID_CIPHERTEXT);
    CHECK(untouched(&pt) && arn == SENTINEL);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, &arn), KMSCKS_INVALID_CIPHERTEXT);
    {
        kmscks_context_entry more[] = {{"app", "errors"}, {"x", "y"}};
        CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, more, 2, &pt, &arn),
                   KMSCKS_INVALID_CIPHERTEXT);
    }
    /* A flipped byte at the end (the tag), in the middle, a truncated blob, garbage. */
    ct.data[ct.len - 1] ^= 0x01;
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, CTX, 1, &pt, &arn), KMSCKS_INVALID_CIPHERTEXT);
    ct.data[ct.len - 1] ^= 0x01;
    ct.data[ct.len / 2] ^= 0x80;
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, CTX, 1, &pt, &arn), KMSCKS_INVALID_CIPHERTEXT);
    ct.data[ct.len / 2] ^= 0x80;
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len - 3, CTX, 1, &pt, &arn),
               KMSCKS_INVALID_CIPHERTEXT);
    CHECK_CODE(kmscks_decrypt(c, PT, sizeof PT, NULL, 0, &pt, &arn), KMSCKS_INVALID_CIPHERTEXT);
    CHECK_CODE(kmscks_re_encrypt(c, ct.data, ct.len - 1, CTX, 1, key, NULL, 0, &pt),
               KMSCKS_INVALID_CIPHERTEXT);
    CHECK(untouched(&pt) && arn == SENTINEL);
    /* Restored, it decrypts. */
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, CTX, 1, &pt, &arn));
    CHECK(same_bytes(&pt, PT, sizeof PT));
    kmscks_buffer_free(&pt);
    kmscks_string_free(arn);
    kmscks_buffer_free(&ct);
}

static void sizes(const kmscks_client *c, const char *key) {
    kmscks_buffer a, b;
    reset(&a);
    reset(&b);
    CHECK_CODE(kmscks_generate_data_key(c, key, 0, NULL, 0, &a, &b), KMSCKS_VALIDATION);
    CHECK_MSG("numberOfBytes");
    CHECK(strncmp(kmscks_last_error_message(), "ValidationException", 19) != 0);
    CHECK_CODE(kmscks_generate_data_key(c, key, 2000, NULL, 0, &a, &b), KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_generate_data_key(c, key, 1025, NULL, 0, &a, &b), KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_generate_data_key_without_plaintext(c, key, 0, NULL, 0, &b),
               KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_generate_data_key_without_plaintext(c, key, 2000, NULL, 0, &b),
               KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_generate_random(c, NULL, 0, &a), KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_generate_random(c, NULL, 2000, &a), KMSCKS_VALIDATION);
    CHECK(untouched(&a) && untouched(&b));
    /* Larger than 32 bits: refused before it reaches the service. */
    if (sizeof(size_t) > 4) {
        CHECK_CODE(kmscks_generate_random(c, NULL, (size_t)1 << 40, &a), KMSCKS_INVALID_ARGUMENT);
        CHECK_MSG("argument n");
        CHECK(untouched(&a));
    }
    /* Pending windows outside 7..30 days. */
    CHECK_CODE(kmscks_schedule_key_deletion(c, key, 6, NULL), KMSCKS_VALIDATION);
    CHECK_CODE(kmscks_schedule_key_deletion(c, key, 31, NULL), KMSCKS_VALIDATION);
}

static void disabled_key(const kmscks_client *c, const char *key) {
    kmscks_buffer b, b2, ct = {0};
    CHECK_OK(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &ct));
    CHECK_OK(kmscks_disable_key(c, key));
    reset(&b);
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &b), KMSCKS_DISABLED);
    CHECK_MSG(key);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &b, NULL), KMSCKS_DISABLED);
    reset(&b2);
    CHECK_CODE(kmscks_generate_data_key(c, key, 32, NULL, 0, &b, &b2), KMSCKS_DISABLED);
    CHECK(untouched(&b) && untouched(&b2));
    CHECK_OK(kmscks_enable_key(c, key));
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &b, NULL));
    CHECK(same_bytes(&b, PT, sizeof PT));
    kmscks_buffer_free(&b);
    kmscks_buffer_free(&ct);
}

static void aliases(const kmscks_client *c, const char *key) {
    CHECK_OK(kmscks_create_alias(c, "alias/errors", key));
    CHECK_CODE(kmscks_create_alias(c, "alias/errors", key), KMSCKS_ALREADY_EXISTS);
    CHECK_CODE(kmscks_create_alias(c, "not-an-alias", key), KMSCKS_INVALID_ALIAS_NAME);
    CHECK_CODE(kmscks_create_alias(c, "alias/aws/reserved", key), KMSCKS_INVALID_ALIAS_NAME);
    CHECK_OK(kmscks_delete_alias(c, "alias/errors"));
}

/* A store: never connected, connected then disconnected, failing to connect. */
static void stores(const kmscks_client *c) {
    char *cluster = NULL, *hsm = NULL, *anchor = NULL, *store = NULL, *key = NULL;
    char *out = SENTINEL, *other_anchor = NULL, *other_cluster = NULL;
    kmscks_buffer b, ct = {0};
    kmscks_connection_state state = 0;
    kmscks_connection_error_code code = 0;

    CHECK_OK(kmscks_create_cluster(c, &cluster));
    CHECK_OK(kmscks_create_hsm(c, cluster, "us-east-1a", &hsm));
    kmscks_string_free(hsm);
    CHECK_CODE(kmscks_create_hsm(c, cluster, "eu-west-3c", &hsm), KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    CHECK_OK(kmscks_initialize_cluster(c, cluster, NULL, &anchor));
    CHECK_CODE(kmscks_initialize_cluster(c, cluster, NULL, &out),
               KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    CHECK(out == SENTINEL);
    CHECK_OK(kmscks_create_crypto_user(c, cluster, "kmsuser", PASSWORD));
    /* One HSM is not enough for a store. */
    CHECK_CODE(kmscks_create_custom_key_store(c, "errors-store", cluster, anchor, PASSWORD, &out),
               KMSCKS_CLOUD_HSM_CLUSTER_INVALID_CONFIGURATION);
    CHECK(out == SENTINEL);
    CHECK_OK(kmscks_create_hsm(c, cluster, "us-east-1b", &hsm));
    kmscks_string_free(hsm);

    /* Another cluster's anchor is not this one's. */
    CHECK_OK(kmscks_create_cluster(c, &other_cluster));
    CHECK_CODE(kmscks_initialize_cluster(c, other_cluster, NULL, &out),
               KMSCKS_CLOUD_HSM_INVALID_REQUEST);
    CHECK_MSG("create an HSM first");
    CHECK(out == SENTINEL);
    CHECK_OK(kmscks_create_hsm(c, other_cluster, "us-east-1a", &hsm));
    kmscks_string_free(hsm);
    CHECK_OK(kmscks_initialize_cluster(c, other_cluster, NULL, &other_anchor));
    CHECK_CODE(kmscks_create_custom_key_store(c, "errors-store", cluster, other_anchor, PASSWORD,
                                              &out),
               KMSCKS_INCORRECT_TRUST_ANCHOR);
    CHECK(out == SENTINEL);

    CHECK_OK(kmscks_create_custom_key_store(c, "errors-store", cluster, anchor, PASSWORD, &store));
    /* The same request again is the same store (idempotent); the same name with another
     * password is not; another name on the same cluster is not either. */
    CHECK_OK(kmscks_create_custom_key_store(c, "errors-store", cluster, anchor, PASSWORD, &out));
    CHECK(strcmp(out, store) == 0);
    kmscks_string_free(out);
    out = SENTINEL;
    CHECK_CODE(kmscks_create_custom_key_store(c, "errors-store", cluster, anchor,
                                              "otherPassword1", &out),
               KMSCKS_CUSTOM_KEY_STORE_NAME_IN_USE);
    CHECK(out == SENTINEL);
    CHECK_CODE(kmscks_create_custom_key_store(c, "errors-store-2", cluster, anchor, PASSWORD,
                                              &out),
               KMSCKS_CLOUD_HSM_CLUSTER_IN_USE);
    CHECK(out == SENTINEL);

    /* Never connected: no key, no randomness from it. */
    CHECK_CODE(kmscks_create_key(c, store, NULL, &out), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK(out == SENTINEL);
    reset(&b);
    CHECK_CODE(kmscks_generate_random(c, store, 8, &b), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_wait_connected(c, store, 10), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_MSG("DISCONNECTED");

    /* Connected, a key, then disconnected: the key is unusable, the store keeps it. */
    CHECK_OK(kmscks_connect_custom_key_store(c, store));
    CHECK_OK(kmscks_wait_connected(c, store, 30000));
    CHECK_CODE(kmscks_delete_custom_key_store(c, store), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_CODE(kmscks_update_custom_key_store(c, store, NULL, "otherPassword1", NULL),
               KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_OK(kmscks_create_key(c, store, NULL, &key));
    CHECK_OK(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &ct));
    CHECK_OK(kmscks_disconnect_custom_key_store(c, store));
    CHECK_CODE(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &b), KMSCKS_KMS_INVALID_STATE);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &b, NULL), KMSCKS_KMS_INVALID_STATE);
    CHECK_CODE(kmscks_generate_data_key_without_plaintext(c, key, 32, NULL, 0, &b),
               KMSCKS_KMS_INVALID_STATE);
    CHECK(untouched(&b));
    CHECK_CODE(kmscks_wait_connected(c, store, 30000), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_CODE(kmscks_delete_custom_key_store(c, store), KMSCKS_CUSTOM_KEY_STORE_HAS_CMKS);

    /* A wrong password: the connection FAILS with INVALID_CREDENTIALS. */
    CHECK_OK(kmscks_update_custom_key_store(c, store, NULL, "wrongPassword1", NULL));
    CHECK_OK(kmscks_connect_custom_key_store(c, store));
    CHECK_CODE(kmscks_wait_connected(c, store, 30000), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_MSG("FAILED");
    CHECK_MSG("INVALID_CREDENTIALS");
    CHECK_OK(kmscks_get_connection_state(c, store, &state, &code));
    CHECK(state == KMSCKS_CONNECTION_STATE_FAILED);
    CHECK(code == KMSCKS_CONNECTION_ERROR_CODE_INVALID_CREDENTIALS);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &b, NULL), KMSCKS_KMS_INVALID_STATE);
    CHECK(untouched(&b));
    /* The repair, as on AWS: a FAILED store is disconnected before its password changes;
     * kmsuser's password (which KMS rotated when it first connected) is set on the cluster,
     * then in the store. It connects and the old ciphertext decrypts. */
    CHECK_CODE(kmscks_update_custom_key_store(c, store, NULL, PASSWORD, NULL),
               KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_OK(kmscks_disconnect_custom_key_store(c, store));
    CHECK_CODE(kmscks_wait_connected(c, store, 30000), KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE);
    CHECK_OK(kmscks_change_crypto_user_password(c, cluster, "kmsuser", PASSWORD));
    CHECK_OK(kmscks_update_custom_key_store(c, store, NULL, PASSWORD, NULL));
    CHECK_OK(kmscks_connect_custom_key_store(c, store));
    CHECK_OK(kmscks_wait_connected(c, store, 30000));
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &b, NULL));
    CHECK(same_bytes(&b, PT, sizeof PT));
    kmscks_buffer_free(&b);
    kmscks_buffer_free(&ct);

    kmscks_string_free(key);
    kmscks_string_free(store);
    kmscks_string_free(anchor);
    kmscks_string_free(other_anchor);
    kmscks_string_free(other_cluster);
    kmscks_string_free(cluster);
}

/* Embedded mode only: options and the data directory's lock. */
static void open_errors(const char *data_dir) {
    kmscks_client *c2 = (kmscks_client *)SENTINEL;
    kmscks_open_options options;
    /* A struct as a later header may declare it: fields appended, which kmscks ignores. */
    struct {
        kmscks_open_options known;
        uint64_t appended[3];
    } newer;
    char smallest[80];

    kmscks_open_options_init(&options);
    /* Today's struct is the first released one: the smallest struct_size accepted. */
    snprintf(smallest, sizeof smallest, "below %zu, the smallest accepted", sizeof options);
    options.struct_size = 4;
    CHECK_CODE(kmscks_open_with(NULL, &options, &c2), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument options: struct_size is 4");
    CHECK_MSG(smallest);
    CHECK(c2 == (kmscks_client *)SENTINEL);
    options.struct_size = sizeof options - 1;
    CHECK_CODE(kmscks_open_with(NULL, &options, &c2), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG(smallest);
    CHECK(c2 == (kmscks_client *)SENTINEL);
    /* A newer header's larger struct is accepted, read as far as this library knows it. */
    memset(&newer, 0xA5, sizeof newer);
    kmscks_open_options_init(&newer.known);
    newer.known.struct_size = sizeof newer;
    newer.known.hsm_password_iterations = 1000;
    CHECK_OK(kmscks_open_with(NULL, &newer.known, &c2));
    CHECK(c2 != NULL && c2 != (kmscks_client *)SENTINEL);
    kmscks_close(c2);
    c2 = (kmscks_client *)SENTINEL;
    /* The directory is this process's already. */
    CHECK_CODE(kmscks_open(data_dir, &c2), KMSCKS_STORE_IN_USE);
    CHECK(c2 == (kmscks_client *)SENTINEL);
    /* In memory: nothing on disk, no lock. */
    CHECK_OK(kmscks_open(NULL, &c2));
    CHECK(c2 != NULL && c2 != (kmscks_client *)SENTINEL);
    CHECK(key_count(c2) == 0);
    kmscks_close(c2);
}

/* kmscks_connect_with (daemon mode): its options are checked, each refusal leaves `out` as it
 * was, and a handle that sleeps at once for its replies, with a reply timeout, works like any
 * other. */
static void connect_options(const char *socket_path, const char *key) {
    kmscks_client *c2 = (kmscks_client *)SENTINEL;
    kmscks_connect_options options;
    kmscks_buffer ct = {0}, pt = {0};

    kmscks_connect_options_init(&options);
    CHECK(options.struct_size == sizeof options);
    CHECK(options.reply_spin_us == 20);
    CHECK(options.reply_timeout_ms == 0);
    /* The sized call the macro makes, given the size of kmscks 0.1's struct (which ends where
     * reply_timeout_ms begins): nothing past it is written. */
    memset(&options, 0xab, sizeof options);
    kmscks_connect_options_init_sized(&options, offsetof(kmscks_connect_options, reply_timeout_ms));
    CHECK(options.struct_size == offsetof(kmscks_connect_options, reply_timeout_ms));
    CHECK(options.reply_spin_us == 20);
    CHECK(options.reply_timeout_ms == UINT64_C(0xabababababababab));
    kmscks_connect_options_init(&options);
    options.struct_size = 4;
    CHECK_CODE(kmscks_connect_with(socket_path, &options, &c2), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument options: struct_size is 4");
    CHECK_MSG("the smallest accepted (fill it with kmscks_connect_options_init)");
    CHECK(c2 == (kmscks_client *)SENTINEL);
    kmscks_connect_options_init(&options);
    options.reply_spin_us = 1000001;
    CHECK_CODE(kmscks_connect_with(socket_path, &options, &c2), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("reply_spin_us is 1000001, over the limit of 1000000");
    CHECK(c2 == (kmscks_client *)SENTINEL);
    options.reply_spin_us = 0;
    CHECK_CODE(kmscks_connect_with(socket_path, &options, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK_MSG("argument out");

    options.reply_timeout_ms = 60000;
    CHECK_OK(kmscks_connect_with(socket_path, &options, &c2));
    CHECK(c2 != NULL && c2 != (kmscks_client *)SENTINEL);
    CHECK_OK(kmscks_encrypt(c2, key, PT, sizeof PT, NULL, 0, &ct));
    CHECK_OK(kmscks_decrypt(c2, ct.data, ct.len, NULL, 0, &pt, NULL));
    CHECK(same_bytes(&pt, PT, sizeof PT));
    kmscks_buffer_free(&pt);
    kmscks_buffer_free(&ct);
    kmscks_close(c2);
    /* NULL options are the defaults. */
    CHECK_OK(kmscks_connect_with(socket_path, NULL, &c2));
    kmscks_close(c2);
}

int main(int argc, char **argv) {
    kmscks_client *c = open_client(argc, argv);
    kmscks_client *c2 = (kmscks_client *)SENTINEL;
    char *key = NULL, *json_before = NULL, *json_after = NULL;
    size_t keys;

    CHECK(strcmp(kmscks_last_error_message(), "") == 0);
    result_names();
    free_functions(c);

    /* Nothing listens there. */
    CHECK_CODE(kmscks_connect("/nonexistent-dir/kmscks.sock", &c2), KMSCKS_IO);
    CHECK(c2 == (kmscks_client *)SENTINEL);
    CHECK(strlen(kmscks_last_error_message()) > 0);
    if (!daemon_mode) open_errors(argv[2]);

    CHECK_OK(kmscks_create_key(c, NULL, "errors.c", &key));
    /* A success clears the thread's last error. */
    CHECK_CODE(kmscks_enable_key(c, NULL), KMSCKS_INVALID_ARGUMENT);
    CHECK(strlen(kmscks_last_error_message()) > 0);
    CHECK_OK(kmscks_enable_key(c, key));
    CHECK(strcmp(kmscks_last_error_message(), "") == 0);

    keys = key_count(c);
    CHECK_OK(kmscks_list_keys_json(c, 0, NULL, &json_before));
    null_arguments(c, key);
    bad_utf8(c, key);
    unknown_ids(c);
    ciphertexts(c, key);
    sizes(c, key);
    disabled_key(c, key);
    aliases(c, key);
    /* Nothing a refused call was given changed anything. */
    CHECK(key_count(c) == keys);
    CHECK_OK(kmscks_list_keys_json(c, 0, NULL, &json_after));
    CHECK(strcmp(json_before, json_after) == 0);
    kmscks_string_free(json_after);
    CHECK_OK(kmscks_list_aliases_json(c, NULL, 0, NULL, &json_after));
    CHECK(strstr(json_after, "alias/points-nowhere") == NULL);
    CHECK(strstr(json_after, "alias/errors") == NULL);
    kmscks_string_free(json_after);
    kmscks_string_free(json_before);

    stores(c);
    if (daemon_mode) connect_options(argv[2], key);

    kmscks_string_free(key);
    kmscks_close(c);
    return finish("errors");
}
