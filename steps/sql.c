/* sql.c — one parameterized statement on the app database (RATCHET_APP_DATABASE_URL, else
 * the engine's), over a connection each worker thread keeps for itself (libpq connections
 * are never shared). Output {rows, row_count}; rows map PostgreSQL types onto JSON.
 *
 * The connection string holds a password: it never appears in a message, and connection
 * errors are scrubbed of it in case libpq ever quotes it. */
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "log.h"
#include "step.h"
#include "util.h"

#define TICK_MS 100              /* the cancel flag is looked at least this often */
#define CONNECT_TIMEOUT_MS 30000 /* when the step has no deadline of its own */
#define SERVER_GRACE_MS 2000     /* past the deadline before we cancel from this side */
#define CANCEL_GRACE_MS 5000     /* after a cancel, before we give up on the connection */
#define MAX_PARAMS 65535         /* the protocol's limit */

/* Type OIDs from pg_type.h (server headers are not a client dependency). */
enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_OID = 26, OID_JSON = 114,
    OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700, OID_JSONB = 3802,
};

/* ---- validation ---------------------------------------------------------------------- */

static rt_status check_with(json_t *with, bool rendered, rt_error *err)
{
    if (!json_is_object(with))
        return rt_error_set(err, RT_ERR_INVALID, "sql needs \"with\" as an object");
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        if (strcmp(key, "query") != 0 && strcmp(key, "params") != 0 && strcmp(key, "database") != 0)
            return rt_error_set(err, RT_ERR_INVALID, "sql has unknown key \"%s\" (query, params, database)", key);
    }
    v = json_object_get(with, "query");
    if (!v)
        return rt_error_set(err, RT_ERR_INVALID, "sql needs \"query\"");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return rt_error_set(err, RT_ERR_INVALID, "sql \"query\" must be a non-empty string");
    if (rendered && strlen(json_string_value(v)) != json_string_length(v))
        return rt_error_set(err, RT_ERR_INVALID, "sql \"query\" contains a NUL character");
    /* The SQL text is fixed in the workflow file: a template there would be string
     * interpolation into SQL (an event could then choose what runs). Values go in params. */
    if (!rendered && rt_template_present(json_string_value(v)))
        return rt_error_set(err, RT_ERR_INVALID,
                            "sql \"query\" must not contain ${{ }}: pass values in \"params\" and "
                            "refer to them as $1, $2, ...");
    if ((v = json_object_get(with, "params")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_array(v))
            return rt_error_set(err, RT_ERR_INVALID, "sql \"params\" must be a list");
        if (json_array_size(v) > MAX_PARAMS)
            return rt_error_set(err, RT_ERR_INVALID, "sql \"params\" has more than %d values", MAX_PARAMS);
    }
    if ((v = json_object_get(with, "database")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "app") != 0)
            return rt_error_set(err, RT_ERR_INVALID, "sql \"database\" must be \"app\"");
    }
    return RT_OK;
}

static rt_status validate(json_t *with, rt_error *err)
{
    return check_with(with, false, err);
}

/* ---- the per-thread connection ------------------------------------------------------- */

struct conn_slot {
    PGconn *conn;
    char *url;      /* what conn was opened with: a different URL means a new connection */
    bool dirty;     /* a statement ran since the session was last reset */
};

/* __thread for the fast path; the key only exists so a thread's exit closes its connection. */
static __thread struct conn_slot *thread_slot;
static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static bool slot_key_ok;

static void slot_free(void *p)
{
    struct conn_slot *s = p;
    if (s->conn)
        PQfinish(s->conn);
    free(s->url);
    free(s);
}

static void slot_key_init(void)
{
    slot_key_ok = pthread_key_create(&slot_key, slot_free) == 0;
}

static struct conn_slot *get_slot(void)
{
    if (thread_slot)
        return thread_slot;
    pthread_once(&slot_once, slot_key_init);
    struct conn_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (slot_key_ok)
        pthread_setspecific(slot_key, s);
    thread_slot = s;
    return s;
}

static void drop_conn(struct conn_slot *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->dirty = false;
}

/* Replaces every occurrence of secret in buf with "***". */
static void scrub(char *buf, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 3) /* shorter would mangle ordinary words; libpq never quotes passwords anyway */
        return;
    for (char *p = strstr(buf, secret); p; p = strstr(p + 3, secret)) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
    }
}

/* libpq messages end in newlines and sometimes hold several lines: one line reads better. */
static void one_line(char *s)
{
    for (char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
}

struct failure {
    bool retriable;
    bool reconnect; /* nothing of the step ran yet: a fresh connection may simply work */
    char msg[RT_ERROR_MAX - 64];
};

static void conn_message(PGconn *c, const char *url, const char *password, struct failure *f,
                         const char *prefix)
{
    snprintf(f->msg, sizeof f->msg, "%s: %s", prefix, c ? PQerrorMessage(c) : "out of memory");
    one_line(f->msg);
    scrub(f->msg, url);
    scrub(f->msg, password);
}

static int64_t min_deadline(int64_t a, int64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

static bool is_cancelled(const rt_step_ctx *ctx)
{
    return ctx->cancelled && *ctx->cancelled;
}

/* Opens a connection without blocking past the deadline or a cancel. */
/* NOTICEs from a step's statements ("table already exists, skipping") are not errors and
 * must not reach the engine's stderr unformatted; they go to the debug log. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    rt_log(RT_LOG_DEBUG, NULL, "sql notice: %s", message);
}

static PGconn *open_conn(const char *url, const rt_step_ctx *ctx, int64_t deadline, struct failure *f)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        /* libpq's text would quote the malformed part, which may be the password. */
        PQfreemem(perr);
        f->retriable = false;
        snprintf(f->msg, sizeof f->msg, "sql: the database URL is not a valid connection string");
        return NULL;
    }
    char *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val)
            password = strdup(o->val);
    }
    PQconninfoFree(opts);

    /* client_encoding UTF8: rows become JSON, which is UTF-8. */
    const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
    const char *const vals[] = {url, "ratchet-sql", "UTF8", NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    int64_t limit = min_deadline(deadline, rt_mono_ms() + CONNECT_TIMEOUT_MS);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING; /* as PQconnectStart asks */
    while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int64_t now = rt_mono_ms();
        if (is_cancelled(ctx) || now >= limit) {
            f->retriable = true;
            snprintf(f->msg, sizeof f->msg, "sql: %s while connecting to the database",
                     is_cancelled(ctx) ? "cancelled" : "timed out");
            PQfinish(c);
            free(password);
            return NULL;
        }
        struct pollfd pf = {.fd = PQsocket(c), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int wait = limit - now < TICK_MS ? (int)(limit - now) : TICK_MS;
        int r = poll(&pf, 1, wait);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0)
            st = PQconnectPoll(c);
    }
    if (!c || PQstatus(c) != CONNECTION_OK) {
        f->retriable = true; /* the server may be starting, restarting or briefly unreachable */
        conn_message(c, url, password, f, "sql: cannot connect to the database");
        if (c)
            PQfinish(c);
        c = NULL;
    }
    if (c)
        PQsetNoticeProcessor(c, quiet_notice, NULL);
    free(password);
    return c;
}

/* Waits for the results of what was just sent. Returns the first failed result, else the
 * last one (NULL when the connection broke). *reason says why we cancelled, if we did. */
enum end_reason { END_DONE = 0, END_CANCELLED, END_TIMED_OUT };

static PGresult *await_result(struct conn_slot *s, const rt_step_ctx *ctx, int64_t deadline,
                              enum end_reason *reason)
{
    PGconn *c = s->conn;
    int64_t cancel_at = 0;
    *reason = END_DONE;
    while (PQisBusy(c)) {
        int64_t now = rt_mono_ms();
        if (!cancel_at) {
            /* statement_timeout stops a slow statement at the deadline on the server; this
             * side cancels only for the cancel flag or a server that does not answer. */
            if (is_cancelled(ctx))
                *reason = END_CANCELLED;
            else if (deadline && now >= deadline + SERVER_GRACE_MS)
                *reason = END_TIMED_OUT;
            if (*reason != END_DONE) {
                char buf[256];
                PGcancel *pc = PQgetCancel(c);
                if (pc) {
                    PQcancel(pc, buf, sizeof buf);
                    PQfreeCancel(pc);
                }
                cancel_at = now;
            }
        } else if (now >= cancel_at + CANCEL_GRACE_MS) {
            drop_conn(s); /* the server does not answer; a new attempt gets a new connection */
            return NULL;
        }
        struct pollfd pf = {.fd = PQsocket(c), .events = POLLIN};
        int r = poll(&pf, 1, TICK_MS);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && !PQconsumeInput(c))
            break;
    }
    PGresult *keep = NULL, *r;
    bool copy = false;
    while (!copy && (r = PQgetResult(c))) {
        ExecStatusType st = PQresultStatus(r);
        copy = st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    if (copy)
        drop_conn(s); /* COPY needs a data stream we do not offer; end the protocol state */
    return keep;
}

/* Starts a fresh session for this statement, as pgbouncer's server_reset_query does for
 * pooled connections: state a previous workflow SET (role, search_path), its temp tables,
 * advisory locks and LISTENs must not leak into the next; and statement_timeout carries
 * this step's deadline to the server. The reset is DISCARD ALL spelled out, because DISCARD
 * ALL itself refuses to run in the implicit transaction of a multi-statement query, and
 * one round trip matters on a hot path. */
static bool reset_session(struct conn_slot *s, const rt_step_ctx *ctx, int64_t deadline, struct failure *f)
{
    static const char discard_all[] =
        "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
        "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; ";
    char sql[sizeof discard_all + 64];
    long long timeout = 0;
    if (deadline) {
        timeout = deadline - rt_mono_ms();
        if (timeout < 1)
            timeout = 1;
    }
    /* Only our own integer goes into this text. */
    snprintf(sql, sizeof sql, "%sSET statement_timeout = %lld", s->dirty ? discard_all : "", timeout);
    if (!PQsendQuery(s->conn, sql)) {
        f->retriable = true;
        f->reconnect = true;
        conn_message(s->conn, s->url, NULL, f, "sql: lost the database connection");
        drop_conn(s);
        return false;
    }
    enum end_reason why;
    PGresult *r = await_result(s, ctx, deadline, &why);
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        f->retriable = true;
        f->reconnect = why == END_DONE;
        if (why == END_CANCELLED)
            snprintf(f->msg, sizeof f->msg, "sql: cancelled");
        else if (why == END_TIMED_OUT || !s->conn)
            snprintf(f->msg, sizeof f->msg, "sql: timed out: the database did not answer");
        else if (PQstatus(s->conn) == CONNECTION_BAD || !r)
            conn_message(s->conn, s->url, NULL, f, "sql: lost the database connection");
        else
            snprintf(f->msg, sizeof f->msg, "sql: cannot reset the session: %s",
                     PQresultErrorMessage(r));
        one_line(f->msg);
        drop_conn(s);
    }
    PQclear(r);
    s->dirty = false;
    return ok;
}

/* Gives a connection that was alive a moment ago, reconnecting when needed. */
static bool ensure_conn(struct conn_slot *s, const char *url, const rt_step_ctx *ctx,
                        int64_t deadline, struct failure *f)
{
    if (s->conn && (!s->url || strcmp(s->url, url) != 0))
        drop_conn(s);
    /* A server restart or an idle-session kill leaves an "OK" connection whose socket is
     * closed; reading what is pending finds that out before we spend the step on it. */
    if (s->conn && (PQstatus(s->conn) != CONNECTION_OK || !PQconsumeInput(s->conn) ||
                    PQstatus(s->conn) != CONNECTION_OK))
        drop_conn(s);
    if (!s->conn) {
        free(s->url);
        s->url = strdup(url);
        if (!s->url) {
            f->retriable = true;
            snprintf(f->msg, sizeof f->msg, "sql: out of memory");
            return false;
        }
        s->conn = open_conn(url, ctx, deadline, f);
        s->dirty = false;
        if (!s->conn)
            return false;
    }
    return true;
}

/* ---- values in and out ---------------------------------------------------------------- */

/* Each param as text: strings as they are, null as SQL NULL, numbers and booleans in their
 * JSON spelling, objects and arrays as JSON text. Fills owned[] with what must be freed. */
static bool params_to_text(json_t *params, const char **values, char **owned)
{
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v) {
        owned[i] = NULL;
        values[i] = NULL;
        if (json_is_null(v))
            continue;
        if (json_is_string(v)) {
            values[i] = json_string_value(v);
            continue;
        }
        if (json_is_true(v) || json_is_false(v)) {
            values[i] = json_is_true(v) ? "true" : "false";
            continue;
        }
        owned[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (!owned[i])
            return false;
        values[i] = owned[i];
    }
    return true;
}

/* numeric -> a JSON number when nothing is lost: integers that fit in 64 bits, and other
 * values with at most 15 significant digits (what a double round-trips); else the exact
 * text, which is what money and ledger sums need. */
static json_t *numeric_value(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return json_string(s); /* NaN, Infinity, -Infinity */
    size_t sig = 0, pending_zeros = 0;
    bool seen_nonzero = false, fraction = false, fraction_nonzero = false;
    for (; *p; p++) {
        if (*p == '.') {
            fraction = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return json_string(s);
        if (*p == '0') {
            if (seen_nonzero)
                pending_zeros++;
            continue;
        }
        seen_nonzero = true;
        if (fraction)
            fraction_nonzero = true;
        sig += pending_zeros + 1;
        pending_zeros = 0;
    }
    if (!fraction_nonzero) {
        errno = 0;
        char *end;
        long long n = strtoll(s, &end, 10);
        if (errno == 0 && (*end == '\0' || *end == '.'))
            return json_integer(n);
    }
    if (sig <= 15) {
        double d = strtod(s, NULL);
        if (isfinite(d))
            return json_real(d);
    }
    return json_string(s);
}

static json_t *text_value(const char *s, int len)
{
    json_t *j = json_stringn(s, (size_t)len);
    if (j)
        return j;
    /* Not UTF-8 (a SQL_ASCII database holds any bytes): keep the ASCII, mark the rest. */
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return NULL;
    for (int i = 0; i < len; i++)
        copy[i] = (s[i] & 0x80) || s[i] == '\0' ? '?' : s[i];
    j = json_stringn(copy, (size_t)len);
    free(copy);
    return j;
}

static json_t *cell_value(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    const char *s = PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    char *end;
    switch (PQftype(r, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID: {
        errno = 0;
        long long n = strtoll(s, &end, 10);
        return errno == 0 && *end == '\0' ? json_integer(n) : json_string(s);
    }
    case OID_FLOAT4:
    case OID_FLOAT8: {
        double d = strtod(s, &end);
        return isfinite(d) && *end == '\0' ? json_real(d) : json_string(s); /* NaN, Infinity */
    }
    case OID_NUMERIC:
        return numeric_value(s);
    case OID_BOOL:
        return json_boolean(s[0] == 't');
    case OID_JSON:
    case OID_JSONB: {
        json_t *j = json_loadb(s, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return j ? j : text_value(s, len);
    }
    default:
        return text_value(s, len);
    }
}

static json_t *result_output(const PGresult *r)
{
    json_t *rows = json_array();
    if (!rows)
        return NULL;
    int nt = PQntuples(r), nf = PQnfields(r);
    for (int i = 0; i < nt; i++) {
        json_t *row = json_object();
        if (!row || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            return NULL;
        }
        for (int k = 0; k < nf; k++) {
            /* A repeated column name keeps the last column's value, as most drivers do. */
            json_t *v = cell_value(r, i, k);
            if (!v || json_object_set_new(row, PQfname(r, k), v) != 0) {
                json_decref(rows);
                return NULL;
            }
        }
    }
    long long count = nt;
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        count = atoll(PQcmdTuples((PGresult *)r)); /* "" for commands without a count: 0 */
    return json_pack("{s:o,s:I}", "rows", rows, "row_count", (json_int_t)count);
}

/* Serialization failures, deadlocks, timeouts, lock waits, lost connections and an
 * overloaded or restarting server pass; the rest (syntax, constraints) will not. */
static bool retriable_sqlstate(const char *st)
{
    return st && (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "57014") == 0 ||
           strcmp(st, "55P03") == 0 || strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 ||
           strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0);
}

static void add_field(json_t *obj, const char *key, const PGresult *r, int field)
{
    const char *v = PQresultErrorField(r, field);
    if (v)
        json_object_set_new(obj, key, text_value(v, (int)strlen(v)));
}

static void report_sql_error(const PGresult *r, enum end_reason why, rt_step_result *res)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!primary)
        primary = PQresultErrorMessage(r);
    if (why == END_CANCELLED)
        rt_step_fail(res, true, "sql: cancelled");
    else if (state && strcmp(state, "57014") == 0)
        rt_step_fail(res, true, "sql: timed out: %s (SQLSTATE 57014)", primary);
    else
        rt_step_fail(res, retriable_sqlstate(state), "sql: %s (SQLSTATE %s)", primary,
                     state ? state : "unknown");
    res->error_detail = json_pack("{s:s?}", "sqlstate", state);
    if (res->error_detail) {
        add_field(res->error_detail, "message", r, PG_DIAG_MESSAGE_PRIMARY);
        add_field(res->error_detail, "detail", r, PG_DIAG_MESSAGE_DETAIL);
        add_field(res->error_detail, "hint", r, PG_DIAG_MESSAGE_HINT);
        add_field(res->error_detail, "position", r, PG_DIAG_STATEMENT_POSITION);
        add_field(res->error_detail, "constraint", r, PG_DIAG_CONSTRAINT_NAME);
    }
}

/* ---- execute ------------------------------------------------------------------------- */

static void finish_transaction(struct conn_slot *s, const rt_step_ctx *ctx)
{
    if (!s->conn)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return;
    /* A step is one implicit transaction: a BEGIN without COMMIT must not swallow the next
     * step's statements (on this thread's connection) into it. */
    enum end_reason why;
    PGresult *r = PQsendQuery(s->conn, "ROLLBACK")
                      ? await_result(s, ctx, rt_mono_ms() + CANCEL_GRACE_MS, &why) : NULL;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
        drop_conn(s);
    PQclear(r);
}

/* The statement got no answer from the server: cancelled, timed out or the connection lost
 * (which is then dropped). */
static void fail_connection(struct conn_slot *s, enum end_reason why, struct failure *f, rt_step_result *res)
{
    if (why == END_CANCELLED)
        rt_step_fail(res, true, "sql: cancelled");
    else if (why == END_TIMED_OUT || !s->conn)
        rt_step_fail(res, true, "sql: timed out: the database did not answer");
    else {
        conn_message(s->conn, s->url, NULL, f, "sql: lost the database connection");
        rt_step_fail(res, true, "%s", f->msg);
    }
    res->error_detail = json_pack("{s:b}", "connection", 1);
    drop_conn(s);
}

/* The server's answer as the step's result: rows, or why the statement failed. */
static void record_result(PGresult *r, enum end_reason why, rt_step_result *res)
{
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        res->output = result_output(r);
        if (res->output)
            res->outcome = RT_STEP_OK;
        else
            rt_step_fail(res, true, "sql: out of memory building rows");
        break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
        rt_step_fail(res, false, "sql: COPY to or from the client is not supported; use a file or a query");
        break;
    case PGRES_EMPTY_QUERY:
        rt_step_fail(res, false, "sql: the query is empty");
        break;
    default:
        report_sql_error(r, why, res);
        break;
    }
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    rt_error err;
    if (check_with(with, true, &err) != RT_OK) {
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    const rt_step_env *env = ctx->env;
    const char *url = env && env->app_database_url && *env->app_database_url ? env->app_database_url
                      : env ? env->database_url : NULL;
    if (!url || !*url) {
        rt_step_fail(res, false, "sql: no database configured (RATCHET_APP_DATABASE_URL or RATCHET_DATABASE_URL)");
        return;
    }
    int64_t deadline = ctx->deadline_mono_ms;
    if (deadline && rt_mono_ms() >= deadline) {
        rt_step_fail(res, true, "sql: timed out before the statement was sent (step deadline)");
        return;
    }
    struct conn_slot *s = get_slot();
    if (!s) {
        rt_step_fail(res, true, "sql: out of memory");
        return;
    }

    json_t *params = json_object_get(with, "params");
    size_t n = json_array_size(params);
    const char **values = calloc(n ? n : 1, sizeof *values);
    char **owned = calloc(n ? n : 1, sizeof *owned);
    struct failure f = {0};
    if (!values || !owned || !params_to_text(params, values, owned)) {
        rt_step_fail(res, true, "sql: out of memory");
        goto done;
    }

    /* A connection the server closed while idle (restart, idle timeout, terminated backend)
     * shows only when used: the reset is harmless to repeat, so it gets one fresh retry
     * before the step's own statement is ever sent. */
    for (int tries = 0;; tries++) {
        f.reconnect = false;
        if (ensure_conn(s, url, ctx, deadline, &f) && reset_session(s, ctx, deadline, &f))
            break;
        if (tries == 1 || !f.reconnect) {
            rt_step_fail(res, f.retriable, "%s", f.msg);
            res->error_detail = json_pack("{s:b}", "connection", 1);
            goto done;
        }
    }

    s->dirty = true;
    if (!PQsendQueryParams(s->conn, json_string_value(json_object_get(with, "query")), (int)n, NULL,
                           values, NULL, NULL, 0)) {
        conn_message(s->conn, s->url, NULL, &f, "sql: lost the database connection");
        drop_conn(s);
        rt_step_fail(res, true, "%s", f.msg);
        goto done;
    }
    enum end_reason why;
    PGresult *r = await_result(s, ctx, deadline, &why);
    if (!r || (s->conn && PQstatus(s->conn) == CONNECTION_BAD) ||
        (PQresultStatus(r) == PGRES_FATAL_ERROR && !PQresultErrorField(r, PG_DIAG_SQLSTATE))) {
        /* No SQLSTATE: libpq's own error (the connection went away), not the server's. */
        fail_connection(s, why, &f, res);
        PQclear(r);
        goto done;
    }
    record_result(r, why, res);
    PQclear(r);
    finish_transaction(s, ctx);

done:
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(values);
}

const rt_step_type rt_step_sql = {.name = "sql", .validate = validate, .execute = execute};
