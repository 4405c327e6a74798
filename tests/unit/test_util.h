/*
 * A minimal test harness for the C unit tests: CHECK(cond, fmt, ...) records
 * a failure with its message and carries on; test_report() prints the count
 * and returns the process exit code (non-zero on any failure), so `return
 * test_report("name");` ends main. Header-only: each test is one file.
 */
#ifndef SL_TEST_UTIL_H
#define SL_TEST_UTIL_H

#include <stdio.h>

static int test_checks_, test_failures_;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        test_checks_++;                                                      \
        if (!(cond)) {                                                       \
            test_failures_++;                                                \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* |a - b| <= tol, reporting both values. */
#define CHECK_NEAR(a, b, tol, what)                                          \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: %.10g vs %.10g (tol %g)", what, (double)(a), \
          (double)(b), (double)(tol))

static inline int test_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}

#endif
