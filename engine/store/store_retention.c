/* store_retention.c — deleting what is older than the retention settings: finished runs (with
 * everything that belongs to them) and received events. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>

const char *const rt_store_sql_retention[S_COUNT] = {
    /* Finished runs only; their steps, attempts, items and approvals go with them. */
    [S_DELETE_OLD_RUNS] =
        "with d as (delete from ratchet.runs where id" ANY_OF("select id from ratchet.runs"
        " where finished_at < now() - $1::bigint * interval '1 millisecond' and status in"
        " ('completed', 'partial', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected')"
        " limit $2::int for update skip locked") " returning 1) select count(*) from d",
    [S_DELETE_OLD_EVENTS] =
        "with d as (delete from ratchet.events where id" ANY_OF("select id from ratchet.events"
        " where received_at < now() - $1::bigint * interval '1 millisecond' limit $2::int")
        " returning 1) select count(*) from d",
};

static rt_status delete_old(rt_store *st, stmt_id id, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    char age[24], lim[16];
    snprintf(age, sizeof age, "%lld", (long long)older_than_ms);
    snprintf(lim, sizeof lim, "%d", batch);
    const char *params[] = {age, lim};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, id, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    *deleted = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_delete_old_events(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    return delete_old(st, S_DELETE_OLD_EVENTS, older_than_ms, batch, deleted, err);
}

rt_status rt_store_delete_old_runs(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    return delete_old(st, S_DELETE_OLD_RUNS, older_than_ms, batch, deleted, err);
}
