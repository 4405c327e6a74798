/*
 * JSON files read and written whole (private, not installed): the run,
 * search and post-processing files, config.json. Writes go through
 * outfile.h, so a file is replaced atomically or left as it was.
 */
#ifndef SL_JSONFILE_H
#define SL_JSONFILE_H

#include <cJSON.h>
#include <stddef.h>
#include "segloss/core.h"

/* Parses the whole file at path into *root (the caller's, cJSON_Delete).
 * A read failure is sl_file_read's (SL_EIO, one line naming the path); a
 * file that is not JSON, or holds a NUL byte, is SL_EFORMAT "PATH is not
 * valid JSON". *root is NULL after an error. */
sl_status sl_json_file_read(const char *path, cJSON **root, char *msg, size_t msglen);

/* Prints root (formatted; NULL counts as out of memory) and replaces the
 * file at path with it, ended by a newline when newline is 1. root stays
 * the caller's. SL_ENOMEM "WHAT: out of memory", or outfile's codes. */
sl_status sl_json_file_write(const char *path, const cJSON *root, int newline, const char *what, char *msg, size_t msglen);

#endif
