/* Step benchmarks: placeholder until the methods land. */
#include "selfsup/runtime.h"

ss_status ss_step_bench(const char *name, int steps, ss_step_bench_result *r)
{
    (void)steps;
    (void)r;
    return ss_seterr(SS_ERR_UNSUPPORTED, "%s: not built yet", name);
}
