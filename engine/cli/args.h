/* args.h — the one command-line parser of `ratchet`: each command declares its options
 * in a table (rt_arg_cmd), the parser takes `--x v`, `--x=v`, flags, positionals, `--`
 * and --help, answers a mistake with a precise line, and --help text comes from the table. */
#ifndef RT_ARGS_H
#define RT_ARGS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "status.h"

#define RT_ARGS_MAX_OPTS 32
#define RT_ARGS_MAX_POS 64 /* ratchet cancel RUN... */

/* One option. Flags have no `value`. */
typedef struct rt_arg_opt {
    const char *name;  /* "--data" */
    const char *value; /* its value's placeholder in --help ("JSON"); NULL: a flag */
    const char *help;  /* one line for --help */
} rt_arg_opt;

/* One command. */
typedef struct rt_arg_cmd {
    const char *name;       /* "ratchet show": what errors and --help name */
    const char *args;       /* its positionals for --help ("RUN", "[list | pause WORKFLOW]"); NULL: none */
    int max_pos;            /* how many positionals it takes at most */
    const char *about;      /* one line for --help */
    const rt_arg_opt *opts; /* ends with {NULL}; at most RT_ARGS_MAX_OPTS */
    bool settings;          /* also takes the settings flags (config.c: --database-url ...) */
} rt_arg_cmd;

/* What the command line said. Values point into argv. */
typedef struct rt_args {
    const rt_arg_cmd *cmd;
    const char *value[RT_ARGS_MAX_OPTS]; /* by index in cmd->opts: the last value given */
    bool given[RT_ARGS_MAX_OPTS];
    const char *pos[RT_ARGS_MAX_POS];
    int n_pos;
    bool help; /* --help was given (parsing stopped there) */
} rt_args;

/* Parses argv[pos..argc). Settings flags are applied to cfg (cmd->settings; cfg may be NULL
 * otherwise). RT_ERR_INVALID with one precise line in err ("unknown option --foo for
 * `ratchet show`; see ratchet show --help"). */
rt_status rt_args_parse(const rt_arg_cmd *cmd, rt_config *cfg, int argc, char **argv, int pos, rt_args *out,
                        rt_error *err);

/* What a command calls: rt_args_parse, then on --help prints the help to stdout and on an
 * error prints it to stderr. Returns true when the command goes on; false with *rc the
 * exit status (0 after --help, 2 after an error). */
bool rt_args_take(const rt_arg_cmd *cmd, rt_config *cfg, int argc, char **argv, int pos, rt_args *out, int *rc);

/* The option's value (NULL when not given); whether it was given (flags). The name must be
 * in the command's table. */
const char *rt_args_value(const rt_args *a, const char *name);
bool rt_args_given(const rt_args *a, const char *name);
/* The option's value as an integer in [min, max] into *out (untouched when not given);
 * RT_ERR_INVALID "--limit=0: expected an integer from 1 to 100000" otherwise. */
rt_status rt_args_int(const rt_args *a, const char *name, long min, long max, long *out, rt_error *err);
/* A table of int options read into the fields of one struct (at base + off): each given
 * option is checked against [lo, hi] by rt_args_int; absent ones keep the field's value. */
typedef struct rt_args_int_field {
    const char *name;
    size_t off;
    long lo, hi;
} rt_args_int_field;
rt_status rt_args_int_fields(const rt_args *a, const rt_args_int_field *fields, size_t n, void *base, rt_error *err);

/* Prints a usage error for cmd after parsing ("ratchet run: --at and --in cannot be used
 * together; see ratchet run --help") to stderr; returns 2, the exit status. */
int rt_args_usage(const rt_arg_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The --help text generated from the table. */
void rt_args_help(const rt_arg_cmd *cmd, FILE *out);

#endif
