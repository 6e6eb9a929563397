/* Minimal test harness: CHECK macros count failures; main returns nonzero
 * when any check failed. Each test file prints "N passed, N failed". */
#ifndef SS_TESTUTIL_H
#define SS_TESTUTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_pass, tu_fail;

#define CHECK(cond) do { if (cond) tu_pass++; else { tu_fail++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (cond) tu_pass++; else { tu_fail++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b); \
    if (fabs(_a - _b) <= (tol)) tu_pass++; else { tu_fail++; \
    fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%.9g %s=%.9g tol=%g\n", \
            __FILE__, __LINE__, #a, _a, #b, _b, (double)(tol)); } } while (0)
#define CHECK_OK(expr) do { ss_status _s = (expr); if (_s == SS_OK) tu_pass++; else { tu_fail++; \
    fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, ss_errmsg()); } } while (0)

#define TEST_MAIN_END() do { printf("%d passed, %d failed\n", tu_pass, tu_fail); \
    return tu_fail ? 1 : 0; } while (0)

/* Where committed test vectors live (set by ctest; fallback relative). */
static inline const char *tu_data_dir(void)
{
    const char *d = getenv("SS_TEST_DATA");
    return d ? d : "tests/data";
}
#endif
