/* store.c — the connection (open, reconnect, LISTEN/NOTIFY), transactions, migrations, and
 * the statement runner: every statement of the table (store_internal.h) is prepared once per
 * connection and run with parameters (never interpolated). Batches travel as one jsonb
 * parameter so a whole batch of completions costs a handful of round trips and one commit.
 * The statements themselves live in their table family's file (store_runs.c, ...). */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "migrations.h"
#include "util.h"

/* The SQL of a statement id, from the table of its family. */
static const char *stmt_sql(stmt_id id)
{
    static const char *const *const families[] = {rt_store_sql_runs, rt_store_sql_queue, rt_store_sql_events,
                                                   rt_store_sql_retention, rt_store_sql_bench};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i][id])
            return families[i][id];
    return NULL;
}

static rt_status translate(PGconn *conn, const PGresult *res, rt_error *err, const char *what)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "%s: database connection lost: %s", what,
                            PQerrorMessage(conn));
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    char clean[600];
    snprintf(clean, sizeof clean, "%s", msg ? msg : "");
    size_t n = strlen(clean);
    while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    rt_status code = RT_ERR_INTERNAL;
    if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
        code = RT_ERR_CONFLICT;
    else if (state && (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P03")))
        code = RT_ERR_UNAVAILABLE;
    else if (state && (!strcmp(state, "22P02") || !strcmp(state, "23505")))
        code = RT_ERR_INVALID;
    return rt_error_set(err, code, "%s: %s (SQLSTATE %s)", what, clean, state ? state : "?");
}

/* Server NOTICEs ("schema already exists, skipping") are not for the user's terminal. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    rt_log(RT_LOG_DEBUG, NULL, "database notice: %s", message);
}

static rt_status connect_db(rt_store *st, rt_error *err)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {st->url, "ratchet", "10", NULL};
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (!st->conn)
        return rt_error_set(err, RT_ERR_NOMEM, "database: out of memory");
    if (PQstatus(st->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        rt_status s = rt_error_set(err, RT_ERR_UNAVAILABLE, "cannot connect to the database: %s",
                                   PQerrorMessage(st->conn));
        size_t n = strlen(err ? err->msg : "");
        while (err && n > 0 && err->msg[n - 1] == '\n')
            err->msg[--n] = '\0';
        PQfinish(st->conn);
        st->conn = NULL;
        return s;
    }
    st->sessions++;
    memset(st->prepared, 0, sizeof st->prepared);
    st->n_known = 0;
    for (size_t i = 0; i < st->n_extra; i++)
        free(st->extra_prepared[i]);
    st->n_extra = 0;
    PQsetNoticeProcessor(st->conn, ignore_notice, NULL);
    PGresult *r = PQexec(st->conn, "set synchronous_commit = on; set lock_timeout = '30s'");
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_open(const char *url, rt_store **out, rt_error *err)
{
    rt_store *st = calloc(1, sizeof *st);
    if (!st)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    st->url = strdup(url);
    rt_status s = connect_db(st, err);
    if (s != RT_OK) {
        rt_store_close(st);
        return s;
    }
    *out = st;
    return RT_OK;
}

void rt_store_close(rt_store *st)
{
    if (!st)
        return;
    if (st->conn)
        PQfinish(st->conn);
    free(st->url);
    free(st->listening);
    json_decref(st->started);
    for (size_t i = 0; i < st->n_extra; i++)
        free(st->extra_prepared[i]);
    free(st->extra_prepared);
    free(st);
}

bool rt_store_healthy(rt_store *st)
{
    return st->conn && PQstatus(st->conn) == CONNECTION_OK;
}

uint64_t rt_store_session(const rt_store *st)
{
    return st->sessions;
}

rt_status rt_store_reconnect(rt_store *st, rt_error *err)
{
    st->n_pending = 0; /* the open transaction, if any, is gone with the connection */
    json_object_clear(st->started);
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    rt_status s = connect_db(st, err);
    if (s == RT_OK && st->listening) {
        char *ch = st->listening;
        st->listening = NULL;
        s = rt_store_listen(st, ch, err);
        free(ch);
    }
    return s;
}

/* Checks a statement's result: on success hands it to *res (or clears it when res is
 * NULL), on failure clears it and translates the server's error. */
static rt_status take_result(rt_store *st, PGresult *r, PGresult **res, rt_error *err, const char *what)
{
    ExecStatusType es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        rt_status s = translate(st->conn, r, err, what);
        PQclear(r);
        return s;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return RT_OK;
}

static rt_status prepare(rt_store *st, const char *name, const char *sql, rt_error *err)
{
    PGresult *p = PQprepare(st->conn, name, sql, 0, NULL);
    rt_status s = PQresultStatus(p) == PGRES_COMMAND_OK ? RT_OK : translate(st->conn, p, err, "prepare");
    PQclear(p);
    return s;
}

/* Runs a prepared statement; *res must be PQclear'ed by the caller on RT_OK. */
rt_status rt_stmt_run(rt_store *st, stmt_id id, int n, const char *const *params, PGresult **res, rt_error *err)
{
    char name[16];
    snprintf(name, sizeof name, "rt%d", (int)id);
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    if (!st->prepared[id]) {
        const char *sql = stmt_sql(id);
        rt_status s = sql ? prepare(st, name, sql, err)
                          : rt_error_set(err, RT_ERR_INTERNAL, "statement %d has no SQL", (int)id);
        if (s != RT_OK)
            return s;
        st->prepared[id] = true;
    }
    return take_result(st, PQexecPrepared(st->conn, name, n, params, NULL, NULL, 0), res, err, "database");
}

rt_status rt_store_exec_simple(rt_store *st, const char *sql, rt_error *err)
{
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    return take_result(st, PQexec(st->conn, sql), NULL, err, "database");
}

/* The same with exactly n (1 or 2) parameters; a NULL extra is SQL NULL. */
rt_status rt_stmt_json_n(rt_store *st, stmt_id id, json_t *doc, int n, const char *extra, rt_error *err)
{
    if (!doc || (json_is_array(doc) && json_array_size(doc) == 0))
        return RT_OK;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[2] = {text, extra};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, id, n, params, &r, err);
    PQclear(r);
    free(text);
    return s;
}

/* Runs a statement whose first parameter is a JSON document (skipped when empty) and whose
 * optional second one is extra (no second parameter when extra is NULL). */
rt_status rt_stmt_json(rt_store *st, stmt_id id, json_t *doc, const char *extra, rt_error *err)
{
    return rt_stmt_json_n(st, id, doc, extra ? 2 : 1, extra, err);
}

/* Runs a statement whose one parameter is a JSON document and returns its rows (*res must
 * be PQclear'ed on RT_OK). */
rt_status rt_stmt_json_rows(rt_store *st, stmt_id id, json_t *doc, PGresult **res, rt_error *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = rt_stmt_run(st, id, 1, params, res, err);
    free(text);
    return s;
}

rt_status rt_stmt_single_json(rt_store *st, stmt_id id, int n, const char *const *params, json_t **out,
                             rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, id, n, params, &r, err);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_result_json(PGresult *r, json_t **out, rt_error *err)
{
    *out = NULL;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "not found");
    }
    json_error_t jerr;
    *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &jerr);
    PQclear(r);
    return *out ? RT_OK : rt_error_set(err, RT_ERR_INTERNAL, "bad JSON from the database: %s", jerr.text);
}

rt_status rt_store_exec_prepared(rt_store *st, const char *name, const char *sql, int n, const char *const *params,
                                 PGresult **res, rt_error *err)
{
    if (!st->conn || PQstatus(st->conn) != CONNECTION_OK)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    bool known = false;
    for (size_t i = 0; i < st->n_extra && !known; i++)
        known = strcmp(st->extra_prepared[i], name) == 0;
    if (!known) {
        rt_status s = prepare(st, name, sql, err);
        if (s != RT_OK)
            return s;
        if (st->n_extra == st->cap_extra) {
            size_t cap = st->cap_extra ? st->cap_extra * 2 : 32;
            char **grown = realloc(st->extra_prepared, cap * sizeof *grown);
            if (!grown)
                return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
            st->extra_prepared = grown;
            st->cap_extra = cap;
        }
        st->extra_prepared[st->n_extra++] = strdup(name);
    }
    return take_result(st, PQexecPrepared(st->conn, name, n, params, NULL, NULL, 0), res, err, "database");
}

rt_status rt_store_exec_params(rt_store *st, const char *sql, int n, const char *const *params, PGresult **res,
                               rt_error *err, const char *what)
{
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "%s: database connection lost", what);
    return take_result(st, PQexecParams(st->conn, sql, n, NULL, params, NULL, NULL, 0), res, err, what);
}

rt_status rt_store_exec_json(rt_store *st, const char *name, const char *sql, json_t *doc, rt_error *err)
{
    if (!doc || (json_is_array(doc) && json_array_size(doc) == 0))
        return RT_OK;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = rt_store_exec_prepared(st, name, sql, 1, params, NULL, err);
    free(text);
    return s;
}

/* "{a,b,c}" array literal for uuid[]/bigint[] parameters (values are ids we produced). */
char *rt_sql_array_literal(const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    char *buf = malloc(len);
    if (!buf)
        return NULL;
    char *p = buf;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(items[i]);
        memcpy(p, items[i], l);
        p += l;
        if (i + 1 < n)
            *p++ = ',';
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

char *rt_sql_int_array_literal(const int64_t *ids, size_t n)
{
    char *buf = malloc(n * 21 + 3);
    if (!buf)
        return NULL;
    char *p = buf;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ",%lld" : "%lld", (long long)ids[i]);
    *p++ = '}';
    *p = '\0';
    return buf;
}

rt_status rt_sql_names_literal(json_t *names, char **out)
{
    size_t n = json_array_size(names);
    const char **items = malloc((n ? n : 1) * sizeof *items);
    if (!items)
        return RT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = json_string_value(json_array_get(names, i));
    *out = rt_sql_array_literal(items, n); /* event names: [A-Za-z0-9_:.-] only, safe in an array literal */
    free(items);
    return *out ? RT_OK : RT_ERR_NOMEM;
}

/* A statement whose one parameter is a text[] of names, returning one JSON document. */
rt_status rt_stmt_names_json(rt_store *st, stmt_id id, json_t *names, json_t **out, rt_error *err)
{
    char *arr = NULL;
    if (rt_sql_names_literal(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    rt_status s = rt_stmt_single_json(st, id, 1, params, out, err);
    free(arr);
    return s;
}

rt_status rt_store_migrate(rt_store *st, int *applied, rt_error *err)
{
    int count = 0;
    /* A fixed advisory lock key ("ratchet" in ASCII) serializes concurrent migrators. */
    rt_status s = rt_store_exec_simple(st, "select pg_advisory_lock(7526411283428713588)", err);
    if (s != RT_OK)
        return s;
    s = rt_store_exec_simple(st,
                   "create schema if not exists ratchet;"
                   "create table if not exists ratchet.schema_migrations (version int primary key,"
                   " name text not null, applied_at timestamptz not null default now())",
                   err);
    for (size_t i = 0; s == RT_OK && i < rt_migrations_count; i++) {
        const rt_migration *m = &rt_migrations[i];
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *p1[] = {version};
        PGresult *r = PQexecParams(st->conn, "select 1 from ratchet.schema_migrations where version = $1::int", 1,
                                   NULL, p1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            s = translate(st->conn, r, err, "migrate");
            PQclear(r);
            break;
        }
        bool done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        s = rt_store_exec_simple(st, "begin", err);
        if (s == RT_OK)
            s = rt_store_exec_simple(st, m->sql, err);
        if (s == RT_OK) {
            const char *p2[] = {version, m->name};
            r = PQexecParams(st->conn, "insert into ratchet.schema_migrations (version, name) values ($1::int, $2)",
                             2, NULL, p2, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                s = translate(st->conn, r, err, "migrate");
            PQclear(r);
        }
        if (s == RT_OK)
            s = rt_store_exec_simple(st, "commit", err);
        if (s != RT_OK) {
            rt_store_rollback(st);
            rt_error_prefix(err, "migration %s", m->name);
            break;
        }
        count++;
    }
    rt_error unlock_err;
    rt_store_exec_simple(st, "select pg_advisory_unlock(7526411283428713588)", &unlock_err);
    if (applied)
        *applied = count;
    return s;
}

void rt_store_remember_hash(rt_store *st, const char *hash)
{
    memcpy(st->known_hashes[st->n_known % 32], hash, 65);
    if (st->n_known < 32)
        st->n_known++;
}

rt_status rt_store_begin(rt_store *st, rt_error *err)
{
    return rt_store_exec_simple(st, "begin", err);
}

rt_status rt_store_end(rt_store *st, rt_status s, rt_error *err)
{
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK)
        rt_store_rollback(st);
    return s;
}

static void count_started_now(const char *workflow, json_int_t n)
{
    rt_metrics_counter_add("ratchet_runs_started_total", "workflow", workflow, (uint64_t)n);
}

void rt_store_count_started(rt_store *st, const char *workflow, int n)
{
    if (n <= 0)
        return;
    if (PQtransactionStatus(st->conn) == PQTRANS_IDLE) { /* autocommit: already stored */
        count_started_now(workflow, n);
        return;
    }
    if (!st->started)
        st->started = json_object();
    json_t *c = json_object_get(st->started, workflow);
    json_object_set_new(st->started, workflow, json_integer(json_integer_value(c) + n));
}

rt_status rt_store_commit(rt_store *st, rt_error *err)
{
    rt_status s = rt_store_exec_simple(st, "commit", err);
    for (size_t i = 0; s == RT_OK && i < st->n_pending; i++)
        rt_store_remember_hash(st, st->pending_hashes[i]);
    st->n_pending = 0;
    const char *workflow;
    json_t *n;
    json_object_foreach(st->started, workflow, n) {
        if (s == RT_OK)
            count_started_now(workflow, json_integer_value(n));
    }
    json_object_clear(st->started);
    return s;
}

void rt_store_rollback(rt_store *st)
{
    st->n_pending = 0;
    json_object_clear(st->started);
    if (st->conn && PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(st->conn, "rollback");
        PQclear(r);
    }
}

rt_status rt_store_listen(rt_store *st, const char *channel, rt_error *err)
{
    char *quoted = PQescapeIdentifier(st->conn, channel, strlen(channel));
    if (!quoted)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "listen: %s", PQerrorMessage(st->conn));
    char sql[256];
    snprintf(sql, sizeof sql, "listen %s", quoted);
    PQfreemem(quoted);
    rt_status s = rt_store_exec_simple(st, sql, err);
    if (s == RT_OK) {
        free(st->listening);
        st->listening = strdup(channel);
    }
    return s;
}

rt_status rt_store_wait_notify(rt_store *st, int timeout_ms, bool *notified, rt_error *err)
{
    *notified = false;
    if (!rt_store_healthy(st))
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    PGnotify *nt;
    PQconsumeInput(st->conn);
    while ((nt = PQnotifies(st->conn)) != NULL) {
        *notified = true;
        PQfreemem(nt);
    }
    if (*notified)
        return RT_OK;
    struct pollfd pfd = {.fd = PQsocket(st->conn), .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno != EINTR)
        return rt_error_set(err, RT_ERR_IO, "poll: %s", strerror(errno));
    if (rc > 0) {
        if (!PQconsumeInput(st->conn))
            return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost: %s", PQerrorMessage(st->conn));
        while ((nt = PQnotifies(st->conn)) != NULL) {
            *notified = true;
            PQfreemem(nt);
        }
    }
    return RT_OK;
}

PGconn *rt_store_pg(rt_store *st)
{
    return st->conn;
}

rt_status rt_store_error(rt_store *st, const PGresult *res, rt_error *err, const char *what)
{
    return translate(st->conn, res, err, what);
}

rt_status rt_store_instance_id(rt_store *st, char out[17], rt_error *err)
{
    if (!st->instance[0]) {
        PGresult *r = NULL;
        rt_status s = rt_store_exec_params(st, "select id from ratchet.instance", 0, NULL, &r, err, "instance id");
        if (s != RT_OK)
            return s;
        if (PQntuples(r) != 1 || strlen(PQgetvalue(r, 0, 0)) != 16) {
            PQclear(r);
            return rt_error_set(err, RT_ERR_INTERNAL, "ratchet.instance holds no id: run `ratchet migrate`");
        }
        memcpy(st->instance, PQgetvalue(r, 0, 0), 17);
        PQclear(r);
    }
    memcpy(out, st->instance, 17);
    return RT_OK;
}

rt_status rt_store_engine_event_id(rt_store *st, char *buf, size_t len, rt_error *err, const char *fmt, ...)
{
    char inst[17];
    rt_status s = rt_store_instance_id(st, inst, err);
    if (s != RT_OK)
        return s;
    int n = snprintf(buf, len, RT_EVENT_ENGINE_ID_PREFIX "%s:", inst);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < len)
        vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return RT_OK;
}
