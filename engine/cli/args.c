/* args.c — the command-line parser (see args.h). */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static int find_opt(const rt_arg_cmd *cmd, const char *name, size_t len)
{
    for (int k = 0; k < RT_ARGS_MAX_OPTS && cmd->opts && cmd->opts[k].name; k++)
        if (strlen(cmd->opts[k].name) == len && !strncmp(cmd->opts[k].name, name, len))
            return k;
    return -1;
}

static rt_status take_positional(const rt_arg_cmd *cmd, rt_args *out, const char *arg, rt_error *err)
{
    if (out->n_pos >= cmd->max_pos || out->n_pos >= RT_ARGS_MAX_POS)
        return rt_error_set(err, RT_ERR_INVALID, "unexpected argument \"%.80s\" for `%s` (it takes %s); see %s --help",
                            arg, cmd->name, cmd->args && cmd->max_pos ? cmd->args : "no arguments", cmd->name);
    out->pos[out->n_pos++] = arg;
    return RT_OK;
}

/* argv[*i] is an option: a settings flag or one of the command's. */
static rt_status take_option(const rt_arg_cmd *cmd, rt_config *cfg, int argc, char **argv, int *i, rt_args *out,
                             rt_error *err)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    int k = find_opt(cmd, arg, len);
    if (k < 0 && cmd->settings && cfg) {
        rt_status s = rt_config_apply_flag(cfg, argc, argv, i, err);
        if (s != RT_ERR_NOT_FOUND)
            return s == RT_OK ? RT_OK : rt_error_set(err, RT_ERR_INVALID, "%s; see %s --help", err->msg, cmd->name);
    }
    if (k < 0)
        return rt_error_set(err, RT_ERR_INVALID, "unknown option %.*s for `%s`; see %s --help", (int)(len > 80 ? 80 : len),
                            arg, cmd->name, cmd->name);
    const rt_arg_opt *o = &cmd->opts[k];
    const char *value = eq ? eq + 1 : NULL;
    if (!o->value) {
        if (value)
            return rt_error_set(err, RT_ERR_INVALID, "%s takes no value; see %s --help", o->name, cmd->name);
    } else if (!value) {
        if (*i + 1 >= argc)
            return rt_error_set(err, RT_ERR_INVALID, "%s needs a value (%s %s); see %s --help", o->name, o->name,
                                o->value, cmd->name);
        value = argv[++*i];
    }
    out->given[k] = true;
    out->value[k] = value;
    return RT_OK;
}

rt_status rt_args_parse(const rt_arg_cmd *cmd, rt_config *cfg, int argc, char **argv, int pos, rt_args *out,
                        rt_error *err)
{
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    bool only_positionals = false;
    for (int i = pos; i < argc; i++) {
        const char *arg = argv[i];
        rt_status s;
        if (only_positionals || arg[0] != '-' || !strcmp(arg, "-")) {
            s = take_positional(cmd, out, arg, err);
        } else if (!strcmp(arg, "--")) {
            only_positionals = true;
            continue;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            out->help = true;
            return RT_OK;
        } else {
            s = take_option(cmd, cfg, argc, argv, &i, out, err);
        }
        if (s != RT_OK)
            return s;
    }
    return RT_OK;
}

bool rt_args_take(const rt_arg_cmd *cmd, rt_config *cfg, int argc, char **argv, int pos, rt_args *out, int *rc)
{
    rt_error err;
    if (rt_args_parse(cmd, cfg, argc, argv, pos, out, &err) != RT_OK) {
        fprintf(stderr, "ratchet: %s\n", err.msg);
        *rc = EXIT_USAGE;
        return false;
    }
    if (out->help) {
        rt_args_help(cmd, stdout);
        *rc = 0;
        return false;
    }
    *rc = 0;
    return true;
}

static int index_of(const rt_args *a, const char *name)
{
    int k = find_opt(a->cmd, name, strlen(name));
    if (k < 0) { /* a programming error: the command reads an option it did not declare */
        fprintf(stderr, "ratchet: internal error: %s reads undeclared option %s\n", a->cmd->name, name);
        abort();
    }
    return k;
}

const char *rt_args_value(const rt_args *a, const char *name)
{
    return a->value[index_of(a, name)];
}

bool rt_args_given(const rt_args *a, const char *name)
{
    return a->given[index_of(a, name)];
}

rt_status rt_args_int(const rt_args *a, const char *name, long min, long max, long *out, rt_error *err)
{
    const char *v = rt_args_value(a, name);
    if (!v)
        return RT_OK;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || !*v || *end || n < min || n > max)
        return rt_error_set(err, RT_ERR_INVALID, "%s=%.40s: expected an integer from %ld to %ld", name, v, min, max);
    *out = n;
    return RT_OK;
}

int rt_args_usage(const rt_arg_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see %s --help\n", cmd->name);
    va_end(ap);
    return EXIT_USAGE;
}

void rt_args_help(const rt_arg_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: %s%s%s%s\n", cmd->name, cmd->args ? " " : "", cmd->args ? cmd->args : "",
            cmd->opts && cmd->opts[0].name ? " [options]" : "");
    if (cmd->about)
        fprintf(out, "  %s\n", cmd->about);
    fprintf(out, "\noptions:\n");
    for (int k = 0; k < RT_ARGS_MAX_OPTS && cmd->opts && cmd->opts[k].name; k++) {
        const rt_arg_opt *o = &cmd->opts[k];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
        fprintf(out, "  %-24s %s\n", left, o->help ? o->help : "");
    }
    fprintf(out, "  %-24s %s\n", "--help", "this text");
    if (cmd->settings)
        fprintf(out, "\nThe settings flags (--database-url URL, --log-level L, ...) are taken too: see `ratchet help`.\n");
}

rt_status rt_args_int_fields(const rt_args *a, const rt_args_int_field *fields, size_t n, void *base, rt_error *err)
{
    for (size_t k = 0; k < n; k++) {
        int *field = (int *)((char *)base + fields[k].off);
        long v = *field;
        rt_status s = rt_args_int(a, fields[k].name, fields[k].lo, fields[k].hi, &v, err);
        if (s != RT_OK)
            return s;
        *field = (int)v;
    }
    return RT_OK;
}
