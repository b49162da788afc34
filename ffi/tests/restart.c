/*
 * restart.c (daemon mode only): a handle outlives its daemon. The program encrypts, asks the
 * harness to stop the daemon, sees KMSCKS_IO while it is down, asks for it to be started
 * again on the same data directory, and then, with the same handle, the ciphertext made
 * before decrypts (the data persisted) and new calls work. No call after the restart fails:
 * the handle's pooled connection, which the stopped daemon closed, is replaced before the
 * first call is sent on it.
 *
 * The conversation with the harness (tests/capi_c.rs), one line each way:
 *   program -> "STOP"   harness stops the daemon, answers "STOPPED"
 *   program -> "START"  harness starts it again,  answers "STARTED"
 *
 * Usage: restart daemon <socket_path>
 */
#include "check.h"

static const uint8_t PT[] = "kept across a daemon restart";

/* Tells the harness `what` and waits for `answer`. */
static void ask(const char *what, const char *answer) {
    char line[64];
    printf("%s\n", what);
    fflush(stdout);
    CHECK(fgets(line, sizeof line, stdin) != NULL);
    line[strcspn(line, "\n")] = 0;
    CHECK(strcmp(line, answer) == 0);
}

int main(int argc, char **argv) {
    kmscks_client *c = NULL;
    char *key = NULL, *arn = NULL;
    kmscks_buffer ct = {0}, pt = {0}, rnd = {0};
    int i;

    if (argc != 3 || strcmp(argv[1], "daemon") != 0) {
        fprintf(stderr, "usage: %s daemon <socket_path>\n", argv[0]);
        return 2;
    }
    c = open_client(argc, argv);
    CHECK_OK(kmscks_create_key(c, NULL, "restart.c", &key));
    CHECK_OK(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &ct));

    ask("STOP", "STOPPED");
    /* Nothing listens: the call's outcome is unknown, the code says so. */
    CHECK_CODE(kmscks_generate_random(c, NULL, 16, &rnd), KMSCKS_IO);
    CHECK(rnd.data == NULL);
    CHECK(strlen(kmscks_last_error_message()) > 0);
    CHECK_CODE(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, NULL), KMSCKS_IO);
    CHECK(pt.data == NULL);

    ask("START", "STARTED");
    /* The first call after the restart already works. */
    CHECK_OK(kmscks_decrypt(c, ct.data, ct.len, NULL, 0, &pt, &arn));
    CHECK(same_bytes(&pt, PT, sizeof PT));
    CHECK(strstr(arn, key) != NULL);
    kmscks_buffer_free(&pt);
    kmscks_string_free(arn);
    /* And it keeps working. */
    for (i = 0; i < 10; i++) {
        CHECK_OK(kmscks_generate_random(c, NULL, 16, &rnd));
        CHECK(rnd.len == 16);
        kmscks_buffer_free(&rnd);
    }
    CHECK(key_count(c) == 1);

    kmscks_buffer_free(&ct);
    kmscks_string_free(key);
    kmscks_close(c);
    printf("restart: no KMSCKS_IO after the restart\n");
    return finish("restart");
}
