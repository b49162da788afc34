/*
 * threads.c: one kmscks_client used from 8 threads at once. Each thread makes ROUNDS data keys
 * (single calls and batches) and decrypts each, checking the plaintext matches, on keys of
 * the default store and of a custom key store; and each thread's kmscks_last_error_message is
 * its own: all threads fail at once with errors naming their own key, wait for each other,
 * then each reads its own message. Written only from the header.
 *
 * Usage: threads embedded <data_dir> | threads daemon <socket_path>   (see check.h)
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#include <pthread.h>

#define THREADS 8
#define ROUNDS 100
#define PASSWORD "threadsPassword1"

static const kmscks_client *client;
static char *keys[2];
static pthread_barrier_t barrier;

struct work {
    int index;
    char own_key[64];
};

/* Every thread fails at once, each on a key named after itself; after the barrier, each
 * sees its own message, not the last one any thread set. */
static void own_last_error(struct work *w) {
    char *json = NULL;
    int r = pthread_barrier_wait(&barrier);
    CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_CODE(kmscks_describe_key_json(client, w->own_key, &json), KMSCKS_NOT_FOUND);
    r = pthread_barrier_wait(&barrier);
    CHECK(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_MSG(w->own_key);
    CHECK(json == NULL);
}

static void round_trips(struct work *w) {
    int i, k;
    char thread_name[16];
    kmscks_context_entry ctx[2] = {{"thread", thread_name}, {"round", ""}};
    char round_name[16];
    ctx[1].value = round_name;
    snprintf(thread_name, sizeof thread_name, "t%d", w->index);
    for (i = 0; i < ROUNDS; i++) {
        for (k = 0; k < 2; k++) {
            kmscks_buffer dk = {0}, ct = {0}, back = {0};
            size_t n = 16 + (size_t)((w->index + i) % 17);
            snprintf(round_name, sizeof round_name, "r%d", i);
            CHECK_OK(kmscks_generate_data_key(client, keys[k], n, ctx, 2, &dk, &ct));
            CHECK(dk.len == n);
            CHECK_OK(kmscks_decrypt(client, ct.data, ct.len, ctx, 2, &back, NULL));
            CHECK(same_bytes(&back, dk.data, dk.len));
            kmscks_buffer_free(&back);
            /* Another thread's context does not open it. */
            thread_name[0] = 'x';
            CHECK_CODE(kmscks_decrypt(client, ct.data, ct.len, ctx, 2, &back, NULL),
                       KMSCKS_INVALID_CIPHERTEXT);
            thread_name[0] = 't';
            kmscks_buffer_free(&dk);
            kmscks_buffer_free(&ct);
        }
        if (i % 10 == 0) {
            kmscks_data_key_request items[3] = {
                {keys[0], 32, ctx, 2}, {keys[1], 32, ctx, 2}, {w->own_key, 32, NULL, 0}};
            kmscks_data_key_result results[3];
            kmscks_buffer back = {0};
            int j;
            CHECK_OK(kmscks_generate_data_key_batch(client, items, 3, results));
            CHECK(results[2].result == KMSCKS_NOT_FOUND);
            for (j = 0; j < 2; j++) {
                CHECK(results[j].result == KMSCKS_OK);
                CHECK_OK(kmscks_decrypt(client, results[j].ciphertext.data,
                                        results[j].ciphertext.len, ctx, 2, &back, NULL));
                CHECK(same_bytes(&back, results[j].plaintext.data, results[j].plaintext.len));
                kmscks_buffer_free(&back);
                kmscks_buffer_free(&results[j].plaintext);
                kmscks_buffer_free(&results[j].ciphertext);
            }
        }
    }
}

static void *run(void *arg) {
    struct work *w = arg;
    own_last_error(w);
    round_trips(w);
    own_last_error(w);
    return NULL;
}

/* A connected custom key store; writes a key in it. */
static void custom_store_key(const kmscks_client *c, char **key) {
    char *cluster = NULL, *hsm = NULL, *anchor = NULL, *store = NULL;
    CHECK_OK(kmscks_create_cluster(c, &cluster));
    CHECK_OK(kmscks_create_hsm(c, cluster, "us-east-1a", &hsm));
    kmscks_string_free(hsm);
    CHECK_OK(kmscks_create_hsm(c, cluster, "us-east-1b", &hsm));
    kmscks_string_free(hsm);
    CHECK_OK(kmscks_initialize_cluster(c, cluster, NULL, &anchor));
    CHECK_OK(kmscks_create_crypto_user(c, cluster, "kmsuser", PASSWORD));
    CHECK_OK(kmscks_create_custom_key_store(c, "threads-store", cluster, anchor, PASSWORD,
                                            &store));
    CHECK_OK(kmscks_connect_custom_key_store(c, store));
    CHECK_OK(kmscks_wait_connected(c, store, 30000));
    CHECK_OK(kmscks_create_key(c, store, NULL, key));
    kmscks_string_free(store);
    kmscks_string_free(anchor);
    kmscks_string_free(cluster);
}

int main(int argc, char **argv) {
    kmscks_client *c = open_client(argc, argv);
    pthread_t threads[THREADS];
    struct work work[THREADS];
    int i;

    client = c;
    CHECK_OK(kmscks_create_key(c, NULL, "threads: default store", &keys[0]));
    custom_store_key(c, &keys[1]);
    CHECK(pthread_barrier_init(&barrier, NULL, THREADS) == 0);
    for (i = 0; i < THREADS; i++) {
        work[i].index = i;
        snprintf(work[i].own_key, sizeof work[i].own_key, "alias/thread-%d-has-no-key", i);
        CHECK(pthread_create(&threads[i], NULL, run, &work[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(pthread_barrier_destroy(&barrier) == 0);
    /* The main thread's own last call succeeded. */
    CHECK(strcmp(kmscks_last_error_message(), "") == 0);

    kmscks_string_free(keys[0]);
    kmscks_string_free(keys[1]);
    kmscks_close(c);
    return finish("threads");
}
