/* audit.c — appending to the hash chain and walking it. The SQL is in store_audit.c. */
#include "audit.h"
#include "create.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_audit.h"
#include "util.h"

rt_status rt_audit_record(rt_store *st, const char *actor, const char *action, const char *subject,
                          const json_t *details, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_audit_append(st, actor, action, subject, details, err);
    s = rt_store_end(st, s, err);
    return s;
}

const char *rt_audit_cli_actor(char *buf, size_t len)
{
    snprintf(buf, len, "cli:%s", rt_os_user("unknown"));
    return buf;
}

rt_status rt_audit_append_cli(rt_store *st, const char *action, const char *subject, json_t *details, rt_error *err)
{
    char actor[160];
    rt_status s = rt_store_audit_append(st, rt_audit_cli_actor(actor, sizeof actor), action, subject, details, err);
    json_decref(details);
    return s;
}

void rt_audit_cli(rt_store *st, const char *action, const char *subject, json_t *details)
{
    char actor[160];
    rt_error err;
    if (rt_audit_record(st, rt_audit_cli_actor(actor, sizeof actor), action, subject, details, &err) != RT_OK)
        rt_log(RT_LOG_WARN, NULL, "audit record %s %s not written: %s", action, subject ? subject : "", err.msg);
    json_decref(details);
}

rt_status rt_audit_create_run_cli(rt_store *st, rt_run_request *req, const char *action, json_t *details,
                                  rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_run_create_tx(st, req, 1, err);
    if (s == RT_OK && req->id[0])
        s = rt_audit_append_cli(st, action, req->id, json_incref(details), err);
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK) {
        rt_store_rollback(st);
        req->id[0] = '\0';
    }
    json_decref(details);
    return s;
}

/* ---------- verify ---------- */

#define PAGE 1000

static void broken(rt_audit_verdict *v, int64_t seq, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void broken(rt_audit_verdict *v, int64_t seq, const char *fmt, ...)
{
    if (!v->ok)
        return; /* the first break is the one reported */
    v->ok = false;
    v->broken_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
}

rt_status rt_audit_verify(rt_store *st, rt_audit_verdict *v, rt_error *err)
{
    memset(v, 0, sizeof *v);
    v->ok = true;
    snprintf(v->head, sizeof v->head, "%s", RT_AUDIT_GENESIS);
    json_t *cps = NULL;
    rt_status s = rt_store_audit_checkpoints(st, &cps, err);
    if (s != RT_OK)
        return s;
    size_t cp = 0, n_cps = json_array_size(cps);
    int64_t last = 0;
    char prev[72];
    snprintf(prev, sizeof prev, "%s", RT_AUDIT_GENESIS);
    while (v->ok) {
        rt_audit_row *rows = NULL;
        size_t n = 0;
        s = rt_store_audit_page(st, last, PAGE, &rows, &n, err);
        if (s != RT_OK)
            break;
        for (size_t i = 0; i < n && v->ok; i++) {
            const rt_audit_row *r = &rows[i];
            char want[65];
            if (r->seq != last + 1) {
                broken(v, last + 1, "record %lld is missing (gap: seq %lld is followed by seq %lld)",
                       (long long)(last + 1), (long long)last, (long long)r->seq);
                break;
            }
            if (strcmp(r->prev_hash, prev) != 0) {
                broken(v, r->seq, "its prev_hash does not match the hash of record %lld (a record was rewritten)",
                       (long long)last);
                break;
            }
            rt_audit_hash(r->prev_hash, r->seq, r->at, r->actor, r->action, r->subject, r->details, want);
            if (strcmp(want, r->hash) != 0) {
                broken(v, r->seq, "hash mismatch: the record was changed (stored %.16s..., computed %.16s...)",
                       r->hash, want);
                break;
            }
            /* Checkpoints at this seq must still name this very record. */
            for (; cp < n_cps; cp++) {
                json_t *c = json_array_get(cps, cp);
                int64_t cseq = json_integer_value(json_object_get(c, "seq"));
                if (cseq > r->seq)
                    break;
                if (cseq == r->seq && strcmp(json_string_value(json_object_get(c, "head")), r->hash) != 0)
                    broken(v, r->seq, "does not match the checkpoint of %s (head %.16s...)",
                           json_string_value(json_object_get(c, "at")), json_string_value(json_object_get(c, "head")));
            }
            last = r->seq;
            snprintf(prev, sizeof prev, "%s", r->hash);
            v->records++;
        }
        rt_audit_rows_free(rows, n);
        if (n < PAGE)
            break;
    }
    if (s == RT_OK && v->ok && cp < n_cps) {
        json_t *c = json_array_get(cps, cp);
        broken(v, last + 1, "records from seq %lld on are missing: the checkpoint of %s holds seq %lld",
               (long long)(last + 1), json_string_value(json_object_get(c, "at")),
               (long long)json_integer_value(json_object_get(c, "seq")));
    }
    snprintf(v->head, sizeof v->head, "%s", prev);
    json_decref(cps);
    return s;
}
