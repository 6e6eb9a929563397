/* selfsup — self-supervised learning in C. Umbrella header. */
#ifndef SELFSUP_H
#define SELFSUP_H

#include "selfsup/status.h"
#include "selfsup/rng.h"
#include "selfsup/tensor.h"
#include "selfsup/ops.h"
#include "selfsup/nn.h"
#include "selfsup/optim.h"
#include "selfsup/runtime.h"

#define SELFSUP_VERSION "0.1.0"

#endif
