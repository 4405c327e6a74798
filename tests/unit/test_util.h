/*
 * The test harness of every C unit test: CHECK(cond, fmt, ...) records a
 * failure with its message and carries on; EXPECT(cond) is CHECK with the
 * condition's text as the message; TEST_RUN(fn) calls a test function and
 * names it in the failure messages of its checks; test_report() prints the
 * count and returns the process exit code (non-zero on any failure), so
 * `return test_report("name");` ends main. Header-only: each test is one
 * file. Failures go to stderr; tests/run.sh shows them.
 */
#ifndef SL_TEST_UTIL_H
#define SL_TEST_UTIL_H

#include <stdio.h>

static int test_checks_, test_failures_;
static const char *test_name_; /* the function TEST_RUN is running, or NULL */

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        test_checks_++;                                                      \
        if (!(cond)) {                                                       \
            test_failures_++;                                                \
            fprintf(stderr, "FAILED %s:%d%s%s: ", __FILE__, __LINE__,        \
                    test_name_ ? " in " : "", test_name_ ? test_name_ : ""); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

#define EXPECT(cond) CHECK(cond, "%s", #cond)

#define TEST_RUN(fn) (test_name_ = #fn, fn(), test_name_ = NULL)

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
