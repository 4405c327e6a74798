/*
 * The atomic output writer (rules in outfile.h). Kept free of any static
 * state, so threads may write different files at once.
 */
#define _GNU_SOURCE /* getrandom */
#include "outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

enum { OUT_ATOMIC, OUT_STREAM, OUT_STDOUT };

struct sl_out {
    FILE *f;
    int fd;
    int mode;
    char *path;  /* as the caller gave it: every message names this */
    char *final; /* where the bytes end up (symlinks resolved) */
    char *dir;   /* final's folder (atomic) */
    char *tmp;   /* temporary file (atomic), NULL once renamed or removed */
};

#define TMP_MARK ".sltmp-"
#define MAX_HOPS 40

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Folder part of a path ("." when there is none, "/" for "/x"). */
static char *dir_of(const char *p)
{
    const char *slash = strrchr(p, '/');
    if (!slash) return dup_str(".");
    if (slash == p) return dup_str("/");
    size_t n = (size_t)(slash - p);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

static const char *base_of(const char *p)
{
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

static void free_out(sl_out *o)
{
    if (!o) return;
    free(o->path);
    free(o->final);
    free(o->dir);
    free(o->tmp);
    free(o);
}

/*
 * Follows `path` link by link (lstat/readlink, so a dangling link resolves
 * to the file it would create) until a non-link or a missing name. *proc is
 * set when the chain enters /proc: /dev/stdout and /dev/fd/N end in magic
 * links (/proc/self/fd/1 -> "pipe:[123]") whose text is no usable path, so
 * those are opened as they are and streamed to, like a shell's `>`.
 */
static char *resolve_links(const char *path, int *proc, int *err)
{
    char *p = dup_str(path);
    *proc = 0;
    for (int hop = 0; p; hop++) {
        if (strncmp(p, "/proc/", 6) == 0) {
            *proc = 1;
            return p;
        }
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            if (errno == ENOENT) return p;
            *err = errno;
            free(p);
            return NULL;
        }
        if (!S_ISLNK(sb.st_mode)) return p;
        if (hop == MAX_HOPS) {
            *err = ELOOP;
            free(p);
            return NULL;
        }
        char link[4096];
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0) {
            *err = errno;
            free(p);
            return NULL;
        }
        link[n] = 0;
        char *next;
        if (link[0] == '/') {
            next = dup_str(link);
        } else { /* relative to the folder holding the link */
            char *d = dir_of(p);
            size_t len = d ? strlen(d) + 1 + strlen(link) + 1 : 0;
            next = d ? malloc(len) : NULL;
            if (next) snprintf(next, len, "%s/%s", d, link);
            free(d);
        }
        free(p);
        p = next;
    }
    *err = ENOMEM;
    return NULL;
}

/* 6 characters from [A-Za-z0-9]: the kernel's random bytes, or the clock
 * and the stack's address when getrandom is unavailable. O_EXCL is what
 * makes the creation safe; the randomness only makes the name unguessable. */
static void random_suffix(char out[7])
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[6];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&ts ^
                     ((uint64_t)ts.tv_sec << 20);
        for (int i = 0; i < 6; i++) {
            x ^= x >> 29;
            x *= 0xBF58476D1CE4E5B9ull;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    for (int i = 0; i < 6; i++) out[i] = set[r[i] % 62];
    out[6] = 0;
}

/* This machine's tag in temporary names: 8 hex digits of an FNV-1a hash of
 * the host name. A pid means something only on the machine that wrote it:
 * on a folder shared by several machines (a cluster's file system) a file
 * from another host must never be taken for a dead process's leftover. */
static void host_tag(char out[9])
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)host; *c; c++) h = (h ^ *c) * 16777619u;
    snprintf(out, 9, "%08x", (unsigned)h);
}

static int is_alnum_run(const char *q, int n)
{
    for (int i = 0; i < n; i++, q++)
        if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
            return 0;
    return 1;
}

/* Is `name` one of our temporary names written on this host
 * (".ANY.sltmp-PID-HOSTTAG-XXXXXX", or the older ".ANY.sltmp-PID-XXXXXX",
 * which carried no host and was only ever written locally)? Returns the
 * pid, or 0 (not ours, or another host's). */
static long leftover_pid(const char *name, const char *tag)
{
    if (name[0] != '.') return 0;
    const char *m = NULL;
    for (const char *s = strstr(name, TMP_MARK); s; s = strstr(s + 1, TMP_MARK)) m = s;
    if (!m) return 0;
    const char *q = m + strlen(TMP_MARK);
    long pid = 0;
    int digits = 0;
    while (*q >= '0' && *q <= '9' && digits < 10) {
        pid = pid * 10 + (*q++ - '0');
        digits++;
    }
    if (digits == 0 || *q++ != '-') return 0;
    if (strlen(q) == 6) return is_alnum_run(q, 6) ? pid : 0;
    if (strlen(q) != 15 || q[8] != '-' || !is_alnum_run(q + 9, 6)) return 0;
    return strncmp(q, tag, 8) == 0 ? pid : 0;
}

/* Removes the temporary files of processes that no longer run (a killed
 * run's leftovers). A pid that exists, or that we may not signal, is alive:
 * its file is kept. Best effort: a folder we cannot list is left alone. */
static void clean_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    const long self = (long)getpid();
    char tag[9];
    host_tag(tag);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = leftover_pid(e->d_name, tag);
        if (pid <= 0 || pid == self || pid > INT32_MAX) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* The one-line error; frees the handle (after the message: `path` may be
 * the handle's own copy). */
static sl_status fail(sl_out *o, int e, const char *path, char *msg, size_t msglen)
{
    sl_status st = e == ENOMEM ? sl_errf(msg, msglen, SL_ENOMEM, "cannot write %s: out of memory", path)
                               : sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
    free_out(o);
    return st;
}

static sl_status open_stream(sl_out *o, int trunc, char *msg, size_t msglen)
{
    o->mode = OUT_STREAM;
    o->fd = open(o->final, O_WRONLY | O_NOCTTY | O_CLOEXEC | (trunc ? O_TRUNC : 0));
    if (o->fd < 0) return fail(o, errno, o->path, msg, msglen);
    o->f = fdopen(o->fd, "wb");
    if (!o->f) {
        int e = errno;
        close(o->fd);
        return fail(o, e, o->path, msg, msglen);
    }
    return SL_OK;
}

static sl_status open_atomic(sl_out *o, const struct stat *old, char *msg, size_t msglen)
{
    o->mode = OUT_ATOMIC;
    const char *base = base_of(o->final);
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return fail(o, EISDIR, o->path, msg, msglen);
    o->dir = dir_of(o->final);
    if (!o->dir) return fail(o, ENOMEM, o->path, msg, msglen);
    clean_leftovers(o->dir);

    /* ".NAME.sltmp-PID-HOSTTAG-XXXXXX", NAME cut to keep the whole within NAME_MAX */
    char tag[9];
    host_tag(tag);
    size_t blen = strlen(base);
    if (blen > 200) blen = 200;
    size_t cap = strlen(o->dir) + blen + 64;
    o->tmp = malloc(cap);
    if (!o->tmp) return fail(o, ENOMEM, o->path, msg, msglen);
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        char suf[7];
        random_suffix(suf);
        snprintf(o->tmp, cap, "%s/.%.*s" TMP_MARK "%ld-%s-%s", o->dir, (int)blen, base, (long)getpid(), tag,
                 suf);
        /* 0666 so the umask decides a new file's bits, as for any file */
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        o->tmp = NULL;
        return fail(o, e, o->path, msg, msglen);
    }
    if (old) {
        /* keep the replaced file's owner (allowed for root or its owner)
         * and then its permission bits */
        if (old->st_uid != geteuid() || old->st_gid != getegid())
            (void)!fchown(fd, old->st_uid, old->st_gid);
        (void)fchmod(fd, old->st_mode & 07777);
    }
    o->fd = fd;
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        return fail(o, e, o->path, msg, msglen);
    }
    return SL_OK;
}

sl_status sl_out_open(const char *path, sl_out **out, char *msg, size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "sl_out_open: NULL argument");
    *out = NULL;
    if (!path || !path[0]) return sl_errf(msg, msglen, SL_EINVAL, "cannot write an output with an empty name");
    sl_out *o = calloc(1, sizeof *o);
    if (!o || !(o->path = dup_str(path))) {
        free(o);
        return sl_errf(msg, msglen, SL_ENOMEM, "cannot write %s: out of memory", path);
    }
    o->fd = -1;
    sl_status st;
    if (strcmp(path, "-") == 0) {
        o->mode = OUT_STDOUT;
        o->f = stdout;
        o->fd = STDOUT_FILENO;
        *out = o;
        return SL_OK;
    }
    int proc = 0, err = 0;
    o->final = resolve_links(path, &proc, &err);
    if (!o->final) return fail(o, err, path, msg, msglen);
    struct stat sb;
    if (proc) {
        /* /dev/stdout and friends: whatever the descriptor is, write it */
        if (stat(o->final, &sb) != 0) return fail(o, errno, path, msg, msglen);
        if (!S_ISREG(sb.st_mode) && !S_ISCHR(sb.st_mode) && !S_ISFIFO(sb.st_mode)) {
            free_out(o);
            return sl_errf(msg, msglen, SL_EIO, "cannot write %s: not a file, character device or FIFO", path);
        }
        st = open_stream(o, S_ISREG(sb.st_mode), msg, msglen);
    } else if (lstat(o->final, &sb) != 0) {
        if (errno != ENOENT) return fail(o, errno, path, msg, msglen);
        st = open_atomic(o, NULL, msg, msglen);
    } else if (S_ISREG(sb.st_mode)) {
        st = open_atomic(o, &sb, msg, msglen);
    } else if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)) {
        st = open_stream(o, 0, msg, msglen);
    } else if (S_ISDIR(sb.st_mode)) {
        return fail(o, EISDIR, path, msg, msglen);
    } else {
        free_out(o);
        return sl_errf(msg, msglen, SL_EIO,
                       "cannot write %s: not a regular file, character device or FIFO", path);
    }
    if (st == SL_OK) *out = o;
    return st;
}

FILE *sl_out_file(const sl_out *o) { return o ? o->f : NULL; }
int sl_out_fd(const sl_out *o) { return o ? o->fd : -1; }
int sl_out_is_stream(const sl_out *o) { return o && o->mode != OUT_ATOMIC; }

/* fsync of the folder makes the rename itself durable. Best effort: some
 * file systems refuse fsync on a folder, and the file is in place by now. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

sl_status sl_out_commit(sl_out *o, char *msg, size_t msglen)
{
    if (!o) return sl_errf(msg, msglen, SL_EINVAL, "sl_out_commit: NULL handle");
    /* errno of a failed fwrite is usually still set; EIO when it is not */
    int e = ferror(o->f) ? (errno ? errno : EIO) : 0;
    if (fflush(o->f) != 0 && !e) e = errno ? errno : EIO;
    if (o->mode == OUT_STDOUT) {
        if (e) return fail(o, e, "standard output", msg, msglen);
        free_out(o);
        return SL_OK;
    }
    if (o->mode == OUT_ATOMIC && !e && fsync(o->fd) != 0) e = errno;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (o->mode == OUT_ATOMIC) {
        if (!e && rename(o->tmp, o->final) != 0) e = errno;
        if (e) {
            unlink(o->tmp);
        } else {
            sync_dir(o->dir);
        }
    }
    if (e) return fail(o, e, o->path, msg, msglen);
    free_out(o);
    return SL_OK;
}

void sl_out_abort(sl_out *o)
{
    if (!o) return;
    if (o->mode == OUT_STDOUT) {
        fflush(stdout);
    } else if (o->f) {
        fclose(o->f);
    }
    if (o->mode == OUT_ATOMIC && o->tmp) unlink(o->tmp);
    free_out(o);
}

sl_status sl_out_write_file(const char *path, const void *data, size_t len, char *msg, size_t msglen)
{
    sl_out *o;
    sl_status st = sl_out_open(path, &o, msg, msglen);
    if (st != SL_OK) return st;
    errno = 0;
    if (len > 0 && fwrite(data, 1, len, o->f) != len) {
        int e = errno ? errno : EIO;
        sl_out_abort(o);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s",
                       strcmp(path, "-") == 0 ? "standard output" : path, strerror(e));
    }
    return sl_out_commit(o, msg, msglen);
}
