/*
 * The atomic output writer (src/core/outfile.h): regular files replaced
 * atomically with their permission bits kept, devices/FIFOs/`-` streamed and
 * never replaced, symlinks written through, unpredictable temporary names,
 * temporary files removed on every error path, a killed run's leftovers
 * cleaned by the next write.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "outfile.h"
#include "test_util.h"

static char dir[256];

static const char *at(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Whole file as a string ("" when missing). */
static const char *get(const char *path)
{
    static char buf[4096];
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Number of names in the folder containing ".sltmp-" (temporary files). */
static int count_tmp(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".sltmp-") != NULL;
    closedir(d);
    return n;
}

/* The one temporary name in the folder (copied), or "" */
static const char *tmp_name(void)
{
    static char name[512];
    name[0] = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".sltmp-")) snprintf(name, sizeof name, "%s", e->d_name);
    closedir(d);
    return name;
}

static int one_line(const char *m) { return m[0] && !strchr(m, '\n'); }

static void test_regular(void)
{
    char msg[512] = "";
    umask(022);
    /* a new file: 0666 minus the umask */
    sl_status st = sl_out_write_file(at("new.txt"), "hello", 5, msg, sizeof msg);
    struct stat sb;
    CHECK(st == SL_OK && stat(at("new.txt"), &sb) == 0 && (sb.st_mode & 0777) == 0644,
          "new file: status %d, mode %o (%s)", st, (unsigned)(sb.st_mode & 0777), msg);
    CHECK(strcmp(get(at("new.txt")), "hello") == 0, "new file content '%s'", get(at("new.txt")));

    /* an existing file keeps its bits; the inode is new (rename, not rewrite) */
    put(at("old.txt"), "old contents");
    chmod(at("old.txt"), 0640);
    struct stat before;
    stat(at("old.txt"), &before);
    st = sl_out_write_file(at("old.txt"), "new", 3, msg, sizeof msg);
    stat(at("old.txt"), &sb);
    CHECK(st == SL_OK && (sb.st_mode & 07777) == 0640, "kept mode: %o", (unsigned)(sb.st_mode & 07777));
    CHECK(sb.st_ino != before.st_ino, "the file was replaced by rename (inode %lu -> %lu)",
          (unsigned long)before.st_ino, (unsigned long)sb.st_ino);
    CHECK(strcmp(get(at("old.txt")), "new") == 0, "replaced content '%s'", get(at("old.txt")));
    CHECK(count_tmp() == 0, "no temporary file left: %d", count_tmp());

    /* a streaming write through the FILE*, then the fd */
    sl_out *o = NULL;
    st = sl_out_open(at("stream.txt"), &o, msg, sizeof msg);
    CHECK(st == SL_OK && o && !sl_out_is_stream(o), "open: %s", msg);
    if (o) {
        fputs("abc", sl_out_file(o));
        /* nothing visible under the target's name until commit */
        CHECK(access(at("stream.txt"), F_OK) != 0, "the target appears only at commit");
        CHECK(count_tmp() == 1, "one temporary file while writing: %d", count_tmp());
        st = sl_out_commit(o, msg, sizeof msg);
        CHECK(st == SL_OK && strcmp(get(at("stream.txt")), "abc") == 0, "commit: %s", msg);
    }
}

/* The host tag the writer puts in temporary names, written out here from
 * its definition (FNV-1a over the host name, 8 hex digits). */
static void host_tag(char out[9])
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    unsigned h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)host; *c; c++) h = (h ^ *c) * 16777619u;
    snprintf(out, 9, "%08x", h);
}

static void test_temp_names(void)
{
    char msg[512] = "";
    put(at("t.npy"), "keep me");
    sl_out *a = NULL, *b = NULL;
    sl_out_open(at("t.npy"), &a, msg, sizeof msg);
    char first[512];
    snprintf(first, sizeof first, "%s", tmp_name());
    /* ".t.npy.sltmp-<pid>-<host>-XXXXXX" */
    char want[64], tag[9];
    host_tag(tag);
    snprintf(want, sizeof want, ".t.npy.sltmp-%ld-%s-", (long)getpid(), tag);
    CHECK(strncmp(first, want, strlen(want)) == 0 && strlen(first) == strlen(want) + 6,
          "temporary name '%s' (want '%sXXXXXX')", first, want);
    struct stat sb;
    CHECK(lstat(at(first), &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0777) == 0644,
          "temporary file is a regular file with the target's bits (%o)", (unsigned)(sb.st_mode & 0777));
    sl_out_abort(a);
    sl_out_open(at("t.npy"), &b, msg, sizeof msg);
    CHECK(strcmp(first, tmp_name()) != 0, "two opens give different names: %s", first);
    fputs("partial", sl_out_file(b));
    sl_out_abort(b);
    CHECK(count_tmp() == 0 && strcmp(get(at("t.npy")), "keep me") == 0,
          "abort removes the temporary file (%d left) and keeps the target ('%s')", count_tmp(),
          get(at("t.npy")));
}

static void test_errors(void)
{
    char msg[512] = "";
    /* a missing folder */
    sl_status st = sl_out_write_file(at("nope/x.csv"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_EIO && strstr(msg, "nope/x.csv") && strstr(msg, "No such file") && one_line(msg),
          "missing folder: '%s'", msg);
    /* a folder as the target */
    mkdir(at("sub"), 0755);
    st = sl_out_write_file(at("sub"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_EIO && strstr(msg, "sub") && strstr(msg, "directory") && one_line(msg), "folder: '%s'", msg);
    struct stat sb;
    CHECK(stat(at("sub"), &sb) == 0 && S_ISDIR(sb.st_mode), "the folder is still a folder");
    /* a socket-like other type is refused; use a path ending in '/' too */
    st = sl_out_write_file(at("sub/"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_EIO && one_line(msg), "path with trailing slash refused: '%s'", msg);

    /* a write that fails half-way (file size limit): target unchanged, no temp */
    put(at("big.bin"), "original");
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    static char big[1 << 16];
    memset(big, 'x', sizeof big);
    st = sl_out_write_file(at("big.bin"), big, sizeof big, msg, sizeof msg);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(st == SL_EIO && strstr(msg, "big.bin") && strstr(msg, "too large") && one_line(msg),
          "failed write: '%s'", msg);
    CHECK(strcmp(get(at("big.bin")), "original") == 0 && count_tmp() == 0,
          "failed write leaves the target ('%s') and no temporary file (%d)", get(at("big.bin")), count_tmp());
    /* the same through open/commit: the error shows at commit */
    sl_out *o = NULL;
    setrlimit(RLIMIT_FSIZE, &lim);
    sl_out_open(at("big.bin"), &o, msg, sizeof msg);
    fwrite(big, 1, sizeof big, sl_out_file(o));
    st = sl_out_commit(o, msg, sizeof msg);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(st == SL_EIO && strstr(msg, "big.bin") && one_line(msg), "failed commit: '%s'", msg);
    CHECK(strcmp(get(at("big.bin")), "original") == 0 && count_tmp() == 0,
          "failed commit leaves the target and no temporary file (%d)", count_tmp());

    /* a read-only folder (not as root: root may write anyway) */
    if (geteuid() != 0) {
        mkdir(at("ro"), 0755);
        put(at("ro/f"), "old");
        chmod(at("ro"), 0555);
        st = sl_out_write_file(at("ro/f"), "new", 3, msg, sizeof msg);
        CHECK(st == SL_EIO && strstr(msg, "Permission denied") && strcmp(get(at("ro/f")), "old") == 0,
              "read-only folder: '%s'", msg);
        chmod(at("ro"), 0755);
    }
}

static void test_devices(void)
{
    char msg[512] = "";
    struct stat sb;
    /* /dev/null is streamed to, never replaced (as root a rename would
     * succeed and break /dev/null for the whole machine) */
    sl_status st = sl_out_write_file("/dev/null", "x", 1, msg, sizeof msg);
    CHECK(st == SL_OK && stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode), "/dev/null: %s", msg);
    /* /dev/full: the device's error is reported */
    if (stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode)) {
        st = sl_out_write_file("/dev/full", "x", 1, msg, sizeof msg);
        CHECK(st == SL_EIO && strstr(msg, "/dev/full") && strstr(msg, "No space") && one_line(msg),
              "/dev/full: '%s'", msg);
    }
    /* a FIFO with a reader */
    mkfifo(at("fifo"), 0644);
    int rd = open(at("fifo"), O_RDONLY | O_NONBLOCK);
    st = sl_out_write_file(at("fifo"), "through the pipe", 16, msg, sizeof msg);
    char buf[64] = "";
    ssize_t n = read(rd, buf, sizeof buf - 1);
    close(rd);
    CHECK(st == SL_OK && n == 16 && memcmp(buf, "through the pipe", 16) == 0, "fifo: %s, read %zd", msg, n);
    CHECK(lstat(at("fifo"), &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO is still a FIFO");
    CHECK(count_tmp() == 0, "no temporary file for a FIFO");
}

static void test_symlinks(void)
{
    char msg[512] = "";
    struct stat sb;
    mkdir(at("real"), 0755);
    put(at("real/target.csv"), "old");
    chmod(at("real/target.csv"), 0600);
    symlink("real/target.csv", at("link.csv")); /* relative link */
    sl_status st = sl_out_write_file(at("link.csv"), "through", 7, msg, sizeof msg);
    CHECK(st == SL_OK && strcmp(get(at("real/target.csv")), "through") == 0, "symlink target written: %s", msg);
    CHECK(lstat(at("link.csv"), &sb) == 0 && S_ISLNK(sb.st_mode), "the link stays a link");
    CHECK(stat(at("real/target.csv"), &sb) == 0 && (sb.st_mode & 07777) == 0600, "target kept its bits (%o)",
          (unsigned)(sb.st_mode & 07777));
    /* a chain of two links, the second absolute */
    symlink(at("real/target.csv"), at("real/abs"));
    symlink("real/abs", at("chain"));
    st = sl_out_write_file(at("chain"), "chained", 7, msg, sizeof msg);
    CHECK(st == SL_OK && strcmp(get(at("real/target.csv")), "chained") == 0, "link chain: %s", msg);
    /* a dangling link creates its target */
    symlink("real/created.txt", at("dangling"));
    st = sl_out_write_file(at("dangling"), "made", 4, msg, sizeof msg);
    CHECK(st == SL_OK && strcmp(get(at("real/created.txt")), "made") == 0 &&
              lstat(at("dangling"), &sb) == 0 && S_ISLNK(sb.st_mode),
          "dangling link: %s", msg);
    /* a link to /dev/null streams */
    symlink("/dev/null", at("null"));
    st = sl_out_write_file(at("null"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_OK && stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode) && lstat(at("null"), &sb) == 0 &&
              S_ISLNK(sb.st_mode),
          "link to /dev/null: %s", msg);
    /* a loop is refused with one line */
    symlink("loop2", at("loop1"));
    symlink("loop1", at("loop2"));
    st = sl_out_write_file(at("loop1"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_EIO && strstr(msg, "loop1") && one_line(msg), "link loop: '%s'", msg);
}

static void test_stdout(void)
{
    char msg[512] = "";
    /* stdout redirected to a file: "-" writes to it through the
     * descriptor; the file is not replaced */
    fflush(stdout);
    int saved = dup(1);
    int fd = open(at("captured"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    struct stat before, after;
    stat(at("captured"), &before);
    sl_status a = sl_out_write_file("-", "dash;", 5, msg, sizeof msg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    stat(at("captured"), &after);
    CHECK(a == SL_OK && strcmp(get(at("captured")), "dash;") == 0, "'-' wrote '%s' (%s)", get(at("captured")), msg);
    CHECK(before.st_ino == after.st_ino, "the redirected file was not replaced");

    /* /dev/stdout through a pipe (its /proc link reads "pipe:[N]"); a
     * private link with /dev/stdout's target stands in for it, so a broken
     * writer cannot replace the machine's /dev/stdout */
    int p[2];
    symlink("/proc/self/fd/1", at("stdout"));
    if (pipe(p) == 0) {
        fflush(stdout);
        saved = dup(1);
        dup2(p[1], 1);
        close(p[1]);
        sl_status b = sl_out_write_file(at("stdout"), "piped", 5, msg, sizeof msg);
        dup2(saved, 1);
        close(saved);
        char buf[16] = "";
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        struct stat sb;
        CHECK(b == SL_OK && n == 5 && memcmp(buf, "piped", 5) == 0, "/dev/stdout to a pipe: %s", msg);
        CHECK(lstat(at("stdout"), &sb) == 0 && S_ISLNK(sb.st_mode), "the /dev/stdout link stays a link");
    }
}

static void test_leftovers(void)
{
    char msg[512] = "";
    /* a pid that surely does not run: a child that has exited and been reaped */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char dead[128], alive[128], other[128], dead_here[128], dead_away[128], tag[9];
    host_tag(tag);
    /* the same dead pid written by another machine into a shared folder */
    const char *away = strcmp(tag, "00000000") == 0 ? "00000001" : "00000000";
    snprintf(dead_here, sizeof dead_here, ".h.bin.sltmp-%ld-%s-Ab3xYz", (long)child, tag);
    snprintf(dead_away, sizeof dead_away, ".a.bin.sltmp-%ld-%s-Ab3xYz", (long)child, away);
    put(at(dead_here), "junk");
    put(at(dead_away), "another host's");
    snprintf(dead, sizeof dead, ".m.bin.sltmp-%ld-Ab3xYz", (long)child);
    snprintf(alive, sizeof alive, ".m.bin.sltmp-%ld-Qw9erT", (long)getppid());
    snprintf(other, sizeof other, ".notours.sltmp-%ld-short", (long)child);
    put(at(dead), "junk");
    put(at(alive), "busy");
    put(at(other), "keep");
    sl_status st = sl_out_write_file(at("unrelated.txt"), "x", 1, msg, sizeof msg);
    CHECK(st == SL_OK && access(at(dead), F_OK) != 0, "a killed run's temporary file is removed");
    CHECK(access(at(alive), F_OK) == 0, "a running process's temporary file is kept");
    CHECK(access(at(other), F_OK) == 0, "a name that is not ours is kept");
    CHECK(access(at(dead_here), F_OK) != 0, "a killed run's file with this host's tag is removed");
    CHECK(access(at(dead_away), F_OK) == 0,
          "another host's file is kept although its pid does not run here (shared folders)");
    unlink(at(dead_away));
    unlink(at(alive));
    unlink(at(other));
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sl_outfile_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_regular();
    test_temp_names();
    test_errors();
    test_devices();
    test_symlinks();
    test_stdout();
    test_leftovers();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_report("test_outfile");
}
