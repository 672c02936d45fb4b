/* exec.c — runs `command` (an argv list; a shell only when the workflow names one) in its
 * own process group, with rlimits and an allow-listed environment. The run's context goes
 * in on stdin; stdout comes back as the output: parsed JSON, null when empty, else the text
 * as a JSON string (trailing newlines removed, invalid UTF-8 replaced by U+FFFD).
 * Progress comes on a pipe of its own, fd 3 (RATCHET_PROGRESS_FD): JSON lines
 * {"done": 40, "total": 100, "message": "..."}; the latest valid one goes to the engine
 * (ctx->progress) at most once a second, bad or overlong lines are counted and skipped, and
 * the pipe is always drained so a chatty command never blocks on it.
 *
 * Worker threads run this concurrently, so everything the forked child touches is
 * prepared before fork(): between fork and exec the child calls async-signal-safe
 * functions only (another thread may hold the malloc lock at the moment of the fork). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "step.h"
#include "util.h"

#define DEFAULT_MAX_OUTPUT ((size_t)16 << 20)
#define MAX_MAX_OUTPUT ((size_t)1 << 30)
#define STDERR_KEEP 8192     /* bytes of stderr kept: enough for the tail we report */
#define TAIL_LINES 20
#define TAIL_BYTES 2048
#define TICK_MS 100          /* the cancel flag is looked at least this often */
#define TERM_GRACE_MS 2000   /* SIGTERM, then SIGKILL this much later */
#define DRAIN_GRACE_MS 1000  /* after the command exits, how long a process that left the
                              * group (setsid) may keep our pipes open before we stop reading */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define PROGRESS_FD 3           /* the child's end of the progress pipe */
#define PROGRESS_LINE_MAX 4096  /* a longer progress line is skipped (and counted) */
#define PROGRESS_MESSAGE_MAX 200 /* bytes of `message` kept */
#define PROGRESS_EVERY_MS 1000  /* reports to the engine at most this often */

enum stop_reason { STOP_NONE = 0, STOP_TIMEOUT, STOP_CANCEL, STOP_OUTPUT_LIMIT };

/* What the child reports on the status pipe when it cannot reach execve. */
enum child_stage { STAGE_SETUP = 1, STAGE_RLIMIT, STAGE_CHDIR, STAGE_EXEC };
struct child_report {
    int stage;
    int err;
};

struct opts {
    json_t *command;         /* array of strings (rendered) */
    const char *cwd;
    json_t *env;             /* object or NULL */
    json_t *env_allow;       /* array or NULL */
    int64_t timeout_ms;      /* 0 = none */
    const char *timeout_str;
    bool has_cpu, has_mem, has_nofile;
    rlim_t cpu, mem, nofile;
    json_t *non_retriable;   /* array of ints or NULL */
    bool send_context;
    size_t max_output;
};

/* ---- validation, shared by load time (templates skipped) and run time ---------------- */

static bool valid_env_name(const char *s)
{
    if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
        return false;
    for (s++; *s; s++) {
        if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    }
    return true;
}

/* RATCHET_* variables are the engine's own settings (database URL with its password) and
 * its secrets (RATCHET_SECRET_*); a workflow passes a secret explicitly through `env`. */
static bool engine_private_name(const char *s)
{
    return strncmp(s, "RATCHET_", 8) == 0;
}

/* "268435456", "256MB", "1GB", "512k": binary multiples, because that is what people
 * mean when they size memory for a process. */
static bool parse_size(const char *s, rlim_t *out)
{
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    unsigned long long n = 0;
    while (*p >= '0' && *p <= '9') {
        if (n > (ULLONG_MAX - 9) / 10)
            return false;
        n = n * 10 + (unsigned)(*p++ - '0');
    }
    while (*p == ' ')
        p++;
    unsigned shift = 0;
    switch (*p) {
    case '\0': break;
    case 'b': case 'B': if (p[1]) return false; break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return false;
    }
    if (shift) {
        p++;
        if ((p[0] == 'i' || p[0] == 'I') && (p[1] == 'b' || p[1] == 'B') && !p[2])
            ;
        else if ((p[0] == 'b' || p[0] == 'B') && !p[1])
            ;
        else if (p[0])
            return false;
    }
    if (n == 0 || n > (ULLONG_MAX >> shift))
        return false;
    *out = (rlim_t)(n << shift);
    return true;
}

static rt_status positive_int(json_t *v, const char *what, long long max, long long *out,
                              rt_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > max)
        return rt_error_set(err, RT_ERR_INVALID, "%s must be a positive integer (at most %lld)",
                            what, max);
    *out = json_integer_value(v);
    return RT_OK;
}

static rt_status parse_rlimits(json_t *rl, bool rendered, struct opts *o, rt_error *err)
{
    if (!json_is_object(rl))
        return rt_error_set(err, RT_ERR_INVALID, "exec \"rlimits\" must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(rl, key, v) {
        long long n = 0;
        if (rt_step_is_template(v, rendered))
            continue;
        if (strcmp(key, "cpu") == 0) {
            if (positive_int(v, "exec \"rlimits.cpu\" (seconds)", 86400LL * 365, &n, err))
                return err->code;
            o->has_cpu = true;
            o->cpu = (rlim_t)n;
        } else if (strcmp(key, "memory") == 0) {
            if (json_is_integer(v)) {
                if (positive_int(v, "exec \"rlimits.memory\" (bytes)", LLONG_MAX, &n, err))
                    return err->code;
                o->mem = (rlim_t)n;
            } else if (!json_is_string(v) || !parse_size(json_string_value(v), &o->mem)) {
                return rt_error_set(err, RT_ERR_INVALID,
                                    "exec \"rlimits.memory\" must be bytes (integer) or a size "
                                    "like \"256MB\" or \"1GB\"");
            }
            o->has_mem = true;
        } else if (strcmp(key, "nofile") == 0) {
            if (positive_int(v, "exec \"rlimits.nofile\"", 1 << 20, &n, err))
                return err->code;
            o->has_nofile = true;
            o->nofile = (rlim_t)n;
        } else {
            return rt_error_set(err, RT_ERR_INVALID,
                                "exec \"rlimits\" has unknown key \"%s\" (cpu, memory, nofile)", key);
        }
    }
    return RT_OK;
}

/* Fills o from `with`. At load time (rendered == false) strings holding ${{ }} are taken
 * on trust; at run time every value is checked, because a template may render anything. */
/* Only known keys, and never "shell". */
static rt_status check_keys(json_t *with, rt_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        if (strcmp(key, "shell") == 0)
            return rt_error_set(err, RT_ERR_INVALID,
                                "exec has no \"shell\" option: commands never go through a shell; "
                                "write [\"sh\", \"-c\", \"...\"] in \"command\" to use one");
        static const char *const known[] = {"command", "cwd", "env", "env_allow", "timeout",
                                            "rlimits", "non_retriable_exit_codes", "stdin",
                                            "max_output_bytes", NULL};
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i])
            return rt_error_set(err, RT_ERR_INVALID, "exec has unknown key \"%s\"", key);
    }
    return RT_OK;
}

/* "command": a non-empty list of strings, the first not empty. */
static rt_status parse_command(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    json_t *v;
    json_t *cmd = json_object_get(with, "command");
    if (!cmd)
        return rt_error_set(err, RT_ERR_INVALID, "exec needs \"command\" (a list of strings)");
    if (!rt_step_is_template(cmd, rendered)) {
        if (!json_is_array(cmd) || json_array_size(cmd) == 0)
            return rt_error_set(err, RT_ERR_INVALID,
                                "exec \"command\" must be a non-empty list of strings");
        size_t i;
        json_array_foreach(cmd, i, v) {
            if (!json_is_string(v))
                return rt_error_set(err, RT_ERR_INVALID, "exec \"command[%zu]\" must be a string", i);
        }
        if (json_string_length(json_array_get(cmd, 0)) == 0)
            return rt_error_set(err, RT_ERR_INVALID, "exec \"command[0]\" must not be empty");
        o->command = cmd;
    }
    return RT_OK;
}

/* "env" (NAME: scalar) and "env_allow" (names to copy from the engine's environment, never
 * RATCHET_*). */
static rt_status parse_env(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    json_t *v;
    if ((v = json_object_get(with, "env")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_object(v))
            return rt_error_set(err, RT_ERR_INVALID, "exec \"env\" must be an object of NAME: value");
        const char *name;
        json_t *val;
        json_object_foreach(v, name, val) {
            if (!valid_env_name(name))
                return rt_error_set(err, RT_ERR_INVALID, "exec \"env\": \"%s\" is not a valid variable name", name);
            if (!json_is_string(val) && !json_is_number(val) && !json_is_boolean(val))
                return rt_error_set(err, RT_ERR_INVALID,
                                    "exec \"env.%s\" must be a string, number or boolean", name);
        }
        o->env = v;
    }

    if ((v = json_object_get(with, "env_allow")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_array(v))
            return rt_error_set(err, RT_ERR_INVALID, "exec \"env_allow\" must be a list of variable names");
        size_t i;
        json_t *name;
        json_array_foreach(v, i, name) {
            if (rt_step_is_template(name, rendered))
                continue;
            if (!json_is_string(name) || !valid_env_name(json_string_value(name)))
                return rt_error_set(err, RT_ERR_INVALID,
                                    "exec \"env_allow[%zu]\" must be a variable name", i);
            if (engine_private_name(json_string_value(name)))
                return rt_error_set(err, RT_ERR_INVALID,
                                    "exec \"env_allow\" may not copy %s: RATCHET_* variables hold the "
                                    "engine's settings and secrets; pass a secret explicitly with "
                                    "\"env\": {\"NAME\": \"${{ secrets.NAME }}\"}",
                                    json_string_value(name));
        }
        o->env_allow = v;
    }
    return RT_OK;
}

/* "non_retriable_exit_codes", "stdin" and "max_output_bytes". */
static rt_status parse_exit_and_io(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    json_t *v;
    if ((v = json_object_get(with, "non_retriable_exit_codes")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_array(v))
            return rt_error_set(err, RT_ERR_INVALID,
                                "exec \"non_retriable_exit_codes\" must be a list of integers 1-255");
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 255)
                return rt_error_set(err, RT_ERR_INVALID,
                                    "exec \"non_retriable_exit_codes[%zu]\" must be an integer 1-255", i);
        }
        o->non_retriable = v;
    }

    if ((v = json_object_get(with, "stdin")) && !rt_step_is_template(v, rendered)) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "context") != 0 && strcmp(s, "none") != 0))
            return rt_error_set(err, RT_ERR_INVALID, "exec \"stdin\" must be \"context\" or \"none\"");
        o->send_context = strcmp(s, "context") == 0;
    }

    if ((v = json_object_get(with, "max_output_bytes")) && !rt_step_is_template(v, rendered)) {
        long long n = 0;
        if (positive_int(v, "exec \"max_output_bytes\"", (long long)MAX_MAX_OUTPUT, &n, err))
            return err->code;
        o->max_output = (size_t)n;
    }
    return RT_OK;
}

static rt_status parse_with(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    memset(o, 0, sizeof *o);
    o->send_context = true;
    o->max_output = DEFAULT_MAX_OUTPUT;
    if (!json_is_object(with))
        return rt_error_set(err, RT_ERR_INVALID, "exec needs \"with\" as an object");
    json_t *v;
    if (check_keys(with, err) != RT_OK || parse_command(with, rendered, o, err) != RT_OK)
        return err->code;
    if ((v = json_object_get(with, "cwd")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return rt_error_set(err, RT_ERR_INVALID, "exec \"cwd\" must be a non-empty string");
        o->cwd = json_string_value(v);
    }
    if (parse_env(with, rendered, o, err) != RT_OK ||
        rt_step_duration_option(with, "timeout", rendered, "exec", &o->timeout_ms, &o->timeout_str, err) != RT_OK)
        return err->code;
    if ((v = json_object_get(with, "rlimits")) && !rt_step_is_template(v, rendered) &&
        parse_rlimits(v, rendered, o, err) != RT_OK)
        return err->code;
    return parse_exit_and_io(with, rendered, o, err);
}

static rt_status validate(json_t *with, rt_error *err)
{
    struct opts o;
    return parse_with(with, false, &o, err);
}

/* ---- small buffers ------------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len, cap;
};

static bool buf_append(struct buf *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

/* Keeps only the last STDERR_KEEP bytes: a chatty command's stderr must not grow without
 * bound, and only the tail is ever reported. */
static void tail_append(struct buf *b, const char *p, size_t n)
{
    if (n >= STDERR_KEEP) {
        b->len = 0;
        p += n - STDERR_KEEP;
        n = STDERR_KEEP;
    } else if (b->len + n > STDERR_KEEP) {
        size_t drop = b->len + n - STDERR_KEEP;
        memmove(b->data, b->data + drop, b->len - drop);
        b->len -= drop;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* The last TAIL_LINES lines / TAIL_BYTES bytes of stderr, as clean UTF-8 (malloc'd). */
static char *stderr_tail(const struct buf *b)
{
    size_t end = b->len;
    while (end > 0 && (b->data[end - 1] == '\n' || b->data[end - 1] == '\r' ||
                       b->data[end - 1] == ' ' || b->data[end - 1] == '\t'))
        end--;
    size_t start = end, lines = 0;
    while (start > 0 && end - start < TAIL_BYTES) {
        if (b->data[start - 1] == '\n' && ++lines == TAIL_LINES)
            break;
        start--;
    }
    while (start < end && ((unsigned char)b->data[start] & 0xC0) == 0x80)
        start++; /* do not begin in the middle of a UTF-8 sequence */
    size_t n;
    char *t = rt_utf8_sanitize(b->data ? b->data + start : "", end - start, &n);
    return t;
}

/* ---- the environment ----------------------------------------------------------------- */

struct envlist {
    char **v;
    size_t n, cap;
};

/* Sets NAME=value, replacing an earlier entry of the same name. */
static bool env_set(struct envlist *e, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *entry = malloc(nl + vl + 2);
    if (!entry)
        return false;
    memcpy(entry, name, nl);
    entry[nl] = '=';
    memcpy(entry + nl + 1, value, vl + 1);
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
            free(e->v[i]);
            e->v[i] = entry;
            return true;
        }
    }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        char **v = realloc(e->v, cap * sizeof *v);
        if (!v) {
            free(entry);
            return false;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = entry;
    e->v[e->n] = NULL;
    return true;
}

static const char *env_get(const struct envlist *e, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=')
            return e->v[i] + nl + 1;
    }
    return NULL;
}

static void env_free(struct envlist *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* The child's whole environment: PATH, the allow-listed engine variables, `env`, and the
 * run's identity. Never the engine's environment as such: it holds secrets. */
static bool build_env(const struct opts *o, const rt_step_ctx *ctx, struct envlist *e)
{
    if (!env_set(e, "PATH", DEFAULT_PATH))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(o->env_allow, i, v) {
        const char *name = json_string_value(v);
        const char *val = getenv(name);
        if (val && !engine_private_name(name) && !env_set(e, name, val))
            return false;
    }
    const char *name;
    json_object_foreach(o->env, name, v) {
        char num[64];
        const char *val = rt_json_scalar_text(v, num, sizeof num);
        if (!env_set(e, name, val))
            return false;
    }
    /* W3C Trace Context for the child (the OpenTelemetry SDKs' TRACEPARENT convention) */
    if (ctx->traceparent && !env_get(e, "TRACEPARENT") && !env_set(e, "TRACEPARENT", ctx->traceparent))
        return false;
    char attempt[32], fence[32];
    snprintf(attempt, sizeof attempt, "%d", ctx->attempt);
    snprintf(fence, sizeof fence, "%lld", (long long)ctx->fence);
    return env_set(e, "RATCHET_PROGRESS_FD", "3") && env_set(e, "RATCHET_RUN_ID", ctx->run_id ? ctx->run_id : "") &&
           env_set(e, "RATCHET_STEP_KEY", ctx->step_key ? ctx->step_key : "") &&
           env_set(e, "RATCHET_ATTEMPT", attempt) && env_set(e, "RATCHET_FENCE", fence);
}

/* Finds argv0 on the child's PATH before forking (execvp would search the engine's PATH,
 * and must not allocate in the child). Returns a malloc'd path, or NULL when not found. */
static char *find_program(const char *argv0, const char *path, const char *cwd)
{
    if (strchr(argv0, '/'))
        return strdup(argv0);
    const char *p = path ? path : DEFAULT_PATH;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        char *full = NULL;
        const char *dir = dl ? p : ".";
        int dlen = dl ? (int)dl : 1;
        int r = (dir[0] != '/' && cwd)
                    ? asprintf(&full, "%s/%.*s/%s", cwd, dlen, dir, argv0)
                    : asprintf(&full, "%.*s/%s", dlen, dir, argv0);
        if (r < 0)
            return NULL;
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
            return full;
        free(full);
        if (!colon)
            break;
        p = colon + 1;
    }
    return NULL;
}

/* ---- the child ----------------------------------------------------------------------- */

struct spawn_plan {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int stdin_fd, stdout_fd, stderr_fd, report_fd, progress_fd;
    const struct opts *o;
};

/* Runs in the forked child: async-signal-safe calls only. Never returns. */
static void child_run(const struct spawn_plan *p)
{
    struct child_report rep = {STAGE_SETUP, 0};

    /* The engine may ignore or block signals (SIGPIPE, SIGTERM for its own handler thread);
     * ignored dispositions and the mask survive execve, so give the command defaults. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (setpgid(0, 0) != 0)
        goto fail;

    /* Move everything above 2 first so that no dup2 below clobbers a source. */
    int src[3] = {p->stdin_fd, p->stdout_fd, p->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
            goto fail;
    }
    /* Above PROGRESS_FD, so that the dup2 onto it below clobbers neither. */
    int progress = fcntl(p->progress_fd, F_DUPFD_CLOEXEC, PROGRESS_FD + 1);
    int report = fcntl(p->report_fd, F_DUPFD_CLOEXEC, PROGRESS_FD + 1);
    if (report < 0 || progress < 0)
        goto fail;
    for (int i = 0; i < 3; i++) {
        if (dup2(src[i], i) < 0)
            goto fail;
    }
    if (dup2(progress, PROGRESS_FD) < 0) /* without FD_CLOEXEC: the command inherits it */
        goto fail;
    /* Close every other descriptor: the engine holds PostgreSQL and broker sockets that
     * were not all opened close-on-exec. */
    if ((report > PROGRESS_FD + 1 && close_range(PROGRESS_FD + 1, (unsigned)report - 1, 0) != 0) ||
        close_range((unsigned)report + 1, ~0U, 0) != 0) {
        struct rlimit nf;
        int max = getrlimit(RLIMIT_NOFILE, &nf) == 0 && nf.rlim_cur < 1048576 ? (int)nf.rlim_cur : 1048576;
        for (int fd = PROGRESS_FD + 1; fd < max; fd++) {
            if (fd != report)
                close(fd);
        }
    }

    rep.stage = STAGE_RLIMIT;
    struct rlimit rl;
    if (p->o->has_cpu) {
        /* SIGXCPU at the limit, SIGKILL a second later if it is caught. */
        rl.rlim_cur = p->o->cpu;
        rl.rlim_max = p->o->cpu + 1;
        if (setrlimit(RLIMIT_CPU, &rl) != 0)
            goto fail_report;
    }
    if (p->o->has_mem) {
        rl.rlim_cur = rl.rlim_max = p->o->mem;
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            goto fail_report;
    }
    if (p->o->has_nofile) {
        rl.rlim_cur = rl.rlim_max = p->o->nofile;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            goto fail_report;
    }
    /* No core files: a step's memory may hold the secrets it was given. */
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &rl);

    rep.stage = STAGE_CHDIR;
    if (p->cwd && chdir(p->cwd) != 0)
        goto fail_report;

    rep.stage = STAGE_EXEC;
    execve(p->path, p->argv, p->envp);
fail_report:
    rep.err = errno;
    if (write(report, &rep, sizeof rep) < 0)
        _exit(127);
    _exit(127);
fail:
    rep.err = errno;
    if (write(p->report_fd, &rep, sizeof rep) < 0)
        _exit(127);
    _exit(127);
}

/* ---- the parent's side --------------------------------------------------------------- */

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return NULL;
    }
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The context sent on stdin. Secrets are never part of ctx->context. */
static char *context_json(const rt_step_ctx *ctx, json_t *with, size_t *len)
{
    json_t *c = ctx->context;
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    static const char *const roots[] = {"event", "steps", "run", NULL};
    for (size_t i = 0; roots[i]; i++) {
        json_t *v = json_object_get(c, roots[i]); /* borrowed; set() takes its own ref */
        json_object_set(doc, roots[i], v ? v : json_null());
    }
    json_object_set(doc, "input", with ? with : json_null());
    json_object_set_new(doc, "step_key", ctx->step_key ? json_string(ctx->step_key) : json_null());
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (s)
        *len = strlen(s);
    return s;
}

/* The progress pipe's reader: the line being read, and the latest valid progress. */
struct progress {
    char line[PROGRESS_LINE_MAX];
    size_t len;
    bool overlong;      /* the current line passed PROGRESS_LINE_MAX: skipped to its end */
    json_t *latest;     /* owned: the last valid line, not yet reported; NULL when none */
    int64_t sent_ms;    /* rt_mono_ms() of the last report; 0 = never */
    long long invalid;  /* lines skipped */
};

struct run {
    pid_t pid;
    int in_fd, out_fd, err_fd, pid_fd, prog_fd;
    const char *in_data;
    size_t in_len, in_off;
    struct buf out;
    struct buf err;
    size_t max_output;
    bool out_over;
    struct progress prog;
};

/* One progress line as the engine keeps it ({done, total, message, at, invalid_lines}),
 * or NULL when it is not an object with a number done >= 0 or a string message (total, if
 * there, a number >= 0). */
static json_t *progress_parse(const char *s, size_t n, long long invalid)
{
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *done = json_object_get(j, "done"), *total = json_object_get(j, "total"),
           *msg = json_object_get(j, "message");
    bool ok = json_is_object(j) && (done || msg) && (!done || (json_is_number(done) && json_number_value(done) >= 0)) &&
              (!total || (json_is_number(total) && json_number_value(total) >= 0)) && (!msg || json_is_string(msg));
    json_t *out = ok ? json_object() : NULL;
    if (out) {
        if (done)
            json_object_set(out, "done", done);
        if (total)
            json_object_set(out, "total", total);
        if (msg) {
            size_t len = json_string_length(msg);
            const char *m = json_string_value(msg);
            if (len > PROGRESS_MESSAGE_MAX) {
                len = PROGRESS_MESSAGE_MAX;
                while (len > 0 && ((unsigned char)m[len] & 0xC0) == 0x80)
                    len--; /* never cut a UTF-8 sequence */
            }
            json_object_set_new(out, "message", json_stringn(m, len));
        }
        json_object_set_new(out, "at_ms", json_integer(rt_now_ms()));
        if (invalid > 0)
            json_object_set_new(out, "invalid_lines", json_integer(invalid));
    }
    json_decref(j);
    return out;
}

/* Hands the latest progress to the engine: when due (force: at the end, whatever is left). */
static void progress_send(struct run *r, const rt_step_ctx *ctx, bool force)
{
    struct progress *p = &r->prog;
    int64_t now = rt_mono_ms();
    if (!p->latest || (!force && p->sent_ms && now - p->sent_ms < PROGRESS_EVERY_MS))
        return;
    if (ctx->progress)
        ctx->progress(ctx, p->latest);
    json_decref(p->latest);
    p->latest = NULL;
    p->sent_ms = now;
}

static void progress_line_end(struct progress *p)
{
    if (p->overlong) {
        p->invalid++;
        rt_metrics_counter_add("ratchet_progress_lines_invalid_total", 1);
    } else if (p->len > 0) {
        json_t *v = progress_parse(p->line, p->len, p->invalid);
        if (v) {
            json_decref(p->latest);
            p->latest = v;
        } else {
            p->invalid++;
            rt_metrics_counter_add("ratchet_progress_lines_invalid_total", 1);
        }
    }
    p->len = 0;
    p->overlong = false;
}

/* Reads what the progress pipe holds; returns false at end of file or on error. */
static bool drain_progress(struct run *r, const rt_step_ctx *ctx)
{
    struct progress *p = &r->prog;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(r->prog_fd, chunk, sizeof chunk);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (chunk[i] == '\n')
                    progress_line_end(p);
                else if (p->len < sizeof p->line)
                    p->line[p->len++] = chunk[i];
                else
                    p->overlong = true;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        bool open = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (!open)
            progress_line_end(p); /* a last line without its newline */
        progress_send(r, ctx, false);
        return open;
    }
}

/* Reads what is there; returns false at end of file or on error. */
static bool drain(struct run *r, int fd, bool is_stdout)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            if (!is_stdout) {
                tail_append(&r->err, chunk, (size_t)n);
            } else if (!r->out_over) {
                if (r->out.len + (size_t)n > r->max_output || !buf_append(&r->out, chunk, (size_t)n))
                    r->out_over = true;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

static void feed_stdin(struct run *r)
{
    while (r->in_off < r->in_len) {
        ssize_t n = write(r->in_fd, r->in_data + r->in_off, r->in_len - r->in_off);
        if (n > 0) {
            r->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* EPIPE: the command does not read its stdin, which is its right */
    }
    close_fd(&r->in_fd); /* end of input */
}

static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* WNOWAIT leaves the zombie in place: while it exists its pid (= our process group id)
     * cannot be reused, so killpg() below can never hit someone else's group. */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
        return si.si_pid == pid;
    return errno == ECHILD; /* already reaped behind our back (SIGCHLD set to SIG_IGN) */
}

/* Supervises the running child until it has exited and its output is read. */
static enum stop_reason supervise(struct run *r, const rt_step_ctx *ctx, int64_t deadline)
{
    enum stop_reason reason = STOP_NONE;
    int64_t term_at = 0, exited_at = 0;
    bool killed = false;
    for (;;) {
        int64_t now = rt_mono_ms();
        if (!exited_at && child_exited(r->pid)) {
            exited_at = now;
            close_fd(&r->in_fd);
            close_fd(&r->pid_fd);
        }
        if (exited_at && !killed) {
            /* The command is done; whatever it left running in its group goes with it. */
            killpg(r->pid, SIGKILL);
            killed = true;
        }
        if (reason == STOP_NONE && !exited_at) {
            if (ctx->cancelled && *ctx->cancelled)
                reason = STOP_CANCEL;
            else if (deadline && now >= deadline)
                reason = STOP_TIMEOUT;
            else if (r->out_over)
                reason = STOP_OUTPUT_LIMIT;
            if (reason != STOP_NONE) {
                killpg(r->pid, SIGTERM);
                term_at = now;
            }
        }
        if (term_at && !killed && now >= term_at + TERM_GRACE_MS) {
            killpg(r->pid, SIGKILL);
            killed = true;
        }
        if (exited_at && ((r->out_fd < 0 && r->err_fd < 0 && r->prog_fd < 0) || now >= exited_at + DRAIN_GRACE_MS))
            break;

        struct pollfd pf[5];
        int n = 0, i_out = -1, i_err = -1, i_in = -1, i_prog = -1;
        if (r->out_fd >= 0) {
            i_out = n;
            pf[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
        }
        if (r->err_fd >= 0) {
            i_err = n;
            pf[n++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
        }
        if (r->in_fd >= 0) {
            i_in = n;
            pf[n++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
        }
        if (r->prog_fd >= 0) {
            i_prog = n;
            pf[n++] = (struct pollfd){.fd = r->prog_fd, .events = POLLIN};
        }
        if (r->pid_fd >= 0)
            pf[n++] = (struct pollfd){.fd = r->pid_fd, .events = POLLIN};

        int64_t wait = TICK_MS;
        if (!exited_at && r->pid_fd < 0 && r->out_fd < 0 && r->err_fd < 0 && r->prog_fd < 0)
            wait = 10; /* no pidfd: nothing else tells us promptly that it exited */
        if (deadline && reason == STOP_NONE && deadline - now < wait)
            wait = deadline - now;
        if (term_at && !killed && term_at + TERM_GRACE_MS - now < wait)
            wait = term_at + TERM_GRACE_MS - now;
        if (exited_at && exited_at + DRAIN_GRACE_MS - now < wait)
            wait = exited_at + DRAIN_GRACE_MS - now;
        if (wait < 0)
            wait = 0;
        if (poll(pf, (nfds_t)n, (int)wait) < 0) {
            if (errno != EINTR)
                break; /* cannot happen with valid fds; execute() then kills and reaps */
            continue;
        }
        if (i_out >= 0 && pf[i_out].revents && !drain(r, r->out_fd, true))
            close_fd(&r->out_fd);
        if (i_err >= 0 && pf[i_err].revents && !drain(r, r->err_fd, false))
            close_fd(&r->err_fd);
        if (i_in >= 0 && pf[i_in].revents)
            feed_stdin(r);
        if (i_prog >= 0 && pf[i_prog].revents && !drain_progress(r, ctx))
            close_fd(&r->prog_fd);
        progress_send(r, ctx, false); /* one held back by the once-a-second rule */
    }
    progress_send(r, ctx, true);
    if (reason == STOP_NONE && r->out_over)
        reason = STOP_OUTPUT_LIMIT; /* it finished, but we did not keep all it said */
    return reason;
}

static json_t *parse_stdout(const struct buf *b)
{
    size_t len = b->len;
    size_t first = 0;
    while (first < len && strchr(" \t\r\n", b->data[first]))
        first++;
    if (first == len)
        return json_null();
    json_t *j = json_loadb(b->data, len, JSON_DECODE_ANY, NULL);
    if (j)
        return j;
    while (len > 0 && (b->data[len - 1] == '\n' || b->data[len - 1] == '\r'))
        len--; /* as $(...) does: `echo hi` gives "hi" */
    return rt_json_text(b->data, len);
}

static bool code_listed(json_t *codes, int code)
{
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c) {
        if (json_integer_value(c) == code)
            return true;
    }
    return false;
}

static void report_outcome(const struct opts *o, struct run *r, enum stop_reason reason,
                           int status, int64_t elapsed, bool deadline_from_with,
                           rt_step_result *res)
{
    char *tail = stderr_tail(&r->err);
    const char *t = tail ? tail : "";
    const char *sep = *t ? ": " : "";
    char dur[32];
    switch (reason) {
    case STOP_CANCEL:
        rt_step_fail(res, true, "exec: cancelled");
        res->error_detail = json_pack("{s:s}", "stderr", t);
        break;
    case STOP_TIMEOUT:
        if (deadline_from_with) {
            rt_step_fail(res, true, "exec: timed out after %s", o->timeout_str);
        } else {
            rt_duration_format(elapsed, dur, sizeof dur);
            rt_step_fail(res, true, "exec: timed out after %s (step deadline)", dur);
        }
        res->error_detail = json_pack("{s:I,s:s}", "elapsed_ms", (json_int_t)elapsed, "stderr", t);
        break;
    case STOP_OUTPUT_LIMIT:
        rt_step_fail(res, false, "exec: stdout exceeded max_output_bytes (%zu)", o->max_output);
        res->error_detail = json_pack("{s:I,s:s}", "max_output_bytes", (json_int_t)o->max_output,
                                      "stderr", t);
        break;
    case STOP_NONE:
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            res->outcome = RT_STEP_OK;
            res->output = parse_stdout(&r->out);
            if (!res->output)
                rt_step_fail(res, true, "exec: out of memory reading stdout");
        } else if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            rt_step_fail(res, !code_listed(o->non_retriable, code), "exec: exit code %d%s%s", code, sep, t);
            res->error_detail = json_pack("{s:i,s:s}", "exit_code", code, "stderr", t);
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            char num[16];
            const char *name = signal_name(sig);
            if (!name) {
                snprintf(num, sizeof num, "signal %d", sig);
                name = num;
            }
            rt_step_fail(res, true, "exec: killed by %s%s%s%s", name,
                         sig == SIGXCPU ? " (cpu rlimit reached)" : "", sep, t);
            res->error_detail = json_pack("{s:s,s:s}", "signal", name, "stderr", t);
        } else {
            rt_step_fail(res, true, "exec: ended with unexpected status %d", status);
        }
        break;
    }
    free(tail);
}

/* The pipes between the engine and the command: stdin, stdout, stderr, the child's set-up
 * report and its progress lines ([0] read end, [1] write end; -1 when closed). */
struct pipes {
    int in[2], out[2], err[2], rep[2], prog[2];
};

static void pipes_close(struct pipes *p)
{
    for (int i = 0; i < 2; i++) {
        close_fd(&p->in[i]);
        close_fd(&p->out[i]);
        close_fd(&p->err[i]);
        close_fd(&p->rep[i]);
        close_fd(&p->prog[i]);
    }
}

/* SIGPIPE from writing to a command that closed its stdin is directed at this thread;
 * it is blocked here (as libpq does) and swallowed afterwards, so the engine never dies of it. */
struct sigpipe_guard {
    sigset_t pipe_set, old_mask;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t pending;
    sigemptyset(&g->pipe_set);
    sigaddset(&g->pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &g->pipe_set, &g->old_mask);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    sigset_t pending;
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&g->pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
}

/* The monotonic deadline: the step's timeout or the run's, whichever comes first (0: none);
 * *from_with says whether it is the step's own. */
static int64_t exec_deadline(const struct opts *o, const rt_step_ctx *ctx, int64_t start, bool *from_with)
{
    int64_t deadline = o->timeout_ms ? start + o->timeout_ms : 0;
    *from_with = deadline != 0;
    if (ctx->deadline_mono_ms && (!deadline || ctx->deadline_mono_ms < deadline)) {
        deadline = ctx->deadline_mono_ms;
        *from_with = false;
    }
    return deadline;
}

/* The environment, argv (borrowed from with) and the program's path (*path, malloc'ed).
 * false after recording the failure in res. */
static bool prepare_command(const struct opts *o, rt_step_ctx *ctx, struct envlist *env, char **argv,
                            int64_t deadline, char **path, rt_step_result *res)
{
    if (!build_env(o, ctx, env)) {
        rt_step_fail(res, true, "exec: out of memory");
        return false;
    }
    for (size_t i = 0; i < json_array_size(o->command); i++)
        argv[i] = (char *)json_string_value(json_array_get(o->command, i));
    *path = find_program(argv[0], env_get(env, "PATH"), o->cwd);
    if (!*path) {
        rt_step_fail(res, false, "exec: command not found: \"%s\" (PATH=%s)", argv[0], env_get(env, "PATH"));
        return false;
    }
    if (deadline && rt_mono_ms() >= deadline) {
        rt_step_fail(res, true, "exec: timed out before the command started");
        return false;
    }
    return true;
}

/* The pipes, and the command's stdin: the context as JSON (send_context, in *input) or
 * /dev/null. false after recording the failure in res. */
static bool open_pipes(struct pipes *p, const struct opts *o, rt_step_ctx *ctx, json_t *with, struct run *r,
                       char **input, rt_step_result *res)
{
    if (o->send_context) {
        *input = context_json(ctx, with, &r->in_len);
        if (!*input) {
            rt_step_fail(res, true, "exec: out of memory");
            return false;
        }
        r->in_data = *input;
        if (pipe2(p->in, O_CLOEXEC) != 0)
            goto fail;
    } else if ((p->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        goto fail;
    }
    if (pipe2(p->out, O_CLOEXEC) == 0 && pipe2(p->err, O_CLOEXEC) == 0 && pipe2(p->rep, O_CLOEXEC) == 0 &&
        pipe2(p->prog, O_CLOEXEC) == 0)
        return true;
fail:
    rt_step_fail(res, true, "exec: cannot create pipes: %s", strerror(errno));
    return false;
}

/* Reads the child's set-up report: true when it could not exec (the child is reaped and
 * the failure recorded in res), false when the command runs. */
static bool child_setup_failed(struct pipes *p, struct run *r, const char *path, const struct opts *o,
                               rt_step_result *res)
{
    struct child_report rep;
    ssize_t got;
    do
        got = read(p->rep[0], &rep, sizeof rep);
    while (got < 0 && errno == EINTR);
    close_fd(&p->rep[0]);
    if (got != (ssize_t)sizeof rep)
        return false;
    int st;
    while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
        ;
    r->pid = -1;
    bool transient = rep.err == EAGAIN || rep.err == ENOMEM || rep.err == ETXTBSY;
    switch (rep.stage) {
    case STAGE_CHDIR:
        rt_step_fail(res, false, "exec: cannot change to cwd \"%s\": %s", o->cwd, strerror(rep.err));
        break;
    case STAGE_RLIMIT:
        rt_step_fail(res, false, "exec: cannot set rlimits: %s", strerror(rep.err));
        break;
    case STAGE_EXEC:
        rt_step_fail(res, transient, "exec: cannot run \"%s\": %s", path, strerror(rep.err));
        break;
    default:
        rt_step_fail(res, true, "exec: cannot set up the child process: %s", strerror(rep.err));
        break;
    }
    return true;
}

/* The engine's ends of the pipes move into r, non-blocking. */
static void adopt_pipes(struct pipes *p, struct run *r)
{
    r->in_fd = p->in[1];
    p->in[1] = -1;
    r->out_fd = p->out[0];
    p->out[0] = -1;
    r->err_fd = p->err[0];
    p->err[0] = -1;
    r->prog_fd = p->prog[0];
    p->prog[0] = -1;
    set_nonblock(r->prog_fd);
    if (r->in_fd >= 0)
        set_nonblock(r->in_fd);
    set_nonblock(r->out_fd);
    set_nonblock(r->err_fd);
    r->pid_fd = pidfd_open(r->pid, 0); /* -1 on old kernels: supervise() then polls faster */
}

/* Forks the command in its own process group. false after recording the failure in res
 * (fork failed, or the child could not exec). */
static bool spawn_command(struct pipes *p, struct run *r, const char *path, char **argv, struct envlist *env,
                          const struct opts *o, rt_step_result *res)
{
    struct spawn_plan plan = {.path = path, .argv = argv, .envp = env->v, .cwd = o->cwd,
                              .stdin_fd = p->in[0], .stdout_fd = p->out[1],
                              .stderr_fd = p->err[1], .report_fd = p->rep[1],
                              .progress_fd = p->prog[1], .o = o};
    r->pid = fork();
    if (r->pid < 0) {
        rt_step_fail(res, true, "exec: cannot start a process: %s", strerror(errno));
        return false;
    }
    if (r->pid == 0)
        child_run(&plan);
    /* Also from this side, so that a kill below cannot precede the child's own setpgid. */
    setpgid(r->pid, r->pid);
    close_fd(&p->in[0]);
    close_fd(&p->out[1]);
    close_fd(&p->err[1]);
    close_fd(&p->rep[1]);
    close_fd(&p->prog[1]);
    if (child_setup_failed(p, r, path, o, res))
        return false;
    adopt_pipes(p, r);
    return true;
}

/* Supervises the running command to its end and records the outcome in res. */
static void await_command(struct run *r, rt_step_ctx *ctx, const struct opts *o, int64_t start, int64_t deadline,
                          bool deadline_from_with, rt_step_result *res)
{
    enum stop_reason reason = supervise(r, ctx, deadline);
    int status = 0;
    /* If supervise() gave up early (poll failed), make sure the group dies before we wait. */
    if (!child_exited(r->pid))
        killpg(r->pid, SIGKILL);
    pid_t got_pid;
    while ((got_pid = waitpid(r->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    r->pid = -1;
    if (got_pid < 0 && reason == STOP_NONE)
        rt_step_fail(res, true, "exec: the command's exit status was lost (is SIGCHLD ignored?)");
    else
        report_outcome(o, r, reason, status, rt_mono_ms() - start, deadline_from_with, res);
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    struct opts o;
    rt_error err;
    if (parse_with(with, true, &o, &err) != RT_OK) {
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    int64_t start = rt_mono_ms();
    bool deadline_from_with;
    int64_t deadline = exec_deadline(&o, ctx, start, &deadline_from_with);

    struct envlist env = {0};
    char **argv = calloc(json_array_size(o.command) + 1, sizeof *argv);
    char *path = NULL, *input = NULL;
    struct pipes p = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    struct run r = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pid_fd = -1, .prog_fd = -1,
                    .max_output = o.max_output};
    r.err.data = malloc(STDERR_KEEP);
    r.err.cap = STDERR_KEEP;
    struct sigpipe_guard guard;
    sigpipe_block(&guard);

    if (!argv || !r.err.data)
        rt_step_fail(res, true, "exec: out of memory");
    else if (prepare_command(&o, ctx, &env, argv, deadline, &path, res) &&
             open_pipes(&p, &o, ctx, with, &r, &input, res) && spawn_command(&p, &r, path, argv, &env, &o, res))
        await_command(&r, ctx, &o, start, deadline, deadline_from_with, res);

    close_fd(&r.in_fd);
    close_fd(&r.out_fd);
    close_fd(&r.err_fd);
    close_fd(&r.pid_fd);
    close_fd(&r.prog_fd);
    json_decref(r.prog.latest);
    pipes_close(&p);
    sigpipe_restore(&guard);
    free(r.out.data);
    free(r.err.data);
    free(input);
    free(path);
    free(argv);
    env_free(&env);
}

const rt_step_type rt_step_exec = {.name = "exec", .validate = validate, .execute = execute};
