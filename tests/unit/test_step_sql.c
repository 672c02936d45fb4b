/* test_step_sql.c — the sql step against a real PostgreSQL named by
 * RATCHET_TEST_DATABASE_URL. Without it the suite fails, unless RATCHET_TEST_ALLOW_SKIP=1,
 * in which case every test is skipped (CI never counts a skip as a pass). */
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "step.h"
#include "util.h"

#include "test_helpers.h"

extern const rt_step_type rt_step_sql;

static const char *db_url;
static char table[64];

static void need_db(void)
{
    if (db_url && *db_url)
        return;
    const char *allow = getenv("RATCHET_TEST_ALLOW_SKIP");
    if (allow && strcmp(allow, "1") == 0)
        skip();
    fail_msg("RATCHET_TEST_DATABASE_URL is not set: point it at a PostgreSQL server, e.g. "
             "postgresql://postgres@127.0.0.1:55432/postgres (or set RATCHET_TEST_ALLOW_SKIP=1 to skip)");
}

static volatile sig_atomic_t cancel_flag;

static void run_env(const rt_step_env *env, int64_t deadline, json_t *with, rt_step_result *res)
{
    rt_step_ctx ctx = {.env = env, .workflow_id = "wf", .run_id = "run-1", .step_id = "q",
                       .step_key = "run-1:q", .attempt = 1, .deadline_mono_ms = deadline,
                       .cancelled = &cancel_flag};
    run_step(&rt_step_sql, &ctx, with, res);
}

static void run(json_t *with, rt_step_result *res)
{
    rt_step_env env = {.database_url = db_url};
    run_env(&env, 0, with, res);
}

/* Runs a query with no params and returns rows[0] (a new reference). */
static json_t *first_row(const char *sql)
{
    rt_step_result res;
    run(json_pack("{s:s}", "query", sql), &res);
    if (res.outcome != RT_STEP_OK)
        fail_msg("%s: %s", sql, res.error);
    json_t *row = json_incref(json_array_get(json_object_get(res.output, "rows"), 0));
    rt_step_result_clear(&res);
    return row;
}

static void expect_json(json_t *row, const char *key, const char *json_text)
{
    json_t *want = json_loads(json_text, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    json_t *got = json_object_get(row, key);
    if (!json_equal(got, want) || json_typeof(got) != json_typeof(want)) {
        char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : strdup("(absent)");
        fail_msg("column %s: expected %s, got %s", key, json_text, g);
    }
    json_decref(want);
}

static void test_select_types(void **state)
{
    need_db();
    json_t *row = first_row(
        "select 1::int2 a, 2::int4 b, 9007199254740993::int8 c, 1.5::float8 d, 0.25::float4 e, "
        "12.25::numeric f, 123456789012345678901234567890.123::numeric g, 100.00::numeric h, "
        "'NaN'::numeric i, true t, false u, '{\"x\": [1, 2]}'::jsonb j, '[1,\"a\"]'::json k, "
        "null::text n, null::int4 m, 'hi ☃'::text s, '2024-01-02'::date dt, 'NaN'::float8 fn, "
        "(select sum(x) from generate_series(1, 3) x) total, 0.1::numeric tenth");
    expect_json(row, "a", "1");
    expect_json(row, "b", "2");
    expect_json(row, "c", "9007199254740993"); /* int8 beyond 2^53 stays exact */
    expect_json(row, "d", "1.5");
    expect_json(row, "e", "0.25");
    expect_json(row, "f", "12.25");
    expect_json(row, "g", "\"123456789012345678901234567890.123\"");
    expect_json(row, "h", "100");
    expect_json(row, "i", "\"NaN\"");
    expect_json(row, "t", "true");
    expect_json(row, "u", "false");
    expect_json(row, "j", "{\"x\": [1, 2]}");
    expect_json(row, "k", "[1, \"a\"]");
    expect_json(row, "n", "null");
    expect_json(row, "m", "null");
    expect_json(row, "s", "\"hi ☃\"");
    expect_json(row, "dt", "\"2024-01-02\"");
    expect_json(row, "fn", "\"NaN\"");
    expect_json(row, "total", "6"); /* sum(int) is bigint; sum(bigint) would be numeric */
    expect_json(row, "tenth", "0.1");
    json_decref(row);

    rt_step_result res;
    run(json_pack("{s:s}", "query", "select x from generate_series(1, 3) x where x > 5"), &res);
    expect_ok(&res);
    assert_int_equal(json_array_size(json_object_get(res.output, "rows")), 0);
    assert_int_equal(json_integer_value(json_object_get(res.output, "row_count")), 0);
    rt_step_result_clear(&res);
}

static void test_insert_params_row_count(void **state)
{
    need_db();
    char sql[256];
    rt_step_result res;
    snprintf(sql, sizeof sql, "create table %s (id serial primary key, name text unique, n int, doc jsonb)", table);
    run(json_pack("{s:s}", "query", sql), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);

    snprintf(sql, sizeof sql, "insert into %s (name, n, doc) values ($1, $2, $3), ($4, $5, $6)", table);
    run(json_pack("{s:s,s:[s,i,{s:[i,i]},s,n,n]}", "query", sql, "params", "a", 1, "k", 1, 2, "b"), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "row_count")), 2);
    assert_int_equal(json_array_size(json_object_get(res.output, "rows")), 0);
    rt_step_result_clear(&res);

    snprintf(sql, sizeof sql, "insert into %s (name, n) values ($1, $2) returning id, name", table);
    run(json_pack("{s:s,s:[s,s]}", "query", sql, "params", "c", "30"), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "row_count")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res.output, "rows"), 0), "name")), "c");
    rt_step_result_clear(&res);

    snprintf(sql, sizeof sql, "update %s set n = n + 1 where n is not null", table);
    run(json_pack("{s:s}", "query", sql), &res);
    expect_ok(&res);
    assert_int_equal(json_integer_value(json_object_get(res.output, "row_count")), 2);
    rt_step_result_clear(&res);

    snprintf(sql, sizeof sql, "select doc -> 'k' as k, doc is null as no_doc, n from %s where name = $1", table);
    run(json_pack("{s:s,s:[s]}", "query", sql, "params", "a"), &res);
    expect_ok(&res);
    json_t *row = json_array_get(json_object_get(res.output, "rows"), 0);
    expect_json(row, "k", "[1, 2]");
    expect_json(row, "n", "2");
    rt_step_result_clear(&res);
    run(json_pack("{s:s,s:[s]}", "query", sql, "params", "b"), &res);
    expect_ok(&res);
    row = json_array_get(json_object_get(res.output, "rows"), 0);
    expect_json(row, "no_doc", "true");
    expect_json(row, "n", "null");
    rt_step_result_clear(&res);

    /* A constraint violation will not go away by retrying. */
    snprintf(sql, sizeof sql, "insert into %s (name) values ($1)", table);
    run(json_pack("{s:s,s:[s]}", "query", sql, "params", "a"), &res);
    expect_fail(&res, false, "SQLSTATE 23505");
    assert_string_equal(json_string_value(json_object_get(res.error_detail, "sqlstate")), "23505");
    assert_non_null(json_object_get(res.error_detail, "constraint"));
    rt_step_result_clear(&res);
}

static void test_param_types(void **state)
{
    need_db();
    rt_step_result res;
    run(json_pack("{s:s,s:[n,s,i,f,b,{s:[i,s]},[i,i]]}", "query",
                  "select $1::text is null as is_null, $2::text as s, $3::int + 1 as i, $4::float8 * 2 as f, "
                  "$5::bool as b, $6::jsonb -> 'a' as j, $7::jsonb as arr",
                  "params", "text", 41, 1.25, 1, "a", 1, "z", 1, 2),
        &res);
    expect_ok(&res);
    json_t *row = json_array_get(json_object_get(res.output, "rows"), 0);
    expect_json(row, "is_null", "true");
    expect_json(row, "s", "\"text\"");
    expect_json(row, "i", "42");
    expect_json(row, "f", "2.5");
    expect_json(row, "b", "true");
    expect_json(row, "j", "[1, \"z\"]");
    expect_json(row, "arr", "[1, 2]");
    rt_step_result_clear(&res);

    /* Parameters are values, never SQL. */
    run(json_pack("{s:s,s:[s]}", "query", "select $1::text as v", "params", "x'; drop table pg_class; --"), &res);
    expect_ok(&res);
    expect_json(json_array_get(json_object_get(res.output, "rows"), 0), "v", "\"x'; drop table pg_class; --\"");
    rt_step_result_clear(&res);
}

static void test_syntax_error(void **state)
{
    need_db();
    rt_step_result res;
    run(json_pack("{s:s}", "query", "selec 1"), &res);
    expect_fail(&res, false, "SQLSTATE 42601");
    assert_non_null(strstr(res.error, "syntax error"));
    assert_string_equal(json_string_value(json_object_get(res.error_detail, "sqlstate")), "42601");
    assert_non_null(json_object_get(res.error_detail, "position"));
    rt_step_result_clear(&res);

    run(json_pack("{s:s}", "query", "select 1; select 2"), &res); /* one statement per step */
    expect_fail(&res, false, "SQLSTATE 42601");
    rt_step_result_clear(&res);

    run(json_pack("{s:s}", "query", "select * from no_such_table_here"), &res);
    expect_fail(&res, false, "SQLSTATE 42P01");
    rt_step_result_clear(&res);

    /* The connection stays usable after an error. */
    json_t *row = first_row("select 7 as n");
    expect_json(row, "n", "7");
    json_decref(row);
}

static void test_timeout_retriable(void **state)
{
    need_db();
    rt_step_env env = {.database_url = db_url};
    rt_step_result res;
    int64_t t0 = rt_mono_ms();
    run_env(&env, rt_mono_ms() + 500, json_pack("{s:s}", "query", "select pg_sleep(10)"), &res);
    expect_fail(&res, true, "57014");
    assert_true(rt_mono_ms() - t0 < 3000);
    rt_step_result_clear(&res);

    /* The next step on this connection has no timeout left over. */
    json_t *row = first_row("select current_setting('statement_timeout') as t");
    expect_json(row, "t", "\"0\"");
    json_decref(row);
}

static void *set_cancel_later(void *arg)
{
    usleep(300 * 1000);
    cancel_flag = 1;
    return NULL;
}

static void test_cancel(void **state)
{
    need_db();
    cancel_flag = 0;
    pthread_t th;
    pthread_create(&th, NULL, set_cancel_later, NULL);
    int64_t t0 = rt_mono_ms();
    rt_step_result res;
    run(json_pack("{s:s}", "query", "select pg_sleep(10)"), &res);
    pthread_join(th, NULL);
    cancel_flag = 0;
    expect_fail(&res, true, "cancelled");
    assert_true(rt_mono_ms() - t0 < 3000);
    rt_step_result_clear(&res);
}

/* Each step starts a clean session: no open transaction, no SET from a previous step. */
static void test_session_isolation(void **state)
{
    need_db();
    rt_step_result res;
    run(json_pack("{s:s}", "query", "set application_name = 'leaked'"), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    json_t *row = first_row("select current_setting('application_name') as a");
    expect_json(row, "a", "\"ratchet-sql\"");
    json_decref(row);

    /* A BEGIN without COMMIT is rolled back: the next step's work is committed on its own
     * and visible to everyone else at once. */
    run(json_pack("{s:s}", "query", "begin"), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    char sql[128];
    snprintf(sql, sizeof sql, "create table %s_tx (x int)", table);
    run(json_pack("{s:s}", "query", sql), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    PGconn *other = PQconnectdb(db_url);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    snprintf(sql, sizeof sql, "select to_regclass('%s_tx') is not null", table);
    PGresult *r = PQexec(other, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    snprintf(sql, sizeof sql, "drop table %s_tx", table);
    PQclear(PQexec(other, sql));
    PQfinish(other);

    /* Temp tables and session locks end with the step too. */
    run(json_pack("{s:s}", "query", "select pg_advisory_lock(4242)"), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);
    row = first_row("select count(*) as held from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()");
    expect_json(row, "held", "0");
    json_decref(row);
}

/* One connection per thread, reused; a connection the server dropped is replaced. */
static void test_connection_reuse_and_reconnect(void **state)
{
    need_db();
    json_t *a = first_row("select pg_backend_pid() as pid");
    json_t *b = first_row("select pg_backend_pid() as pid");
    assert_true(json_equal(a, b));

    PGconn *admin = PQconnectdb(db_url);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    char sql[96];
    snprintf(sql, sizeof sql, "select pg_terminate_backend(%lld)",
             (long long)json_integer_value(json_object_get(a, "pid")));
    PGresult *r = PQexec(admin, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(admin);
    usleep(200 * 1000);

    json_t *c = first_row("select pg_backend_pid() as pid");
    assert_false(json_equal(a, c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_app_database_preferred(void **state)
{
    need_db();
    rt_step_env env = {.database_url = "postgresql://nobody:pw@127.0.0.1:1/none", .app_database_url = db_url};
    rt_step_result res;
    run_env(&env, 0, json_pack("{s:s,s:s}", "query", "select 1 as one", "database", "app"), &res);
    expect_ok(&res);
    rt_step_result_clear(&res);

    rt_step_env none = {0};
    run_env(&none, 0, json_pack("{s:s}", "query", "select 1"), &res);
    expect_fail(&res, false, "no database configured");
    rt_step_result_clear(&res);
}

static void expect_no_secret(const rt_step_result *res, const char *secret)
{
    assert_null(strstr(res->error, secret));
    if (res->error_detail) {
        char *d = json_dumps(res->error_detail, 0);
        assert_null(strstr(d, secret));
        free(d);
    }
}

static void test_bad_connection(void **state)
{
    /* Needs no server: nothing listens on port 1. */
    static const char *const urls[] = {
        "postgresql://app:secret123@127.0.0.1:1/appdb",
        "host=127.0.0.1 port=1 user=app password=secret123 dbname=appdb",
        "postgresql://app:secret123@127.0.0.1:1/appdb?connect_timeout=2",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        rt_step_env env = {.database_url = urls[i]};
        rt_step_result res;
        run_env(&env, 0, json_pack("{s:s}", "query", "select 1"), &res);
        expect_fail(&res, true, "cannot connect");
        expect_no_secret(&res, "secret123");
        rt_step_result_clear(&res);
    }
    /* libpq would quote the malformed part of this URL, which is the password. */
    rt_step_env env = {.database_url = "postgresql://app:secret123%zz@127.0.0.1:1/appdb"};
    rt_step_result res;
    run_env(&env, 0, json_pack("{s:s}", "query", "select 1"), &res);
    expect_fail(&res, false, "not a valid connection string");
    expect_no_secret(&res, "secret123");
    rt_step_result_clear(&res);
}

static void *worker(void *p)
{
    struct worker_arg *w = p;
    rt_step_env env = {.database_url = db_url};
    volatile sig_atomic_t never = 0;
    for (int i = 0; i < 25; i++) {
        rt_step_ctx ctx = {.env = &env, .run_id = "r", .step_id = "s", .step_key = "r:s", .attempt = 1,
                           .cancelled = &never};
        json_t *with = json_pack("{s:s,s:[i,i]}", "query", "select $1::int * 1000 + $2::int as v", "params", w->id, i);
        rt_step_result res;
        memset(&res, 0, sizeof res);
        rt_step_sql.execute(&ctx, with, &res);
        json_t *v = json_object_get(json_array_get(json_object_get(res.output, "rows"), 0), "v");
        if (res.outcome != RT_STEP_OK || json_integer_value(v) != w->id * 1000 + i)
            w->failures++;
        rt_step_result_clear(&res);
        json_decref(with);
    }
    return NULL; /* the thread's connection is closed as it exits */
}

static void test_threads(void **state)
{
    need_db();
    run_workers(worker, 4);
}

static void test_validate(void **state)
{
    static const struct {
        const char *with, *needle;
    } bad[] = {
        {"{}", "needs \"query\""},
        {"{\"query\": \"\"}", "non-empty string"},
        {"{\"query\": 5}", "non-empty string"},
        {"{\"query\": \"select * from t where id = ${{ event.data.id }}\"}", "params"},
        {"{\"query\": \"${{ steps.plan.output.sql }}\"}", "params"},
        {"{\"query\": \"select 1\", \"params\": {\"a\": 1}}", "\"params\" must be a list"},
        {"{\"query\": \"select 1\", \"database\": \"engine\"}", "\"database\" must be \"app\""},
        {"{\"query\": \"select 1\", \"timeout\": \"5s\"}", "unknown key \"timeout\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(&rt_step_sql, bad[i].with, bad[i].needle);
    rt_error err;
    assert_int_equal(rt_step_sql.validate(NULL, &err), RT_ERR_INVALID);

    expect_valid(&rt_step_sql, "{\"query\": \"select 1\"}");
    expect_valid(&rt_step_sql,
                 "{\"query\": \"insert into t values ($1, $2)\", \"params\": [\"${{ schedule.date }}\", "
                 "\"${{ steps.hash.output.rows[0].hash }}\"], \"database\": \"app\"}");
    expect_valid(&rt_step_sql, "{\"query\": \"select 1\", \"params\": \"${{ steps.prev.output.params }}\"}");
}

static int setup(void **state)
{
    db_url = getenv("RATCHET_TEST_DATABASE_URL");
    snprintf(table, sizeof table, "rt_test_sql_%d", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    if (db_url && *db_url) {
        PGconn *c = PQconnectdb(db_url);
        char sql[128];
        snprintf(sql, sizeof sql, "drop table if exists %s", table);
        PQclear(PQexec(c, sql));
        PQfinish(c);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_bad_connection),
        cmocka_unit_test(test_select_types),
        cmocka_unit_test(test_insert_params_row_count),
        cmocka_unit_test(test_param_types),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_timeout_retriable),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_session_isolation),
        cmocka_unit_test(test_connection_reuse_and_reconnect),
        cmocka_unit_test(test_app_database_preferred),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
