#include <stdio.h>
#include <string.h>

#include "selfsup/tensor.h"

void ss_tensor_set_shape(ss_tensor *t, int ndim, const int64_t *shape)
{
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = n;
        n *= shape[i];
    }
    for (int i = ndim; i < SS_MAX_DIMS; i++) {
        t->shape[i] = 1;
        t->stride[i] = 0;
    }
    t->numel = n;
}

int ss_tensor_is_contiguous(const ss_tensor *t)
{
    int64_t n = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != n) return 0;
        n *= t->shape[i];
    }
    return 1;
}

int ss_shape_equal(const ss_tensor *a, const ss_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *ss_shape_str(const ss_tensor *t, char *buf, size_t n)
{
    size_t o = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}
