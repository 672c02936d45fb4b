/* test_step_exec.c — the exec step against real processes: output forms, stdin context,
 * failures and their retriability, timeouts and cancels that kill the whole process
 * group, rlimits, the environment allow-list, closed descriptors and large output. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "step.h"
#include "util.h"

#include "test_helpers.h"

extern const rt_step_type rt_step_exec;

static volatile sig_atomic_t cancel_flag;
static json_t *context;

static rt_step_ctx make_ctx(void)
{
    cancel_flag = 0;
    return (rt_step_ctx){.workflow_id = "wf", .run_id = "run-1", .step_id = "step-1",
                         .step_key = "run-1:step-1", .attempt = 2, .fence = 5, .context = context,
                         .cancelled = &cancel_flag};
}

/* {"command": ["/bin/sh", "-c", script]}: tests use a shell; the step never adds one. */
static json_t *sh(const char *script)
{
    return json_pack("{s:[s,s,s]}", "command", "/bin/sh", "-c", script);
}

/* Runs the step; takes ownership of with. */
static void run(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    run_step(&rt_step_exec, ctx, with, res);
    /* Every child is reaped by the time execute returns. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void run_default(json_t *with, rt_step_result *res)
{
    rt_step_ctx ctx = make_ctx();
    run(&ctx, with, res);
}

/* A process is gone when /proc has no entry for it, or only a zombie whose parent (init
 * inside a container) has not reaped it yet. Waits up to 3 s. */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 300; i++) {
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *close_paren = strrchr(buf, ')');
        if (close_paren && (close_paren[2] == 'Z' || close_paren[2] == 'X'))
            return true;
        usleep(10000);
    }
    return false;
}

static pid_t read_pid_file(const char *path)
{
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f) {
            int got = fscanf(f, "%d", &pid);
            fclose(f);
            if (got == 1 && pid > 0)
                return (pid_t)pid;
        }
        usleep(10000);
    }
    fail_msg("no pid in %s", path);
    return -1;
}

static void test_json_stdout(void **state)
{
    rt_step_result res;
    run_default(sh("echo '{\"a\": 1, \"b\": [true, null]}'"), &res);
    expect_ok(&res);
    assert_true(json_is_object(res.output));
    assert_int_equal(json_integer_value(json_object_get(res.output, "a")), 1);
    assert_true(json_is_true(json_array_get(json_object_get(res.output, "b"), 0)));
    rt_step_result_clear(&res);

    run_default(sh("echo 42"), &res); /* any JSON value, not only objects */
    expect_ok(&res);
    assert_int_equal(json_integer_value(res.output), 42);
    rt_step_result_clear(&res);
}

static void test_text_stdout(void **state)
{
    rt_step_result res;
    run_default(sh("printf 'hello world\\nsecond line\\n'"), &res);
    expect_ok(&res);
    assert_true(json_is_string(res.output));
    assert_string_equal(json_string_value(res.output), "hello world\nsecond line");
    rt_step_result_clear(&res);

    /* Bytes that are not UTF-8 become U+FFFD instead of failing the step. */
    run_default(sh("printf 'a\\377b'"), &res);
    expect_ok(&res);
    assert_string_equal(json_string_value(res.output), "a\xEF\xBF\xBD" "b");
    rt_step_result_clear(&res);
}

static void test_empty_stdout(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:[s]}", "command", "true"), &res);
    expect_ok(&res);
    assert_true(res.output == NULL || json_is_null(res.output));
    rt_step_result_clear(&res);
}

static void test_stdin_context(void **state)
{
    rt_step_result res;
    json_t *with = json_pack("{s:[s],s:{s:s}}", "command", "cat", "env", "K", "v");
    json_t *expect_input = json_deep_copy(with);
    run_default(with, &res);
    expect_ok(&res);
    assert_true(json_equal(json_object_get(res.output, "input"), expect_input));
    assert_true(json_equal(json_object_get(res.output, "event"), json_object_get(context, "event")));
    assert_true(json_equal(json_object_get(res.output, "run"), json_object_get(context, "run")));
    assert_true(json_is_object(json_object_get(res.output, "steps")));
    assert_string_equal(json_string_value(json_object_get(res.output, "step_key")), "run-1:step-1");
    json_decref(expect_input);
    rt_step_result_clear(&res);

    /* stdin "none": the command reads end-of-file at once. */
    with = json_pack("{s:[s],s:s}", "command", "cat", "stdin", "none");
    run_default(with, &res);
    expect_ok(&res);
    assert_true(res.output == NULL || json_is_null(res.output));
    rt_step_result_clear(&res);
}

/* A context far larger than a pipe's buffer, sent to a command that never reads it: no
 * hang, and the engine is not killed by SIGPIPE. */
static void test_stdin_not_read(void **state)
{
    char *big = malloc(4 << 20);
    memset(big, 'x', (4 << 20) - 1);
    big[(4 << 20) - 1] = '\0';
    json_t *saved = json_incref(context);
    json_t *ctxdoc = json_deep_copy(context);
    json_object_set_new(json_object_get(ctxdoc, "event"), "blob", json_string(big));
    free(big);
    context = ctxdoc;
    rt_step_result res;
    run_default(sh("exit 0"), &res);
    context = saved;
    json_decref(ctxdoc);
    json_decref(saved);
    expect_ok(&res);
    rt_step_result_clear(&res);
}

static void test_nonzero_exit(void **state)
{
    rt_step_result res;
    run_default(sh("i=1; while [ $i -le 30 ]; do echo \"line $i\" >&2; i=$((i+1)); done; "
                   "echo partial; exit 3"),
                &res);
    expect_fail(&res, true, "exec: exit code 3: ");
    assert_non_null(strstr(res.error, "line 30"));
    assert_int_equal(json_integer_value(json_object_get(res.error_detail, "exit_code")), 3);
    const char *tail = json_string_value(json_object_get(res.error_detail, "stderr"));
    assert_non_null(tail);
    assert_non_null(strstr(tail, "line 11\n"));
    assert_non_null(strstr(tail, "line 30"));
    assert_null(strstr(tail, "line 10\n")); /* only the last 20 lines */
    rt_step_result_clear(&res);
}

static void test_non_retriable_exit_codes(void **state)
{
    rt_step_result res;
    json_t *with = sh("echo 'bad input' >&2; exit 3");
    json_object_set_new(with, "non_retriable_exit_codes", json_pack("[i,i]", 2, 3));
    run_default(with, &res);
    expect_fail(&res, false, "exit code 3: bad input");
    rt_step_result_clear(&res);

    with = sh("exit 4");
    json_object_set_new(with, "non_retriable_exit_codes", json_pack("[i]", 3));
    run_default(with, &res);
    expect_fail(&res, true, "exit code 4");
    rt_step_result_clear(&res);
}

static void test_killed_by_signal(void **state)
{
    rt_step_result res;
    run_default(sh("kill -KILL $$"), &res);
    expect_fail(&res, true, "SIGKILL");
    assert_string_equal(json_string_value(json_object_get(res.error_detail, "signal")), "SIGKILL");
    rt_step_result_clear(&res);
}

static void test_timeout_kills_group(void **state)
{
    char pidfile[] = "/tmp/rt_exec_pid_XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char script[256];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; sleep 30", pidfile);
    json_t *with = sh(script);
    json_object_set_new(with, "timeout", json_string("300ms"));
    int64_t t0 = rt_mono_ms();
    rt_step_result res;
    run_default(with, &res);
    int64_t took = rt_mono_ms() - t0;
    expect_fail(&res, true, "timed out after 300ms");
    assert_true(took >= 300);
    assert_true(took < 3000);
    pid_t grandchild = read_pid_file(pidfile);
    assert_true(process_gone(grandchild));
    unlink(pidfile);
    rt_step_result_clear(&res);
}

/* A command that leaves a background process behind (holding stdout or not) is finished
 * when it exits; what it left in its group is killed, and the step does not hang. */
static void test_leftovers_killed(void **state)
{
    char pidfile[] = "/tmp/rt_exec_pid_XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char script[256];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; echo '\"done\"'", pidfile);
    int64_t t0 = rt_mono_ms();
    rt_step_result res;
    run_default(sh(script), &res);
    assert_true(rt_mono_ms() - t0 < 2000);
    expect_ok(&res);
    assert_string_equal(json_string_value(res.output), "done");
    assert_true(process_gone(read_pid_file(pidfile)));
    unlink(pidfile);
    rt_step_result_clear(&res);
}

static void test_step_deadline(void **state)
{
    rt_step_ctx ctx = make_ctx();
    ctx.deadline_mono_ms = rt_mono_ms() + 300;
    rt_step_result res;
    run(&ctx, json_pack("{s:[s,s]}", "command", "sleep", "30"), &res);
    expect_fail(&res, true, "(step deadline)");
    rt_step_result_clear(&res);
}

static _Atomic int64_t cancel_at_ms;

/* Cancels once the command has written its pid to the file arg names (a loaded machine
 * may take longer than any fixed delay to start it), or after 30 s. */
static void *set_cancel_later(void *arg)
{
    for (int i = 0; i < 3000; i++) {
        struct stat sb;
        if (stat(arg, &sb) == 0 && sb.st_size > 0)
            break;
        usleep(10000);
    }
    cancel_at_ms = rt_mono_ms();
    cancel_flag = 1;
    return NULL;
}

static void test_cancel(void **state)
{
    char pidfile[] = "/tmp/rt_exec_pid_XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char script[256];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; wait", pidfile);
    rt_step_ctx ctx = make_ctx();
    pthread_t th;
    pthread_create(&th, NULL, set_cancel_later, pidfile);
    rt_step_result res;
    run(&ctx, sh(script), &res);
    pthread_join(th, NULL);
    int64_t took = rt_mono_ms() - cancel_at_ms; /* from the cancel to the step's end */
    expect_fail(&res, true, "cancelled");
    assert_true(took < 3000);
    assert_true(process_gone(read_pid_file(pidfile)));
    unlink(pidfile);
    rt_step_result_clear(&res);
}

/* What the progress hook was given: the last value (a copy) and how often. */
static json_t *progress_last;
static int progress_calls;

static void capture_progress(const rt_step_ctx *ctx, json_t *p)
{
    (void)ctx;
    json_decref(progress_last);
    progress_last = json_deep_copy(p);
    progress_calls++;
}

/* RATCHET_PROGRESS_FD: the latest valid line reaches the hook (bad, non-object and
 * overlong lines skipped and counted), at the end at the latest; a line without its
 * newline at the end counts; a command that never writes there gives no call. */
static void test_progress(void **state)
{
    (void)state;
    rt_step_ctx ctx = make_ctx();
    ctx.progress = capture_progress;
    progress_calls = 0;
    rt_step_result res;
    run(&ctx, sh("echo 'nope' >&$RATCHET_PROGRESS_FD; echo '[1]' >&3; head -c 5000 /dev/zero | tr '\\0' x >&3; echo >&3;"
                 "echo '{\"done\": 1, \"total\": 4}' >&3; printf '{\"done\": 3, \"total\": 4, \"message\": \"m\"}' >&3;"
                 "echo out"),
        &res);
    expect_ok(&res);
    assert_true(progress_calls >= 1 && progress_calls <= 2);
    assert_non_null(progress_last);
    assert_int_equal(json_integer_value(json_object_get(progress_last, "done")), 3);
    assert_int_equal(json_integer_value(json_object_get(progress_last, "total")), 4);
    assert_string_equal(json_string_value(json_object_get(progress_last, "message")), "m");
    assert_int_equal(json_integer_value(json_object_get(progress_last, "invalid_lines")), 3);
    assert_string_equal(json_string_value(res.output), "out");
    rt_step_result_clear(&res);

    json_decref(progress_last);
    progress_last = NULL;
    progress_calls = 0;
    run(&ctx, sh("echo quiet"), &res);
    expect_ok(&res);
    assert_int_equal(progress_calls, 0);
    rt_step_result_clear(&res);
}

static void test_memory_rlimit(void **state)
{
    rt_step_result res;
    json_t *with = json_pack("{s:[s,s,s,s,s],s:{s:s}}", "command", "dd", "if=/dev/zero",
                             "of=/dev/null", "bs=512M", "count=1", "rlimits", "memory", "64MB");
    run_default(with, &res);
    expect_fail(&res, true, "exit code");
    assert_non_null(strstr(res.error, "memory"));
    rt_step_result_clear(&res);

    /* The same limit leaves room for modest work. */
    with = json_pack("{s:[s,s,s,s,s],s:{s:I}}", "command", "dd", "if=/dev/zero", "of=/dev/null",
                     "bs=1M", "count=4", "rlimits", "memory", (json_int_t)64 << 20);
    run_default(with, &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
}

static void test_cpu_rlimit(void **state)
{
    rt_step_result res;
    json_t *with = sh("while :; do :; done");
    json_object_set_new(with, "rlimits", json_pack("{s:i}", "cpu", 1));
    json_object_set_new(with, "timeout", json_string("20s"));
    run_default(with, &res);
    expect_fail(&res, true, "SIGXCPU");
    rt_step_result_clear(&res);
}

static void test_env_allow_list(void **state)
{
    setenv("RT_TEST_ALLOWED", "yes", 1);
    setenv("RT_TEST_HIDDEN", "no", 1);
    setenv("RATCHET_SECRET_X", "topsecret", 1);
    rt_step_result res;
    json_t *with = json_pack("{s:[s],s:{s:s,s:i},s:[s,s]}", "command", "env", "env", "FOO", "bar",
                             "N", 7, "env_allow", "RT_TEST_ALLOWED", "RT_TEST_UNSET");
    run_default(with, &res);
    expect_ok(&res);
    const char *out = json_string_value(res.output);
    assert_non_null(out);
    static const char *const expected[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "RT_TEST_ALLOWED=yes",
                                           "FOO=bar", "N=7", "RATCHET_RUN_ID=run-1",
                                           "RATCHET_STEP_KEY=run-1:step-1", "RATCHET_ATTEMPT=2",
                                           "RATCHET_FENCE=5", "RATCHET_PROGRESS_FD=3", NULL};
    size_t lines = 1;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    for (size_t i = 0; expected[i]; i++) {
        if (!strstr(out, expected[i]))
            fail_msg("child env lacks %s:\n%s", expected[i], out);
    }
    assert_int_equal(lines, 9); /* nothing else at all */
    assert_null(strstr(out, "RT_TEST_HIDDEN"));
    assert_null(strstr(out, "topsecret"));
    rt_step_result_clear(&res);

    /* Engine variables cannot be allow-listed, even in a rendered `with`. */
    with = json_pack("{s:[s],s:[s]}", "command", "env", "env_allow", "RATCHET_SECRET_X");
    run_default(with, &res);
    expect_fail(&res, false, "RATCHET_");
    assert_null(strstr(res.error, "topsecret"));
    rt_step_result_clear(&res);
    unsetenv("RATCHET_SECRET_X");
}

static void test_huge_output(void **state)
{
    rt_step_result res;
    /* 5 MB of stderr before 8 MB of stdout: reading only one pipe would deadlock. */
    run_default(sh("head -c 5000000 /dev/zero | tr '\\0' b >&2; head -c 8000000 /dev/zero | tr '\\0' a"),
                &res);
    expect_ok(&res);
    assert_int_equal(json_string_length(res.output), 8000000);
    rt_step_result_clear(&res);

    json_t *with = sh("head -c 100000 /dev/zero | tr '\\0' a; sleep 30");
    json_object_set_new(with, "max_output_bytes", json_integer(1000));
    int64_t t0 = rt_mono_ms();
    run_default(with, &res);
    expect_fail(&res, false, "max_output_bytes");
    assert_true(rt_mono_ms() - t0 < 3000);
    rt_step_result_clear(&res);
}

static void test_spawn_failures(void **state)
{
    rt_step_result res;
    run_default(json_pack("{s:[s]}", "command", "no-such-command-ratchet"), &res);
    expect_fail(&res, false, "command not found");
    rt_step_result_clear(&res);

    run_default(json_pack("{s:[s],s:s}", "command", "/nonexistent/bin/x", "cwd", "/"), &res);
    expect_fail(&res, false, "cannot run");
    rt_step_result_clear(&res);

    run_default(json_pack("{s:[s],s:s}", "command", "pwd", "cwd", "/nonexistent-dir"), &res);
    expect_fail(&res, false, "cwd");
    rt_step_result_clear(&res);

    run_default(json_pack("{s:[s],s:s}", "command", "pwd", "cwd", "/tmp"), &res);
    expect_ok(&res);
    assert_string_equal(json_string_value(res.output), "/tmp");
    rt_step_result_clear(&res);
}

/* The child sees none of the engine's descriptors, its own process group, default signal
 * handling and an empty signal mask, whatever the calling thread had. */
static void test_child_isolation(void **state)
{
    int fd = open("/dev/null", O_RDONLY); /* deliberately not close-on-exec */
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 57), 57);
    close(fd);
    rt_step_result res;
    run_default(json_pack("{s:[s,s]}", "command", "ls", "/proc/self/fd"), &res);
    expect_ok(&res);
    /* 3: RATCHET_PROGRESS_FD; 4: ls's own dir handle */
    assert_string_equal(json_string_value(res.output), "0\n1\n2\n3\n4");
    rt_step_result_clear(&res);
    close(57);

    run_default(json_pack("{s:[s,s]}", "command", "cat", "/proc/self/stat"), &res);
    expect_ok(&res);
    int pid = 0, ppid = 0, pgrp = 0;
    char st;
    const char *stat = json_string_value(res.output);
    assert_int_equal(sscanf(strrchr(stat, ')') + 2, "%c %d %d", &st, &ppid, &pgrp), 3);
    assert_int_equal(sscanf(stat, "%d", &pid), 1);
    assert_int_equal(pgrp, pid);
    assert_int_equal(ppid, getpid());
    rt_step_result_clear(&res);

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    void (*prev)(int) = signal(SIGPIPE, SIG_IGN);
    run_default(json_pack("{s:[s,s,s,s]}", "command", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"), &res);
    signal(SIGPIPE, prev);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    expect_ok(&res);
    assert_string_equal(json_string_value(res.output), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000");
    rt_step_result_clear(&res);
}

static void *worker(void *p)
{
    struct worker_arg *w = p;
    volatile sig_atomic_t never = 0;
    for (int i = 0; i < 15; i++) {
        rt_step_ctx ctx = {.run_id = "r", .step_key = "r:s", .attempt = 1, .context = context,
                           .cancelled = &never};
        char script[64];
        snprintf(script, sizeof script, "cat >/dev/null; echo %d", w->id * 1000 + i);
        json_t *with = sh(script);
        rt_step_result res;
        memset(&res, 0, sizeof res);
        rt_step_exec.execute(&ctx, with, &res);
        if (res.outcome != RT_STEP_OK || json_integer_value(res.output) != w->id * 1000 + i)
            w->failures++;
        rt_step_result_clear(&res);
        json_decref(with);
    }
    return NULL;
}

/* Worker threads run steps side by side: no shared state, no descriptor crossing over. */
static void test_concurrent(void **state)
{
    int64_t t0 = rt_mono_ms();
    run_workers(worker, 4);
    assert_true(rt_mono_ms() - t0 < 20000);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void test_validate(void **state)
{
    static const struct {
        const char *with, *needle;
    } bad[] = {
        {"{}", "needs \"command\""},
        {"{\"command\": []}", "non-empty list"},
        {"{\"command\": \"ls -l\"}", "non-empty list"},
        {"{\"command\": [\"ls\", 3]}", "command[1]"},
        {"{\"command\": [\"\"]}", "command[0]"},
        {"{\"command\": [\"ls\"], \"shell\": true}", "no \"shell\""},
        {"{\"command\": [\"ls\"], \"bogus\": 1}", "unknown key \"bogus\""},
        {"{\"command\": [\"ls\"], \"timeout\": \"soon\"}", "timeout"},
        {"{\"command\": [\"ls\"], \"timeout\": 30}", "timeout"},
        {"{\"command\": [\"ls\"], \"rlimits\": {\"memory\": \"lots\"}}", "rlimits.memory"},
        {"{\"command\": [\"ls\"], \"rlimits\": {\"memory\": \"0MB\"}}", "rlimits.memory"},
        {"{\"command\": [\"ls\"], \"rlimits\": {\"cpu\": -1}}", "rlimits.cpu"},
        {"{\"command\": [\"ls\"], \"rlimits\": {\"cpu\": \"10\"}}", "rlimits.cpu"},
        {"{\"command\": [\"ls\"], \"rlimits\": {\"stack\": 1}}", "unknown key \"stack\""},
        {"{\"command\": [\"ls\"], \"non_retriable_exit_codes\": [\"3\"]}", "non_retriable_exit_codes[0]"},
        {"{\"command\": [\"ls\"], \"non_retriable_exit_codes\": [0]}", "non_retriable_exit_codes[0]"},
        {"{\"command\": [\"ls\"], \"stdin\": \"file\"}", "stdin"},
        {"{\"command\": [\"ls\"], \"env\": [\"A=1\"]}", "\"env\" must be an object"},
        {"{\"command\": [\"ls\"], \"env\": {\"A=B\": \"1\"}}", "not a valid variable name"},
        {"{\"command\": [\"ls\"], \"env\": {\"A\": {\"x\": 1}}}", "env.A"},
        {"{\"command\": [\"ls\"], \"env_allow\": [\"RATCHET_SECRET_X\"]}", "RATCHET_"},
        {"{\"command\": [\"ls\"], \"env_allow\": [\"RATCHET_DATABASE_URL\"]}", "RATCHET_"},
        {"{\"command\": [\"ls\"], \"env_allow\": \"HOME\"}", "env_allow"},
        {"{\"command\": [\"ls\"], \"max_output_bytes\": 0}", "max_output_bytes"},
        {"{\"command\": [\"ls\"], \"cwd\": \"\"}", "cwd"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(&rt_step_exec, bad[i].with, bad[i].needle);
    rt_error err;
    assert_int_equal(rt_step_exec.validate(NULL, &err), RT_ERR_INVALID);

    expect_valid(&rt_step_exec, "{\"command\": [\"ls\"]}");
    expect_valid(&rt_step_exec,
                 "{\"command\": [\"sh\", \"-c\", \"echo hi\"], \"cwd\": \"/tmp\", \"env\": {\"A\": \"1\", "
                 "\"B\": 2, \"C\": true}, \"env_allow\": [\"HOME\"], \"timeout\": \"5m\", "
                 "\"rlimits\": {\"cpu\": 60, \"memory\": \"256MB\", \"nofile\": 256}, "
                 "\"non_retriable_exit_codes\": [2, 64], \"stdin\": \"none\", \"max_output_bytes\": 1024}");
    expect_valid(&rt_step_exec, "{\"command\": [\"x\"], \"rlimits\": {\"memory\": \"1GB\"}}");
    expect_valid(&rt_step_exec, "{\"command\": [\"x\"], \"rlimits\": {\"memory\": \"512MiB\"}}");
    expect_valid(&rt_step_exec, "{\"command\": [\"x\"], \"rlimits\": {\"memory\": 268435456}}");
    /* Templates are checked after rendering, not at load time. */
    expect_valid(&rt_step_exec, "{\"command\": \"${{ steps.plan.output.argv }}\"}");
    expect_valid(&rt_step_exec,
                 "{\"command\": [\"x\", \"${{ event.data.id }}\"], \"timeout\": \"${{ event.data.t }}\", "
                 "\"env\": {\"TOKEN\": \"${{ secrets.TOKEN }}\"}, \"rlimits\": {\"memory\": \"${{ event.data.m }}\"}, "
                 "\"cwd\": \"${{ event.data.dir }}\"}");

    /* ...and then they must hold. */
    rt_step_result res;
    run_default(json_pack("{s:[s],s:i}", "command", "true", "timeout", 5), &res);
    expect_fail(&res, false, "timeout");
    rt_step_result_clear(&res);
}

static int setup(void **state)
{
    context = json_pack("{s:{s:s,s:{s:i}},s:{s:{s:{s:i}}},s:{s:s,s:s}}", "event", "name", "t.happened",
                        "data", "x", 1, "steps", "prev", "output", "n", 5, "run", "id", "run-1",
                        "workflow", "wf");
    return context ? 0 : -1;
}

static int teardown(void **state)
{
    json_decref(context);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_stdout),
        cmocka_unit_test(test_text_stdout),
        cmocka_unit_test(test_empty_stdout),
        cmocka_unit_test(test_stdin_context),
        cmocka_unit_test(test_stdin_not_read),
        cmocka_unit_test(test_nonzero_exit),
        cmocka_unit_test(test_non_retriable_exit_codes),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_leftovers_killed),
        cmocka_unit_test(test_step_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_memory_rlimit),
        cmocka_unit_test(test_cpu_rlimit),
        cmocka_unit_test(test_env_allow_list),
        cmocka_unit_test(test_huge_output),
        cmocka_unit_test(test_spawn_failures),
        cmocka_unit_test(test_child_isolation),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
