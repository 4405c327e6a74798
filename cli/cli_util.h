/* Small helpers shared by the subcommands: error lines, number parsing,
 * loading arrays. */
#ifndef SL_CLI_UTIL_H
#define SL_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include "segloss/io.h"

#define EXIT_WORK 1
#define EXIT_USAGE 2

/* Prints "segloss CMD: message" to stderr and returns `code`. */
int cli_fail(const char *cmd, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* "segloss CMD: warning: ..." on stderr, one line (control bytes from file
 * names escaped), as cli_fail writes its errors. */
void cli_warn(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Parses a whole string as a number / an integer; 0 on failure. */
int cli_parse_double(const char *s, double *out);
/* Seconds as mm:ss, or h:mm:ss from an hour on; "--:--" when unknown
 * (negative or not finite): the elapsed time and ETA of progress lines. */
void cli_fmt_time(char *buf, size_t n, double s);
int cli_parse_int(const char *s, long *out);

/* Parses "a,b,c" into up to `max` doubles; returns the count or -1. */
int cli_parse_list(const char *s, double *out, int max);

/* Loads a .npy file into *out; prints the reason and returns 0 on failure. */
int cli_load_npy(const char *cmd, const char *path, sl_array *out);

/* 1 when `arg` is `name` ("--input") or "--input=..." (then *val is set to
 * the part after '='); otherwise 0. For the plain form the caller takes the
 * next argv entry through cli_next_value(). */
int cli_opt(const char *arg, const char *name, const char **val);
/* The value of an option: either inline (--k=v) or argv[++*i]. NULL, after
 * printing a usage error, when missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i, const char *inl);

/* Takes the global option --max-voxels N (anywhere before "--") out of
 * argv and sets the decoded-voxel limit (src/core/voxlimit.h) of every
 * image reader. 0, after printing the reason, on a bad value. */
int cli_take_max_voxels(int *argc, char **argv);

/* Writes two outputs (path[0], path[1]; either may be NULL) both completely
 * or neither: each is written to its temporary file by write(k, f, ctx)
 * (0 on success) before either is committed. On failure one line under
 * cmd's name, both targets unchanged. Returns 1 on success, 0 on failure. */
int cli_write_pair(const char *cmd, const char *const path[2], int (*write)(int k, FILE *f, void *ctx), void *ctx);

#endif
