/*
 * check.h: what every C test program of libkmscks shares, so that each program is only its
 * checks. Written from include/kmscks.h alone, as a C user would.
 *
 * - CHECK(cond), CHECK_OK(call), CHECK_CODE(call, code), CHECK_MSG(part): on failure they
 *   print file:line, what was expected, the result's name (kmscks_result_name) and the
 *   thread's last error message (kmscks_last_error_message), then exit(1). Each passed check
 *   is counted; the program prints "<name>: N checks passed" at the end (finish()), which the
 *   Rust harness (tests/capi_c.rs) looks for.
 * - open_client(argc, argv): the mode comes from argv, as for every program here:
 *     prog embedded <data_dir>   kmscks_open_with (PBKDF2 lowered for speed: a test)
 *     prog daemon <socket_path>  kmscks_connect
 * - small helpers: context entries, counting keys in a ListKeys page.
 *
 * Needs _POSIX_C_SOURCE before any include in programs that use pthreads.
 */
#ifndef KMSCKS_TEST_CHECK_H
#define KMSCKS_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmscks.h"

/* Checks passed so far, by every thread. */
static atomic_ulong checks_passed;

/* Whether the program runs through the daemon (else in this process). */
static int daemon_mode;

static inline void check_fail(const char *file, int line, const char *what, kmscks_result got) {
    const char *msg = kmscks_last_error_message();
    fprintf(stderr, "%s:%d: CHECK FAILED: %s\n  result: %u (%s)\n  last error: %s\n", file,
            line, what, (unsigned)got, kmscks_result_name(got), msg ? msg : "(NULL)");
    fflush(stderr);
    exit(1);
}

/* A condition. */
#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) check_fail(__FILE__, __LINE__, #cond, KMSCKS_OK);                        \
        atomic_fetch_add(&checks_passed, 1);                                                  \
    } while (0)

/* A call that must succeed. */
#define CHECK_OK(call)                                                                        \
    do {                                                                                      \
        kmscks_result check_r_ = (call);                                                      \
        if (check_r_ != KMSCKS_OK)                                                            \
            check_fail(__FILE__, __LINE__, #call " == KMSCKS_OK", check_r_);                  \
        atomic_fetch_add(&checks_passed, 1);                                                  \
    } while (0)

/* A call that must fail with `code`. */
#define CHECK_CODE(call, code)                                                                \
    do {                                                                                      \
        kmscks_result check_r_ = (call);                                                      \
        if (check_r_ != (code)) check_fail(__FILE__, __LINE__, #call " == " #code, check_r_); \
        atomic_fetch_add(&checks_passed, 1);                                                  \
    } while (0)

static inline void check_msg_fail(const char *file, int line, const char *part) {
    const char *msg = kmscks_last_error_message();
    fprintf(stderr, "%s:%d: CHECK FAILED: the last error message contains \"%s\"\n"
            "  last error: %s\n", file, line, part, msg ? msg : "(NULL)");
    fflush(stderr);
    exit(1);
}

/* The thread's last error message contains `part` (a string). */
#define CHECK_MSG(part)                                                                       \
    do {                                                                                      \
        const char *check_m_ = kmscks_last_error_message();                                   \
        if (check_m_ == NULL || strstr(check_m_, (part)) == NULL)                             \
            check_msg_fail(__FILE__, __LINE__, (part));                                       \
        atomic_fetch_add(&checks_passed, 1);                                                  \
    } while (0)

/* Prints the summary the harness looks for; the exit code of main. */
static inline int finish(const char *program) {
    printf("%s (%s): %lu checks passed\n", program, daemon_mode ? "daemon" : "embedded",
           (unsigned long)atomic_load(&checks_passed));
    fflush(stdout);
    return 0;
}

static inline void usage(const char *prog) {
    fprintf(stderr, "usage: %s embedded <data_dir> | daemon <socket_path>\n", prog);
    exit(2);
}

/* The handle the mode in argv asks for. */
static inline kmscks_client *open_client(int argc, char **argv) {
    kmscks_client *c = NULL;
    if (argc != 3) usage(argv[0]);
    if (strcmp(argv[1], "embedded") == 0) {
        kmscks_open_options options;
        kmscks_open_options_init(&options);
        CHECK(options.struct_size == sizeof options);
        /* A test: the floor, so that crypto users and connections are fast. */
        options.hsm_password_iterations = 1000;
        CHECK_OK(kmscks_open_with(argv[2], &options, &c));
    } else if (strcmp(argv[1], "daemon") == 0) {
        daemon_mode = 1;
        CHECK_OK(kmscks_connect(argv[2], &c));
    } else {
        usage(argv[0]);
    }
    CHECK(c != NULL);
    return c;
}

/* Occurrences of `needle` in `haystack`. */
static inline size_t count_of(const char *haystack, const char *needle) {
    size_t n = 0;
    const char *at = haystack;
    while ((at = strstr(at, needle)) != NULL) {
        n++;
        at += strlen(needle);
    }
    return n;
}

/* How many keys ListKeys lists (one page of up to 1000). */
static inline size_t key_count(const kmscks_client *c) {
    char *json = NULL;
    size_t n;
    CHECK_OK(kmscks_list_keys_json(c, 1000, NULL, &json));
    CHECK(json != NULL);
    CHECK(strstr(json, "\"Truncated\":false") != NULL || strstr(json, "\"Truncated\": false") != NULL);
    n = count_of(json, "\"KeyId\"");
    kmscks_string_free(json);
    return n;
}

/* Two buffers hold the same bytes. */
static inline int same_bytes(const kmscks_buffer *a, const uint8_t *b, size_t b_len) {
    return a->len == b_len && (b_len == 0 || memcmp(a->data, b, b_len) == 0);
}

/* Whether `needle` occurs in `hay` (memmem is not C11). */
static inline int contains_bytes(const uint8_t *hay, size_t hay_len, const uint8_t *needle,
                                 size_t needle_len) {
    size_t i;
    if (needle_len > hay_len) return 0;
    for (i = 0; i + needle_len <= hay_len; i++)
        if (memcmp(hay + i, needle, needle_len) == 0) return 1;
    return 0;
}

#endif /* KMSCKS_TEST_CHECK_H */
