/*
 * Small file helpers every module shares (private, not installed): input
 * files opened without blocking on a FIFO, whole-file reads, paths and
 * folders. Outputs go through outfile.h.
 */
#ifndef SL_FILEIO_H
#define SL_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include "segloss/core.h"

/* fopen(path, "rb") that never blocks: the open is non-blocking (a FIFO
 * without a writer would otherwise hang the process forever), then the
 * descriptor is made blocking again. Callers still check with fstat that
 * the file is a regular one, and refuse anything else with one line.
 * NULL with errno set on failure. */
FILE *sl_fopen_read(const char *path);

/* Reads a whole regular file (malloc'ed, NUL-terminated beyond len).
 * SL_EIO with one line naming the path otherwise. */
sl_status sl_file_read(const char *path, unsigned char **data, size_t *len, char *msg, size_t msglen);

/* 1 when path exists (any kind). */
int sl_file_exists(const char *path);

/* dir/name into buf; SL_EINVAL when it does not fit. */
sl_status sl_path_join(char *buf, size_t buflen, const char *dir, const char *name);

/* Creates dir and missing parents (mode 0777 & umask) and checks that it is
 * a writable folder. SL_EIO with the reason. */
sl_status sl_mkdirs(const char *dir, char *msg, size_t msglen);

#endif
