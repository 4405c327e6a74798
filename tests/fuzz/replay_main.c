/*
 * Replays inputs through a libFuzzer target without libFuzzer:
 *
 *     fuzz_<name>_replay FILE_OR_DIR...
 *
 * Every regular file given, or found under a directory given (recursively,
 * in sorted order so that runs are reproducible), is read whole and passed
 * to LLVMFuzzerTestOneInput. tests/run.sh runs this on each corpus folder in
 * every test run, so each bad input ever found stays a regression test.
 *
 * Exit status: 0 when every input ran; 1 when an input could not be read or
 * nothing was found (an empty corpus is a broken test, not a pass). A crash
 * or abort() in the target kills the process with its signal (or the
 * sanitizer's error exit), which is a non-zero status too; the handler
 * below first names the input that did it.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Present when built with a sanitizer: called before it exits on an error. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* The input being run, for the crash handler (set before each call). */
static char current[4096];

static void on_fatal(int sig)
{
    static const char pre[] = "\nreplay: crashed on input: ";
    ssize_t r = write(2, pre, sizeof pre - 1);
    r = write(2, current, strlen(current));
    r = write(2, "\n", 1);
    (void)r;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_sanitizer_death(void)
{
    fprintf(stderr, "\nreplay: sanitizer error on input: %s\n", current);
}

static int run_file(const char *path, long *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 0;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 0;
    }
    snprintf(current, sizeof current, "%s", path);
    /* Exactly `len` bytes, copied so that ASan sees reads past the end. */
    unsigned char *exact = malloc(len ? len : 1);
    if (!exact) { free(buf); return 0; }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*count)++;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, long *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file or directory: %s\n", path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? run_file(path, count) : 1;
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s\n", path);
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) { ok = 0; break; }
            names = nn;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) { ok = 0; break; }
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (ok && !run_path(names[i], count)) ok = 0;
        free(names[i]);
    }
    free(names);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    /* Name the failing input. Signals that a sanitizer already handles
     * keep its handler (and its stack trace); its death callback names the
     * input instead. */
    static const int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) signal(sigs[i], on_fatal);
    }
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_sanitizer_death);
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long count = 0;
    int ok = 1;
    for (int i = 1; i < argc; i++)
        if (!run_path(argv[i], &count)) ok = 0;
    printf("replayed %ld inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return ok ? 0 : 1;
}
