/*
 * The one way segloss writes an output file. Private (not installed).
 *
 * What a path names decides how it is written:
 *
 *   - a regular file, or a path that does not exist yet: atomically. The
 *     bytes go to a fresh temporary file in the target's folder, created
 *     exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, random suffix, never a
 *     predictable name, never opened through a symlink) and named
 *     `.NAME.sltmp-<pid>-<host>-XXXXXX` (<host>: 8 hex digits of a hash of
 *     the host name); it takes the existing target's permission
 *     bits (and owner, where the process may set it) or, for a new file, the
 *     usual 0666 minus the umask. Commit fflushes, fsyncs, renames it over
 *     the target and fsyncs the folder, so a reader sees the old file or the
 *     new one, never a mix, and a crash leaves the old file intact. Every
 *     error path removes the temporary file.
 *   - `-`: streamed to standard output (not closed).
 *   - a character device (/dev/null, /dev/stdout, a tty) or a FIFO: opened
 *     and streamed to directly; it is never replaced by a regular file.
 *     Opening a FIFO blocks until a reader opens it, as a shell's `>` does.
 *   - a symlink: the file it points to is written (resolved link by link,
 *     a dangling link included, then handled by the rules above in the
 *     target's folder); the link itself stays.
 *   - anything else (a folder, a socket, a block device): refused.
 *
 * Leftovers: a temporary file written on this host whose pid is no longer
 * running (a killed run) is removed by the next atomic write into the same
 * folder. Files another host wrote into a shared folder are left alone: a
 * pid says nothing about another machine's processes.
 *
 * Errors: one line naming the path and the system's reason
 * ("cannot write PATH: REASON"), status SL_EIO (SL_ENOMEM for memory).
 */
#ifndef SL_OUTFILE_H
#define SL_OUTFILE_H

#include <stddef.h>
#include <stdio.h>
#include "segloss/core.h"

typedef struct sl_out sl_out;

/* Opens `path` for writing per the rules above. On success *out is the
 * handle; on failure *out is NULL and nothing was created. */
sl_status sl_out_open(const char *path, sl_out **out, char *msg, size_t msglen);

/* The stream to write to. Use either the FILE* or the descriptor, not both.
 * A library that closes the descriptor it is given (zlib's gzdopen) must be
 * handed dup(sl_out_fd(o)) and be closed before sl_out_commit. */
FILE *sl_out_file(const sl_out *o);
int sl_out_fd(const sl_out *o);

/* 1 when the output is streamed (stdout, device, FIFO): written bytes are
 * visible at once and an abort cannot take them back. */
int sl_out_is_stream(const sl_out *o);

/* Finishes the write (atomic: flush, fsync, rename, fsync the folder;
 * stream: flush and close) and frees the handle, also on failure (then the
 * temporary file is removed and the target is unchanged). A write error
 * seen earlier on the FILE* makes the commit fail. */
sl_status sl_out_commit(sl_out *o, char *msg, size_t msglen);

/* Gives up: removes the temporary file (the target is unchanged), closes a
 * stream, frees the handle. NULL is a no-op. */
void sl_out_abort(sl_out *o);

/* open + one write of `len` bytes + commit. */
sl_status sl_out_write_file(const char *path, const void *data, size_t len, char *msg, size_t msglen);

#endif
