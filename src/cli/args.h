/* Command-line flags: "--key value", "--key=value" and bare "--flag"; "-h"
 * is "--help". Commands read what they take; ss_args_finish() then rejects
 * any flag no one read, a valued flag given without its value, and words
 * without "--" in a command that takes none, naming each, so a typo never
 * passes silently. */
#ifndef SS_CLI_ARGS_H
#define SS_CLI_ARGS_H

#include "selfsup/status.h"

#define ARGS_MAX 128

typedef struct ss_args {
    const char *key[ARGS_MAX];
    const char *val[ARGS_MAX]; /* NULL for bare flags */
    int used[ARGS_MAX];
    int n;
    const char *pos[ARGS_MAX]; /* positional arguments */
    int dashdash;              /* "--" seen: every later argument is positional */
    int npos;
    int pos_read;              /* the command takes positional arguments (args_positional) */
    const char *novalue;       /* the first flag read with args_str that had no value */
    const char *cmd;
    const char *help_args;     /* between the command and --help in hints ("" or " --text x") */
    char kbuf[ARGS_MAX][48];   /* the keys of "--key=value" flags */
} ss_args;

ss_status ss_args_parse(ss_args *a, const char *cmd, int argc, char **argv);
/* Value of --key, or def when absent (given without a value, it is def and
 * ss_args_finish() reports it). */
const char *args_str(ss_args *a, const char *key, const char *def);
int args_flag(ss_args *a, const char *key); /* bare --key present */
/* Typed readers: set *ok = 0 and record an error naming the flag on bad input. */
long args_int(ss_args *a, const char *key, long def, long lo, long hi, int *ok);
double args_float(ss_args *a, const char *key, double def, double lo, double hi, int *ok);
/* The positional arguments (a->pos[0..n-1]); without this call any is an
 * error in ss_args_finish(). */
int args_positional(ss_args *a);
/* Whether --key was given (without reading it). */
int args_has(const ss_args *a, const char *key);
/* --key given where it only means something with --with: an error saying so
 * (SS_OK when --key is absent). For the caller to use when --with is absent. */
ss_status args_needs(ss_args *a, const char *key, const char *with);
/* SS_OK, or an error naming the first flag that no one read. */
ss_status ss_args_finish(ss_args *a);
#endif
