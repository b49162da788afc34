/*
 * fork.c: a program that forks after opening kmscks, as a pre-fork server does.
 *
 * The child:
 * - refuses to serve from the handle it inherited (in process: its random pools and nonce
 *   counters are copies of the parent's; through the daemon: its connections are the
 *   parent's sockets);
 * - closes it, which neither hangs nor crashes (the parent's threads are not in the child)
 *   and lets go of the data directory;
 * - opens kmscks again once the parent has closed its own handle, as the README advises,
 *   and encrypts.
 *
 * The parent then opens kmscks again and decrypts what the child made.
 *
 * All this twice: with a child made by fork(), and with one made without running the
 * pthread_atfork handlers (_Fork() on glibc 2.34 and later, else the raw system call), whose
 * copy of the address space kmscks must notice all the same: a child that served from it
 * would repeat the parent's GCM nonces and data keys.
 *
 * The two processes talk over pipes: the child says when it has closed its handle, the parent
 * when it has closed its own, and the child sends its ciphertext (length, then bytes).
 *
 * Usage: fork embedded <data_dir> | fork daemon <socket_path>
 */
#define _GNU_SOURCE /* _Fork and syscall, beside POSIX */
#include "check.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const uint8_t PT[] = "sealed by a forked child";

/* Whether libc has _Fork (glibc 2.34 and later). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE__FORK 1
#else
#define HAVE__FORK 0
#endif

/* A way to make a child: a copy of this process with only the calling thread in it. */
struct maker {
    const char *name;
    pid_t (*make)(void);
};

/*
 * A child made as fork() makes one, but with no pthread_atfork handler run (and no lock of
 * libc reset: the parent's threads are idle at the fork here, waiting for work).
 */
static pid_t fork_without_handlers(void) {
#if HAVE__FORK
    return _Fork();
#elif defined(SYS_fork)
    return (pid_t)syscall(SYS_fork);
#else
    /* No fork system call (arm64, riscv): clone with no sharing flag is one. */
    return (pid_t)syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
#endif
}

static const struct maker MAKERS[] = {
    {"fork()", fork},
#if HAVE__FORK
    {"_Fork()", fork_without_handlers},
#else
    {"a raw fork (or clone) system call", fork_without_handlers},
#endif
};

/* The child's part; never returns. */
static void child(int argc, char **argv, kmscks_client *inherited, const char *key,
                  int to_parent, int from_parent) {
    kmscks_client *c = NULL;
    kmscks_buffer ct = {0}, dk = {0}, dk_ct = {0};
    char said;
    uint64_t len;

    /* A hang fails the test (the parent sees SIGALRM) rather than blocking it. */
    alarm(30);
    CHECK_CODE(kmscks_encrypt(inherited, key, PT, sizeof PT, NULL, 0, &ct), KMSCKS_KMS_INTERNAL);
    CHECK_MSG("fork");
    CHECK(ct.data == NULL);
    CHECK_CODE(kmscks_generate_data_key(inherited, key, 32, NULL, 0, &dk, &dk_ct),
               KMSCKS_KMS_INTERNAL);
    CHECK_MSG("fork");
    CHECK(dk.data == NULL && dk_ct.data == NULL);
    kmscks_close(inherited);
    CHECK(write(to_parent, "c", 1) == 1);
    CHECK(read(from_parent, &said, 1) == 1 && said == 'p');

    c = open_client(argc, argv);
    CHECK_OK(kmscks_encrypt(c, key, PT, sizeof PT, NULL, 0, &ct));
    len = ct.len;
    CHECK(write(to_parent, &len, sizeof len) == (ssize_t)sizeof len);
    CHECK(write(to_parent, ct.data, ct.len) == (ssize_t)ct.len);
    kmscks_buffer_free(&ct);
    kmscks_close(c);
    _exit(0);
}

/* One round: open, make a key, make a child with `maker`, and see both through. */
static void round_with(int argc, char **argv, const struct maker *maker) {
    kmscks_client *c = open_client(argc, argv);
    char *key = NULL;
    kmscks_buffer pt = {0};
    int to_parent[2], to_child[2], status = 0;
    uint8_t sealed[4096];
    uint64_t len = 0;
    char said = 0;
    pid_t pid;

    printf("fork: a child made by %s\n", maker->name);
    CHECK_OK(kmscks_create_key(c, NULL, "fork.c", &key));
    CHECK(pipe(to_parent) == 0 && pipe(to_child) == 0);
    fflush(stdout);
    pid = maker->make();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        child(argc, argv, c, key, to_parent[1], to_child[0]);
    }
    close(to_parent[1]);
    close(to_child[0]);

    /* The child has closed its copy: the parent closes its own, then the child opens. */
    CHECK(read(to_parent[0], &said, 1) == 1 && said == 'c');
    kmscks_close(c);
    CHECK(write(to_child[1], "p", 1) == 1);
    CHECK(read(to_parent[0], &len, sizeof len) == (ssize_t)sizeof len);
    CHECK(len > 0 && len <= sizeof sealed);
    CHECK(read(to_parent[0], sealed, (size_t)len) == (ssize_t)len);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(to_parent[0]);
    close(to_child[1]);

    c = open_client(argc, argv);
    CHECK_OK(kmscks_decrypt(c, sealed, (size_t)len, NULL, 0, &pt, NULL));
    CHECK(same_bytes(&pt, PT, sizeof PT));
    kmscks_buffer_free(&pt);
    kmscks_string_free(key);
    kmscks_close(c);
}

int main(int argc, char **argv) {
    size_t i;
    for (i = 0; i < sizeof MAKERS / sizeof MAKERS[0]; i++) round_with(argc, argv, &MAKERS[i]);
    return finish("fork");
}
