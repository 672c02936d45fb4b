/* store_audit.c — every SQL statement of the audit log, parameterized. Appends are rare
 * (control actions), so statements are sent with PQexecParams rather than prepared. */
#include "store_audit.h"
#include "store_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* A key of its own ("ratchet" + 4; store.c's migration lock is ...588, schedules' ...590). */
#define APPEND_LOCK_KEY "7526411283428713592"

static rt_status exec(rt_store *st, const char *sql, int n, const char *const *params, PGresult **res,
                      rt_error *err)
{
    return rt_store_exec_params(st, sql, n, params, res, err, "audit");
}

rt_status rt_store_audit_lock_head(rt_store *st, const json_t *details, rt_audit_head *out, rt_error *err)
{
    memset(out, 0, sizeof *out);
    rt_status s = exec(st, "select pg_advisory_xact_lock(" APPEND_LOCK_KEY ")", 0, NULL, NULL, err);
    if (s != RT_OK)
        return s;
    char *text = details ? json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    PGresult *r = NULL;
    /* clock_timestamp(): read under the lock, so times rise with seq. */
    s = exec(st,
             "select coalesce(h.seq, 0), coalesce(h.hash, '" RT_AUDIT_GENESIS "'),"
             " ratchet.ts(date_trunc('milliseconds', clock_timestamp())), $1::jsonb::text "
             "from (select 1) one left join (select seq, hash from ratchet.audit_log order by seq desc limit 1) h on true",
             1, params, &r, err);
    free(text);
    if (s != RT_OK)
        return s;
    out->seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->hash, sizeof out->hash, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->at, sizeof out->at, "%s", PQgetvalue(r, 0, 2));
    out->details = strdup(PQgetvalue(r, 0, 3));
    PQclear(r);
    return out->details ? RT_OK : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
}

rt_status rt_store_audit_insert(rt_store *st, int64_t seq, const char *at, const char *actor, const char *action,
                                const char *subject, const char *details, const char *prev_hash, const char *hash,
                                rt_error *err)
{
    char seq_s[24];
    snprintf(seq_s, sizeof seq_s, "%lld", (long long)seq);
    const char *params[] = {seq_s, at, actor, action, subject ? subject : "", details, prev_hash, hash};
    return exec(st,
                "insert into ratchet.audit_log (seq, at, actor, action, subject, details, prev_hash, hash) "
                "values ($1::bigint, $2::timestamptz, $3, $4, $5, $6::jsonb, $7, $8)",
                8, params, NULL, err);
}

void rt_audit_rows_free(rt_audit_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        free(rows[i].actor);
        free(rows[i].action);
        free(rows[i].subject);
        free(rows[i].details);
    }
    free(rows);
}

#define ROW_COLS "seq, ratchet.ts(at), actor, action, subject, details::text, prev_hash, hash"

static rt_status read_rows(PGresult *r, rt_audit_row **rows, size_t *n, rt_error *err)
{
    int k = PQntuples(r);
    *rows = calloc(k > 0 ? (size_t)k : 1, sizeof **rows);
    if (!*rows) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < k; i++) {
        rt_audit_row *a = &(*rows)[i];
        a->seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(a->at, sizeof a->at, "%s", PQgetvalue(r, i, 1));
        a->actor = strdup(PQgetvalue(r, i, 2));
        a->action = strdup(PQgetvalue(r, i, 3));
        a->subject = strdup(PQgetvalue(r, i, 4));
        a->details = strdup(PQgetvalue(r, i, 5));
        snprintf(a->prev_hash, sizeof a->prev_hash, "%s", PQgetvalue(r, i, 6));
        snprintf(a->hash, sizeof a->hash, "%s", PQgetvalue(r, i, 7));
    }
    *n = (size_t)k;
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_audit_page(rt_store *st, int64_t after_seq, int limit, rt_audit_row **rows, size_t *n,
                              rt_error *err)
{
    char after[24], lim[16];
    snprintf(after, sizeof after, "%lld", (long long)after_seq);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {after, lim};
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    rt_status s = exec(st,
                       "select " ROW_COLS " from ratchet.audit_log where seq > $1::bigint order by seq limit $2::int",
                       2, params, &r, err);
    return s == RT_OK ? read_rows(r, rows, n, err) : s;
}

rt_status rt_store_audit_list(rt_store *st, int64_t since_ms, int limit, rt_audit_row **rows, size_t *n,
                              rt_error *err)
{
    char since[24], lim[16];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {since, lim};
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    rt_status s = since_ms > 0
                      ? exec(st,
                             "select " ROW_COLS " from ratchet.audit_log"
                             " where at >= to_timestamp($1::double precision / 1000) order by seq limit $2::int",
                             2, params, &r, err)
                      : exec(st,
                             "select * from (select " ROW_COLS " from ratchet.audit_log where $1::bigint = 0"
                             " order by seq desc limit $2::int) t order by seq",
                             2, params, &r, err);
    return s == RT_OK ? read_rows(r, rows, n, err) : s;
}

rt_status rt_store_audit_checkpoints(rt_store *st, json_t **out, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = exec(st,
                       "select coalesce(jsonb_agg(jsonb_build_object('seq', seq, 'head', head, 'at', ratchet.ts(at))"
                       " order by seq, id), '[]')::text from ratchet.audit_checkpoints",
                       0, NULL, &r, err);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

/* ---- appending (the chain; audit.c walks it) ---- */

void rt_audit_hash(const char *prev_hash, int64_t seq, const char *at, const char *actor, const char *action,
                   const char *subject, const char *details_json, char *hex)
{
    json_t *details = json_loads(details_json, JSON_DECODE_ANY, NULL);
    /* A details text that jansson cannot read (a number beyond a double) is hashed as is:
     * still deterministic, since it is the text the database prints. */
    json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "action", action, "actor", actor, "at", at, "seq",
                            (json_int_t)seq, "subject", subject ? subject : "", "details",
                            details ? details : json_string(details_json));
    char *canon = rec ? rt_json_canonical(rec) : NULL;
    size_t plen = strlen(prev_hash), clen = canon ? strlen(canon) : 0;
    char *buf = malloc(plen + clen + 1);
    if (!buf || !canon) {
        /* Out of memory: a hash no record can have, so verify reports it instead of lying. */
        snprintf(hex, 65, "%s", "out-of-memory");
    } else {
        memcpy(buf, prev_hash, plen);
        memcpy(buf + plen, canon, clen);
        rt_sha256_hex(buf, plen + clen, hex);
    }
    free(buf);
    free(canon);
    json_decref(rec);
}

rt_status rt_store_audit_append(rt_store *st, const char *actor, const char *action, const char *subject,
                          const json_t *details, rt_error *err)
{
    rt_audit_head head;
    rt_status s = rt_store_audit_lock_head(st, details, &head, err);
    if (s != RT_OK)
        return rt_error_prefix(err, "audit %s", action);
    char hash[65];
    int64_t seq = head.seq + 1;
    rt_audit_hash(head.hash, seq, head.at, actor, action, subject, head.details, hash);
    s = rt_store_audit_insert(st, seq, head.at, actor, action, subject, head.details, head.hash, hash, err);
    free(head.details);
    if (s != RT_OK)
        return rt_error_prefix(err, "audit %s", action);
    rt_log(RT_LOG_DEBUG, NULL, "audit #%lld %s %s %s", (long long)seq, actor, action, subject ? subject : "");
    return RT_OK;
}
