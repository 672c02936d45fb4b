/* store_api.c — the API's own SQL, run with PQexecParams (parameterized, not prepared:
 * none of it is on a hot path except the run list, whose plan is cheap). */
#include "store_api.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *text_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *jsonb_or_null(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    json_t *v = json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

rt_status rt_store_api_list_runs(rt_store *st, const rt_api_run_filter *f, json_t **out, bool *more,
                                 int64_t *last_us, char last_id[37], rt_error *err)
{
    /* One more row than asked says whether there is a next page. The row comparison
     * walks runs_by_created (or runs_by_workflow / runs_by_status) from the cursor on. */
    static const char sql[] =
        "select r.id::text, r.workflow_id, r.status, r.trigger::text, ratchet.ts(r.created_at),"
        " ratchet.ts(r.started_at), ratchet.ts(r.finished_at), r.output::text, r.error, r.entity_id,"
        " (extract(epoch from r.created_at) * 1000000)::bigint "
        "from ratchet.runs r "
        "where ($1::text is null or r.workflow_id = $1) and ($2::text is null or r.status = $2)"
        " and ($3::text is null or r.entity_id = $3)"
        " and ($4::bigint is null or (r.created_at, r.id) <"
        "  (timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::uuid)) "
        "order by r.created_at desc, r.id desc limit $6::int";
    char cursor_us[24], limit[16];
    snprintf(cursor_us, sizeof cursor_us, "%lld", (long long)f->cursor_us);
    snprintf(limit, sizeof limit, "%d", f->limit + 1);
    const char *params[] = {f->workflow, f->status, f->entity_id, f->has_cursor ? cursor_us : NULL,
                            f->has_cursor ? f->cursor_id : NULL, limit};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 6, params, &r, err, "listing runs");
    if (s != RT_OK)
        return s;
    int rows = PQntuples(r);
    *more = rows > f->limit;
    if (*more)
        rows = f->limit;
    json_t *arr = json_array();
    for (int i = 0; i < rows; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "workflow", json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "status", json_string(PQgetvalue(r, i, 2)));
        json_object_set_new(o, "trigger", jsonb_or_null(r, i, 3));
        json_object_set_new(o, "created_at", text_or_null(r, i, 4));
        json_object_set_new(o, "started_at", text_or_null(r, i, 5));
        json_object_set_new(o, "finished_at", text_or_null(r, i, 6));
        json_object_set_new(o, "output", jsonb_or_null(r, i, 7));
        json_object_set_new(o, "error", text_or_null(r, i, 8));
        json_object_set_new(o, "entity_id", text_or_null(r, i, 9));
        json_array_append_new(arr, o);
    }
    if (rows > 0) {
        *last_us = strtoll(PQgetvalue(r, rows - 1, 10), NULL, 10);
        snprintf(last_id, 37, "%s", PQgetvalue(r, rows - 1, 0));
    }
    PQclear(r);
    *out = arr;
    return RT_OK;
}

rt_status rt_store_api_run_info(rt_store *st, const char *run_id, rt_api_run_info *out, rt_error *err)
{
    static const char sql[] = "select r.workflow_id, r.status, r.entity_id,"
                              " coalesce(v.definition->'system' = 'true'::jsonb, false) "
                              "from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash "
                              "where r.id = $1::uuid";
    const char *params[] = {run_id};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 1, params, &r, err, "reading a run");
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", run_id);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->workflow_id, sizeof out->workflow_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, 0, 1));
    out->has_entity = !PQgetisnull(r, 0, 2);
    if (out->has_entity)
        snprintf(out->entity_id, sizeof out->entity_id, "%s", PQgetvalue(r, 0, 2));
    out->system = PQgetvalue(r, 0, 3)[0] == 't';
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_api_find_dedupe(rt_store *st, const char *workflow_id, const char *dedupe_key, char id[37],
                                   rt_error *err)
{
    static const char sql[] = "select id::text from ratchet.runs where workflow_id = $1 and dedupe_key = $2";
    const char *params[] = {workflow_id, dedupe_key};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 2, params, &r, err, "reading a run by idempotency key");
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "no run of %s with that key", workflow_id);
    }
    snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_api_queue_stats(rt_store *st, int64_t depth[4], double *oldest_age_s, rt_error *err)
{
    /* A claimed slow item's run_at is its lease's end, so "due" means runnable: never
     * claimed, or its lease expired. */
    static const char sql[] = "select priority, count(*), extract(epoch from now() - min(run_at))::float8 "
                              "from ratchet.queue where run_at <= now() group by priority";
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, sql, 0, NULL, &r, err, "reading queue depth");
    if (s != RT_OK)
        return s;
    for (int p = 0; p < 4; p++)
        depth[p] = 0;
    *oldest_age_s = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int p = atoi(PQgetvalue(r, i, 0));
        if (p >= 0 && p < 4)
            depth[p] += strtoll(PQgetvalue(r, i, 1), NULL, 10);
        double age = strtod(PQgetvalue(r, i, 2), NULL);
        if (age > *oldest_age_s)
            *oldest_age_s = age;
    }
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_api_ping(rt_store *st, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, "select 1", 0, NULL, &r, err, "database check");
    PQclear(r);
    return s;
}
