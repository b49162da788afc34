/*
 * quickstart.c: the four steps of AWS's custom key store guide, in C, against libkmscks.
 *
 *   1. a CloudHSM cluster with two HSMs in two Availability Zones;
 *   2. the cluster initialized (kmscks makes the CA and gives back its certificate, the
 *      trust anchor) and a crypto user `kmsuser` for KMS to log in as;
 *   3. a custom key store on that cluster, connected;
 *   4. a KMS key in the store, used to encrypt, decrypt and make a data key.
 *
 * Build and run (after `ffi/install`, see docs/c-api.md):
 *
 *   cc ffi/examples/quickstart.c -o quickstart $(pkg-config --cflags --libs kmscks)
 *   ./quickstart                  # kmscks inside this process, nothing on disk
 *   ./quickstart DATA_DIR         # inside this process, state kept in DATA_DIR
 *   ./quickstart --socket [PATH]  # through kmscksd (PATH omitted: the default socket)
 *
 * The same code runs in every mode: only how the handle is made differs.
 *
 * Conventions shown here: every kmscks_* call returns a kmscks_result (KMSCKS_OK is 0);
 * kmscks_result_name() names a failure (the AWS exception name) and
 * kmscks_last_error_message() says what went wrong. Outputs are written only on success;
 * strings are freed with kmscks_string_free(), byte buffers with kmscks_buffer_free() (which
 * wipes them). Both accept NULL and zeroed values, so one cleanup block at the end frees
 * whatever was made, however far the program got.
 *
 * The CloudHSM user password is hashed with PBKDF2 at kmscks's default strength (600,000
 * iterations, a fraction of a second per hash); this program keeps that default, as real
 * programs should. (kmscks_open_with() can lower it for test suites; never for real data.)
 */

#include <stdio.h>
#include <string.h>

#include <kmscks.h>

/* Reports a failed call and says whether it failed: the code's name (the AWS exception's,
 * "NotFoundException") and the message ("Key 'arn:...' does not exist"). */
static int failed(kmscks_result r, const char *what) {
    const char *name, *message;
    if (r == KMSCKS_OK) return 0;
    name = kmscks_result_name(r);
    message = kmscks_last_error_message(); /* read before any other kmscks_* call */
    fprintf(stderr, "quickstart: %s failed: %s: %s\n", what, name, message);
    return 1;
}

/* Runs `call`; on failure reports it and jumps to the cleanup. */
#define TRY(what, call)                  \
    do {                                 \
        if (failed((call), (what))) goto done; \
    } while (0)

int main(int argc, char **argv) {
    int status = 1;
    kmscks_client *kms = NULL;
    char *cluster_id = NULL, *hsm_a = NULL, *hsm_b = NULL, *trust_anchor = NULL;
    char *store_id = NULL, *key_id = NULL, *key_arn = NULL;
    kmscks_buffer ciphertext = {NULL, 0}, plaintext = {NULL, 0};
    kmscks_buffer data_key = {NULL, 0}, data_key_blob = {NULL, 0}, data_key_again = {NULL, 0};
    char store_name[128];

    /* How to reach kmscks: the only part that differs between the modes. */
    if (argc >= 2 && strcmp(argv[1], "--socket") == 0) {
        const char *socket = argc >= 3 ? argv[2] : NULL; /* NULL: the CLI's default socket */
        TRY("kmscks_connect", kmscks_connect(socket, &kms));
        printf("kmscks %s, through kmscksd on %s\n", kmscks_version(),
               socket ? socket : "the default socket");
    } else if (argc <= 2 && (argc < 2 || argv[1][0] != '-')) {
        const char *data_dir = argc == 2 ? argv[1] : NULL; /* NULL: nothing on disk */
        TRY("kmscks_open", kmscks_open(data_dir, &kms));
        printf("kmscks %s, inside this process, %s%s\n", kmscks_version(),
               data_dir ? "data directory " : "in memory", data_dir ? data_dir : "");
    } else {
        fprintf(stderr, "usage: %s [DATA_DIR | --socket [PATH]]\n", argv[0]);
        return 2;
    }

    /* Step 1: a cluster, and two HSMs in two Availability Zones (a custom key store needs
     * at least two). */
    TRY("kmscks_create_cluster", kmscks_create_cluster(kms, &cluster_id));
    TRY("kmscks_create_hsm", kmscks_create_hsm(kms, cluster_id, "us-east-1a", &hsm_a));
    TRY("kmscks_create_hsm", kmscks_create_hsm(kms, cluster_id, "us-east-1b", &hsm_b));
    printf("1. cluster %s with HSMs %s (us-east-1a) and %s (us-east-1b)\n", cluster_id, hsm_a,
           hsm_b);

    /* Step 2: initialize it (NULL: kmscks makes the CA and returns its certificate, which
     * the key store needs), and create the crypto user KMS logs in as. */
    TRY("kmscks_initialize_cluster",
        kmscks_initialize_cluster(kms, cluster_id, NULL, &trust_anchor));
    TRY("kmscks_create_crypto_user",
        kmscks_create_crypto_user(kms, cluster_id, "kmsuser", "kmsuserPassw0rd"));
    printf("2. cluster initialized (trust anchor: %zu bytes of PEM), crypto user kmsuser\n",
           strlen(trust_anchor));

    /* Step 3: the custom key store (named after the cluster, so that the program can run
     * again on the same data directory or daemon), connected. */
    snprintf(store_name, sizeof store_name, "quickstart-%s", cluster_id);
    TRY("kmscks_create_custom_key_store",
        kmscks_create_custom_key_store(kms, store_name, cluster_id, trust_anchor,
                                       "kmsuserPassw0rd", &store_id));
    TRY("kmscks_connect_custom_key_store", kmscks_connect_custom_key_store(kms, store_id));
    TRY("kmscks_wait_connected", kmscks_wait_connected(kms, store_id, 10000));
    printf("3. custom key store %s (%s) CONNECTED\n", store_id, store_name);

    /* Step 4: a KMS key whose material lives in the cluster, and what it is for. */
    TRY("kmscks_create_key", kmscks_create_key(kms, store_id, "quickstart key", &key_id));
    printf("4. KMS key %s in %s\n", key_id, store_id);
    {
        static const char message[] = "hello from C";
        const kmscks_context_entry context[] = {{"purpose", "quickstart"}};
        const size_t context_len = sizeof context / sizeof context[0];

        TRY("kmscks_encrypt",
            kmscks_encrypt(kms, key_id, (const uint8_t *)message, strlen(message), context,
                           context_len, &ciphertext));
        TRY("kmscks_decrypt", kmscks_decrypt(kms, ciphertext.data, ciphertext.len, context,
                                             context_len, &plaintext, &key_arn));
        printf("   encrypt: %zu bytes -> %zu-byte ciphertext; decrypt: \"%.*s\" (key %s)\n",
               strlen(message), ciphertext.len, (int)plaintext.len, (const char *)plaintext.data,
               key_arn);
        if (plaintext.len != strlen(message) || memcmp(plaintext.data, message, plaintext.len)) {
            fprintf(stderr, "quickstart: the decrypted text differs from the original\n");
            goto done;
        }

        /* Envelope encryption: a data key to encrypt data with locally; keep only its
         * encrypted form next to the data, and decrypt it when the data is read again. */
        TRY("kmscks_generate_data_key",
            kmscks_generate_data_key(kms, key_id, 32, context, context_len, &data_key,
                                     &data_key_blob));
        TRY("kmscks_decrypt", kmscks_decrypt(kms, data_key_blob.data, data_key_blob.len,
                                             context, context_len, &data_key_again, NULL));
        if (data_key_again.len != data_key.len ||
            memcmp(data_key_again.data, data_key.data, data_key.len)) {
            fprintf(stderr, "quickstart: the decrypted data key differs\n");
            goto done;
        }
        printf("   data key: %zu bytes, %zu bytes encrypted; decrypts to the same key\n",
               data_key.len, data_key_blob.len);
    }
    printf("quickstart: OK\n");
    status = 0;

done:
    /* Free everything (NULL strings and zeroed buffers are no-ops); buffers that held
     * plaintext or key material are wiped as they are freed. */
    kmscks_buffer_free(&data_key_again);
    kmscks_buffer_free(&data_key_blob);
    kmscks_buffer_free(&data_key);
    kmscks_buffer_free(&plaintext);
    kmscks_buffer_free(&ciphertext);
    kmscks_string_free(key_arn);
    kmscks_string_free(key_id);
    kmscks_string_free(store_id);
    kmscks_string_free(trust_anchor);
    kmscks_string_free(hsm_b);
    kmscks_string_free(hsm_a);
    kmscks_string_free(cluster_id);
    kmscks_close(kms);
    return status;
}
