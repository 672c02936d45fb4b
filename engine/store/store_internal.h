/* store_internal.h — what the store's own files share and nothing else may include: the
 * connection (struct rt_store), the statement table, and helpers that run its statements.
 * Every SQL statement of the hot paths has an id below; its text lives in the table of its
 * table family (store_runs.c, store_queue.c, store_events.c, store_retention.c,
 * store_bench.c), and store.c prepares it once per connection under the name "rt<id>".
 * Modules that keep their own SQL (store_schedules.c, store_approval.c, ...) run it with
 * rt_store_exec_prepared / rt_store_exec_params. */
#ifndef RT_STORE_INTERNAL_H
#define RT_STORE_INTERNAL_H

#include <libpq-fe.h>

#include "store.h"
#include "store_runctl.h" /* RT_RUN_PAUSE_SHIFT_MS_SQL, in RT_DUE_NOW_SQL */

/* Statement ids, in the order they were first written (the prepared names depend on it). */
typedef enum stmt_id {
    S_PUT_WORKFLOW,
    S_GET_DEFINITION,
    S_CREATE_RUNS,
    S_GET_RUN,
    S_GET_RUN_STEPS,
    S_LIST_RUNS,
    S_CLAIM_PICK,
    S_CKEY_LOCK,
    S_CKEY_COUNT,
    S_DEFER,
    S_CLAIM,
    S_CLAIM_QUICK,
    S_SLOW_DUE,
    S_CLAIM_CREATED,
    S_QUEUED_COUNT,
    S_MARK_RUNNING,
    S_LOAD_STEPS,
    S_LOCK_RUNS,
    S_LOCK_STEPS,
    S_LOCK_OWNED,
    S_APPLY_STEPS,
    S_APPLY_ENQUEUE,
    S_APPLY_HOT,
    S_APPLY_REQUEUE,
    S_APPLY_ATTEMPTS,
    S_APPLY_DROP,
    S_NOTIFY,
    S_RENEW,
    S_RELEASE,
    S_NEXT_DUE,
    S_INSERT_EVENTS,
    S_LIST_EVENTS,
    S_DELETE_OLD_EVENTS,
    S_LOCK_EVENT_NAMES_SHARED,
    S_LOCK_EVENT_NAMES,
    S_EVENTS_SINCE,
    S_INSERT_WAITS,
    S_APPLY_UNWAIT,
    S_FIND_WAITS,
    S_MATCH_WAITS_DELETE,
    S_MATCH_WAITS_STEPS,
    S_MATCH_WAITS_QUEUE,
    S_ACTIVE_RUNS,
    S_CANCEL_RUNS,
    S_CANCEL_QUEUE,
    S_WAKE_STEPS,
    S_WAKE_QUEUE,
    S_SWEEP_DEADLINES,
    S_RUN_SOURCE,
    S_COUNT_EVENTS,
    S_DELETE_OLD_RUNS,
    S_ITEMS_LOAD,
    S_ITEM_SAVE,
    S_OUTBOX_TAKE,
    S_OUTBOX_DONE,
    S_BENCH_LATENCY,
    S_BENCH_LATENCY_DONE,
    S_COUNT
} stmt_id;

/* The family tables: each holds the SQL of its own ids and NULL elsewhere; store.c looks an
 * id up in them when it prepares it. */
extern const char *const rt_store_sql_runs[S_COUNT];
extern const char *const rt_store_sql_queue[S_COUNT];
extern const char *const rt_store_sql_events[S_COUNT];
extern const char *const rt_store_sql_retention[S_COUNT];
extern const char *const rt_store_sql_bench[S_COUNT];

struct rt_store {
    PGconn *conn;
    char *url;
    bool prepared[S_COUNT];
    char **extra_prepared; /* names prepared through rt_store_exec_prepared on this connection */
    size_t n_extra, cap_extra;
    /* Definitions this connection stored or saw stored: rows are immutable, so a hash
     * seen once need not be written again (saves a statement per ingest batch). */
    char known_hashes[32][65];
    size_t n_known;
    char pending_hashes[8][65]; /* stored in the open transaction: known once it commits */
    size_t n_pending;
    char *listening; /* channel to re-LISTEN after a reconnect */
    char instance[17]; /* ratchet.instance.id, read once ("" until then) */
    bool defer_wake; /* runs created now send no NOTIFY (rt_store_defer_wake) */
    json_t *started; /* {workflow: runs} created in the open transaction: counted at its commit */
    uint64_t sessions; /* connections made so far (rt_store_session) */
};

/* SQL fragments shared by the families. */
/* "= any(array(SUB))": the rows a subquery picks (locking them, or taking the first n), as
 * an array computed once. Written "in (SUB)", the planner may run such a subquery (it
 * cannot be merged into the outer query) again for every row of the outer table, and
 * whether it does hangs on the statistics: with a queue that looked empty to them, the
 * deadline sweep scanned the whole queue once per queue item (t_flow.sh sweep_backlog). */
#define ANY_OF(sub) " = any(array(" sub "))"

/* An integer macro as SQL text ("limit " SQL_INT(RT_SWEEP_BATCH)): a constant, not a
 * parameter, so a generic plan knows it. */
#define SQL_INT_(x) #x
#define SQL_INT(x) SQL_INT_(x)
/* A batch's ids as an array, so a statement probes the table's index for them: joined
 * to jsonb_to_recordset (estimated at 100 rows whatever the batch) the planner prefers a
 * sequential scan of the whole table, which grows with every run ever kept. */
#define JSON_IDS(param, type) "array(select jsonb_array_elements_text(" param "::jsonb)::" type ")"
#define JSON_KEYS(param, key, type) "array(select (e->>'" key "')::" type " from jsonb_array_elements(" param "::jsonb) e)"

/* Times cross the boundary as unix milliseconds. */
#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"
#define TS(x) "to_timestamp((" x ")::double precision / 1000)"
/* Whole milliseconds (floored), for values shown to people. */
#define MSF(col) "floor(extract(epoch from " col ") * 1000)::bigint"

/* "Due now" for a queue item q woken by an event or a child run: unless its run is
 * paused, then it waits, shifted like the pause's other items, for the resume. */
#define RT_DUE_NOW_SQL                                                                                        \
    "now() + case when exists (select 1 from ratchet.runs r where r.id = q.run_id and r.status = 'paused')"   \
    " then " RT_RUN_PAUSE_SHIFT_MS_SQL " else 0 end * interval '1 millisecond'"

/* Counts n runs of workflow as started (ratchet_runs_started_total) when the open
 * transaction commits (at once outside one); a rollback forgets them (store.c). */
void rt_store_count_started(rt_store *st, const char *workflow, int n);

/* Running statements (store.c). rt_stmt_run runs a statement of the table, preparing it on
 * first use on this connection; *res (may be NULL) must be PQclear'ed by the caller on RT_OK. */
rt_status rt_stmt_run(rt_store *st, stmt_id id, int n, const char *const *params, PGresult **res, rt_error *err);
/* A statement whose first parameter is a JSON document (nothing is run when it is NULL or an
 * empty array) and whose optional second one is extra (no second parameter when extra is NULL). */
rt_status rt_stmt_json(rt_store *st, stmt_id id, json_t *doc, const char *extra, rt_error *err);
/* The same with exactly n (1 or 2) parameters; a NULL extra is SQL NULL. */
rt_status rt_stmt_json_n(rt_store *st, stmt_id id, json_t *doc, int n, const char *extra, rt_error *err);
/* A statement whose one parameter is a JSON document, returning its rows (*res as above). */
rt_status rt_stmt_json_rows(rt_store *st, stmt_id id, json_t *doc, PGresult **res, rt_error *err);
/* A statement returning one JSON document in its first cell: *out a new reference. */
rt_status rt_stmt_single_json(rt_store *st, stmt_id id, int n, const char *const *params, json_t **out,
                              rt_error *err);
/* A statement whose one parameter is a text[] of names (a JSON array of strings),
 * returning one JSON document. */
rt_status rt_stmt_names_json(rt_store *st, stmt_id id, json_t *names, json_t **out, rt_error *err);

/* Array literals for uuid[]/bigint[]/text[] parameters, malloc'ed (NULL: out of memory).
 * Only for values the engine made or checked: nothing is quoted. */
char *rt_sql_array_literal(const char *const *items, size_t n);
char *rt_sql_int_array_literal(const int64_t *ids, size_t n);
/* "{a,b}" of a JSON array of strings (event names, engine-made ids). */
rt_status rt_sql_names_literal(json_t *names, char **out);

/* One part of a completion batch (store.h rt_store_batch) as the JSON text its statement
 * takes (store_batch.c), malloc'ed; NULL when out of memory. For rt_store_apply and tests. */
typedef enum rt_batch_part {
    RT_BATCH_STEPS,
    RT_BATCH_ENQUEUE,
    RT_BATCH_REQUEUE,
    RT_BATCH_DEQUEUE,
    RT_BATCH_RUNS,
    RT_BATCH_ATTEMPTS,
    RT_BATCH_DROP,
    RT_BATCH_UNWAIT,
    RT_BATCH_WAKE,
    RT_BATCH_PART_COUNT
} rt_batch_part;
char *rt_store_batch_json(const rt_store_batch *b, rt_batch_part part);

/* The connection's cache of stored definitions (rt_store_put_workflow): a hash once surely
 * committed. */
void rt_store_remember_hash(rt_store *st, const char *hash);

/* For modules that keep their own SQL in their own file (store_<x>.c): runs sql as the
 * prepared statement `name` (prepared once per connection; names must be unique across
 * modules, e.g. "sched3"). *res (may be NULL) must be PQclear'ed. exec_json passes doc as
 * the one parameter and does nothing for an empty array. */
rt_status rt_store_exec_prepared(rt_store *st, const char *name, const char *sql, int n, const char *const *params,
                                 PGresult **res, rt_error *err);
rt_status rt_store_exec_json(rt_store *st, const char *name, const char *sql, json_t *doc, rt_error *err);
/* The same for statements too rare to prepare (PQexecParams); errors start with `what`. */
rt_status rt_store_exec_params(rt_store *st, const char *sql, int n, const char *const *params, PGresult **res,
                               rt_error *err, const char *what);
/* The JSON text in the first cell of r, which it takes (and clears): RT_ERR_NOT_FOUND when
 * there is no row or the cell is NULL. */
rt_status rt_store_result_json(PGresult *r, json_t **out, rt_error *err);
/* A libpq failure as an rt_status with the server's text (res may be NULL). */
rt_status rt_store_error(rt_store *st, const PGresult *res, rt_error *err, const char *what);

#endif
