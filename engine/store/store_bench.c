/* store_bench.c — the SQL of the benchmarks: store_bench.h (`ratchet bench scale` only) and
 * the Benchmarks section of store.h (stored events, latency, scratch databases). */
#include "store_bench.h"
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names share one namespace per connection with store.c's and the other modules'. */
#define FILL_STMT "rbench0"
#define COUNT_STMT "rbench1"

/* $1 workflow id, $2 its hash, $3 n, $4 the step ids (text[]). Ids are UUIDv7-shaped: the
 * creation time in ms in the first 48 bits (like rt_uuid7), so the primary key grows at
 * its right edge as it does in production, not at random places. */
static const char fill_sql[] =
    "with r as ("
    " insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, priority, output,"
    "  created_at, started_at, finished_at) "
    " select encode(overlay(uuid_send(gen_random_uuid()) placing"
    "   substring(int8send((extract(epoch from t.at) * 1000)::bigint) from 3) from 1 for 6), 'hex')::uuid,"
    "  $1, $2, 'completed', '{\"type\": \"manual\"}'::jsonb, '{\"name\": \"ratchet.manual\", \"data\": {}}'::jsonb,"
    "  2, '0'::jsonb, t.at, t.at + interval '2 milliseconds', t.at + interval '4 milliseconds'"
    " from (select now() - interval '7 days' * (1 - g::double precision / $3::bigint) as at"
    "  from generate_series(1, $3::bigint) g) t"
    " returning id, started_at, finished_at) "
    "insert into ratchet.steps (run_id, step_id, status, attempts, output, started_at, finished_at) "
    "select r.id, s.id, 'completed', 1, '0'::jsonb, r.started_at, r.finished_at"
    " from r cross join unnest($4::text[]) as s(id)";

static const char count_sql[] = "select count(*) from ratchet.runs where workflow_id = $1 and status = $2";

rt_status rt_store_bench_fill_finished(rt_store *st, const rt_workflow *wf, int64_t n, rt_error *err)
{
    rt_status s = rt_store_put_workflow(st, wf, err);
    if (s != RT_OK)
        return s;
    size_t len = 3;
    for (size_t i = 0; i < wf->n_steps; i++)
        len += strlen(wf->steps[i].id) * 2 + 3;
    char *ids = malloc(len), *p = ids;
    if (!ids)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    *p++ = '{';
    for (size_t i = 0; i < wf->n_steps; i++) /* step ids are [a-z0-9._-]: no quoting needed */
        p += sprintf(p, i ? ",%s" : "%s", wf->steps[i].id);
    *p++ = '}';
    *p = '\0';
    char count[24];
    snprintf(count, sizeof count, "%lld", (long long)n);
    const char *params[] = {wf->id, wf->hash, count, ids};
    s = rt_store_exec_prepared(st, FILL_STMT, fill_sql, 4, params, NULL, err);
    free(ids);
    if (s == RT_OK)
        s = rt_store_exec_simple(st, "vacuum analyze ratchet.runs, ratchet.steps", err);
    return s;
}

rt_status rt_store_bench_count_runs(rt_store *st, const char *workflow_id, const char *status, int64_t *n,
                                    rt_error *err)
{
    const char *params[] = {workflow_id, status};
    PGresult *r = NULL;
    *n = 0;
    rt_status s = rt_store_exec_prepared(st, COUNT_STMT, count_sql, 2, params, &r, err);
    if (s == RT_OK)
        *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return s;
}

#define BENCH_LATENCY_SQL(col)                                                                        \
    "select count(*), coalesce(percentile_cont(0.5) within group (order by lat), 0),"                   \
    " coalesce(percentile_cont(0.99) within group (order by lat), 0) from ("                            \
    " select extract(epoch from s." col ") * 1000"                                                      \
    "  - (r.event->'data'->>'sent_us')::double precision / 1000 as lat"                                 \
    " from ratchet.runs r cross join lateral (select s." col " from ratchet.steps s where s.run_id = r.id"   \
    "  and s.status = 'completed' order by s." col " limit 1) s"                                          \
    " where r.created_at >= " TS("$1::bigint") ") t"

const char *const rt_store_sql_bench[S_COUNT] = {
    [S_COUNT_EVENTS] = "select count(*) from ratchet.events where name = $1",
    /* bench events: ms from the publisher's clock (data.sent_us) to the first step
     * starting (S_BENCH_LATENCY) or finishing, i.e. committed (S_BENCH_LATENCY_DONE). */
    [S_BENCH_LATENCY] = BENCH_LATENCY_SQL("started_at"),
    [S_BENCH_LATENCY_DONE] = BENCH_LATENCY_SQL("finished_at"),
};

rt_status rt_store_count_events(rt_store *st, const char *name, int64_t *n, rt_error *err)
{
    const char *params[] = {name};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_COUNT_EVENTS, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return RT_OK;
}

/* sql, unprepared (planned for these parameters each time), that must return one row. */
static rt_status one_row(rt_store *st, const char *sql, int n, const char *const *params, PGresult **out,
                         rt_error *err)
{
    rt_status s = rt_store_exec_params(st, sql, n, params, out, err, "database");
    if (s == RT_OK && PQntuples(*out) != 1) {
        s = rt_error_set(err, RT_ERR_INTERNAL, "database: %d rows where one was expected", PQntuples(*out));
        PQclear(*out);
        *out = NULL;
    }
    return s;
}

rt_status rt_store_bench_latency(rt_store *st, int64_t since_ms, bool finished, int64_t *n, double *p50, double *p99,
                                 rt_error *err)
{
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    const char *params[] = {since};
    /* Planned for this $1 each time (not prepared): a generic plan cannot use runs_by_created
     * for "created since", scans every run and took ~80 ms a call, polled while an idle
     * event was on its way, on one of the machine's two cores. */
    PGresult *r = NULL;
    rt_status s = one_row(st, rt_store_sql_bench[finished ? S_BENCH_LATENCY_DONE : S_BENCH_LATENCY], 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *p50 = strtod(PQgetvalue(r, 0, 1), NULL);
    *p99 = strtod(PQgetvalue(r, 0, 2), NULL);
    PQclear(r);
    return RT_OK;
}

static rt_status database_ddl(rt_store *st, const char *verb, const char *name, rt_error *err)
{
    char *quoted = PQescapeIdentifier(st->conn, name, strlen(name));
    if (!quoted)
        return rt_error_set(err, RT_ERR_INVALID, "bad database name");
    char sql[300];
    snprintf(sql, sizeof sql, "%s %s", verb, quoted);
    PQfreemem(quoted);
    return rt_store_exec_simple(st, sql, err);
}

rt_status rt_store_create_database(rt_store *st, const char *name, rt_error *err)
{
    return database_ddl(st, "create database", name, err);
}

rt_status rt_store_drop_database(rt_store *st, const char *name, rt_error *err)
{
    return database_ddl(st, "drop database if exists", name, err);
}

static rt_status scalar_text(rt_store *st, const char *sql, const char *param, char *buf, size_t len, rt_error *err)
{
    const char *params[] = {param};
    PGresult *r = NULL;
    rt_status s = one_row(st, sql, param ? 1 : 0, params, &r, err);
    if (s != RT_OK)
        return s;
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_queue_size(rt_store *st, int64_t *n, rt_error *err)
{
    char buf[32];
    rt_status s = scalar_text(st, "select count(*) from ratchet.queue", NULL, buf, sizeof buf, err);
    if (s == RT_OK)
        *n = strtoll(buf, NULL, 10);
    return s;
}

rt_status rt_store_setting(rt_store *st, const char *name, char *buf, size_t len, rt_error *err)
{
    return scalar_text(st, "select current_setting($1)", name, buf, len, err);
}
