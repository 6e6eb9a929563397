#include "selfsup/status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static _Thread_local char ss_err_buf[1024];
static _Thread_local ss_status ss_err_code;

const char *ss_errmsg(void) { return ss_err_buf; }

ss_status ss_errcode(void) { return ss_err_code; }

void ss_clearerr(void)
{
    ss_err_buf[0] = '\0';
    ss_err_code = SS_OK;
}

ss_status ss_seterr(ss_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ss_err_buf, sizeof ss_err_buf, fmt, ap);
    va_end(ap);
    ss_err_code = code;
    return code;
}

const char *ss_status_name(ss_status s)
{
    switch (s) {
    case SS_OK: return "ok";
    case SS_ERR_INVALID: return "invalid argument";
    case SS_ERR_IO: return "i/o error";
    case SS_ERR_FORMAT: return "format error";
    case SS_ERR_NOMEM: return "out of memory";
    case SS_ERR_SHAPE: return "shape mismatch";
    case SS_ERR_RANGE: return "out of range";
    case SS_ERR_NAN: return "non-finite value";
    case SS_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

int ss_mul_overflow(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 1;
    *out = a * b;
    return 0;
}

int ss_add_overflow(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return 1;
    *out = a + b;
    return 0;
}
