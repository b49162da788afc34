/*
 * ffi/bench/bench.c: GenerateDataKey and Encrypt (4 KiB) through the C API in embedded mode,
 * one call at a time or in batches, for `cargo bench --bench capi`, which runs this program
 * and the same calls through the Rust API in the same run and reports the ratio (see
 * benches/capi.rs and the README's performance table).
 *
 * usage: bench gdk|encrypt BATCH MILLISECONDS
 * prints: <calls> <nanoseconds>   (items answered, time they took; setup not counted)
 */
#include "kmscks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PLAINTEXT_LEN 4096
#define MAX_BATCH 1024
/* Calls between two looks at the clock. */
#define STRIDE 64
/* Untimed calls before the timed ones (benches/capi.rs warms the Rust side as long). */
#define WARMUP_NS 100000000LL

static void die(const char *what, kmscks_result r) {
    fprintf(stderr, "bench: %s: %s: %s\n", what, kmscks_result_name(r), kmscks_last_error_message());
    exit(1);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static kmscks_data_key_request gdk_items[MAX_BATCH];
static kmscks_data_key_result gdk_results[MAX_BATCH];
static kmscks_encrypt_request enc_items[MAX_BATCH];
static kmscks_encrypt_result enc_results[MAX_BATCH];
static uint8_t plaintext[PLAINTEXT_LEN];

/* One round of `batch` items; returns the items answered. */
static size_t once(const kmscks_client *c, const char *key, int gdk, size_t batch) {
    kmscks_result r;
    size_t i;
    if (batch == 1 && gdk) {
        kmscks_buffer pt = {0}, ct = {0};
        r = kmscks_generate_data_key(c, key, 32, NULL, 0, &pt, &ct);
        if (r != KMSCKS_OK) die("generate data key", r);
        kmscks_buffer_free(&pt);
        kmscks_buffer_free(&ct);
        return 1;
    }
    if (batch == 1) {
        kmscks_buffer ct = {0};
        r = kmscks_encrypt(c, key, plaintext, PLAINTEXT_LEN, NULL, 0, &ct);
        if (r != KMSCKS_OK) die("encrypt", r);
        kmscks_buffer_free(&ct);
        return 1;
    }
    if (gdk) {
        r = kmscks_generate_data_key_batch(c, gdk_items, batch, gdk_results);
        if (r != KMSCKS_OK) die("generate data key batch", r);
        for (i = 0; i < batch; i++) {
            if (gdk_results[i].result != KMSCKS_OK) die("a batch item", gdk_results[i].result);
            kmscks_buffer_free(&gdk_results[i].plaintext);
            kmscks_buffer_free(&gdk_results[i].ciphertext);
        }
        return batch;
    }
    r = kmscks_encrypt_batch(c, enc_items, batch, enc_results);
    if (r != KMSCKS_OK) die("encrypt batch", r);
    for (i = 0; i < batch; i++) {
        if (enc_results[i].result != KMSCKS_OK) die("a batch item", enc_results[i].result);
        kmscks_buffer_free(&enc_results[i].ciphertext);
    }
    return batch;
}

int main(int argc, char **argv) {
    kmscks_client *c = NULL;
    char *key = NULL;
    kmscks_result r;
    int gdk;
    size_t batch, i, calls = 0;
    long long ms, start, elapsed;
    if (argc != 4 || (strcmp(argv[1], "gdk") != 0 && strcmp(argv[1], "encrypt") != 0)) {
        fprintf(stderr, "usage: bench gdk|encrypt BATCH MILLISECONDS\n");
        return 2;
    }
    gdk = strcmp(argv[1], "gdk") == 0;
    batch = (size_t)strtoul(argv[2], NULL, 10);
    ms = strtoll(argv[3], NULL, 10);
    if (batch == 0 || batch > MAX_BATCH || ms <= 0) {
        fprintf(stderr, "bench: BATCH is 1..%d and MILLISECONDS positive\n", MAX_BATCH);
        return 2;
    }
    memset(plaintext, 0x5a, sizeof plaintext);
    r = kmscks_open(NULL, &c);
    if (r != KMSCKS_OK) die("open", r);
    r = kmscks_create_key(c, NULL, "bench", &key);
    if (r != KMSCKS_OK) die("create key", r);
    for (i = 0; i < batch; i++) {
        gdk_items[i].key_id = key;
        gdk_items[i].number_of_bytes = 32;
        enc_items[i].key_id = key;
        enc_items[i].pt = plaintext;
        enc_items[i].pt_len = PLAINTEXT_LEN;
    }
    /* Warm-up, as long as the Rust side's: subkeys derived, pools filled, code paged in,
     * branch predictors trained. */
    start = now_ns();
    while (now_ns() - start < WARMUP_NS) once(c, key, gdk, batch);
    start = now_ns();
    do {
        for (i = 0; i < STRIDE; i++) calls += once(c, key, gdk, batch);
        elapsed = now_ns() - start;
    } while (elapsed < ms * 1000000LL);
    printf("%zu %lld\n", calls, elapsed);
    kmscks_string_free(key);
    kmscks_close(c);
    return 0;
}
