/*
 * Advisory folder locks: one process at a time in a run or benchmark
 * folder. Two `segloss train --out SAME` at once used to both "succeed"
 * with config.json from one run and model.bin from the other.
 *
 * The lock is flock(2) on DIR/.segloss.lock, held for as long as the
 * descriptor is open: the kernel drops it when the process ends however it
 * ends (kill -9 included), so there is never a stale lock to clean up. The
 * file holds the holder's pid, for the message the next process prints.
 * The file itself stays (removing it would let a third process lock a new
 * file while the second still holds the old one).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "internal.h"

sl_status sl_dir_lock(const char *dir, int *fd_out, char *msg, size_t msglen)
{
    *fd_out = -1;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, SL_LOCK_FILE) >= (int)sizeof path)
        return sl_errf(msg, msglen, SL_EINVAL, "%s: folder name too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return sl_errf(msg, msglen, SL_EIO, "cannot open the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strspn(pid, "0123456789")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            return sl_errf(msg, msglen, SL_EBADSTATE, "%s is in use by another segloss process (pid %s); wait for it or choose another folder",
                           dir, pid[0] ? pid : "unknown");
        return sl_errf(msg, msglen, SL_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    /* the pid is only for messages: a failed write does not matter */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) != len) {
    }
    *fd_out = fd;
    return SL_OK;
}

void sl_dir_unlock(int fd, const char *dir_to_clean)
{
    if (fd < 0) return;
    if (dir_to_clean) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir_to_clean, SL_LOCK_FILE) < (int)sizeof path) unlink(path);
    }
    close(fd); /* releases the flock */
}
