/* runctl.c — pause, resume, cancel and replay of existing runs, one at a time and in bulk
 * (see runctl.h). */
#include "runctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "create.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "replay.h"
#include "run_status.h"
#include "store_audit.h"
#include "util.h"

#define REFUSED_IDS_MAX 20 /* run ids a bulk refusal record names */

rt_status rt_run_pause(rt_store *st, const char *run_id, bool pause, const char *actor, const json_t *details,
                       char status[24], rt_error *err)
{
    if (!rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_NOT_FOUND, "\"%.64s\" is not a run id (expected a UUID)", run_id);
    bool changed = false;
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = pause ? rt_store_run_pause(st, run_id, status, &changed, err)
                  : rt_store_run_resume(st, run_id, status, &changed, err);
    if (s == RT_OK && changed) /* AUDIT: in the pause's transaction */
        s = rt_store_audit_append(st, actor, pause ? "run.pause" : "run.resume", run_id, details, err);
    if (s == RT_OK && changed) {
        s = rt_store_commit(st, err);
        if (s == RT_OK && pause)
            snprintf(status, 24, "paused");
        if (s == RT_OK)
            rt_metrics_counter_add("ratchet_run_control_total", "action", pause ? "pause" : "resume", 1);
        return s;
    }
    rt_store_rollback(st);
    if (s != RT_OK)
        return s;
    if (pause && !strcmp(status, "paused"))
        return rt_error_set(err, RT_ERR_CONFLICT, "run %s is already paused", run_id);
    if (pause)
        return rt_error_set(err, RT_ERR_CONFLICT, "run %s is %s: only a queued, running, sleeping or waiting run "
                            "can be paused", run_id, status);
    return rt_error_set(err, RT_ERR_CONFLICT, "run %s is %s, not paused", run_id, status);
}

rt_status rt_run_cancel_tx(rt_store *st, const char *run_id, const char *why, const char *actor,
                           const json_t *details, bool *cancelled, rt_error *err)
{
    *cancelled = false;
    /* Decided under the run's lock: only a run this transaction ends is audited (a run that
     * ended meanwhile, or is cancelled twice, is not). */
    char status[24];
    rt_run_status cur;
    rt_status s = rt_store_run_lock(st, run_id, status, err);
    if (s != RT_OK || !rt_run_status_parse(status, &cur) || rt_run_status_final(cur))
        return s;
    json_t *runs = json_pack("[{s:s, s:s}]", "id", run_id, "error", why);
    s = rt_store_cancel_runs(st, runs, err);
    json_decref(runs);
    *cancelled = s == RT_OK;
    if (*cancelled) /* AUDIT: in the cancel's transaction */
        s = rt_store_audit_append(st, actor, "run.cancel", run_id, details, err);
    return s;
}

rt_status rt_run_cancel(rt_store *st, const char *run_id, const char *why, const char *actor, const json_t *details,
                        bool *cancelled, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_run_cancel_tx(st, run_id, why, actor, details, cancelled, err);
    if (s == RT_OK)
        return rt_store_commit(st, err);
    rt_store_rollback(st);
    return s;
}

rt_status rt_run_replay(rt_store *st, const char *run_id, const char *from_step, const char *from_what,
                        const char *actor, const json_t *details, char new_id[37], rt_error *err)
{
    new_id[0] = '\0';
    rt_replay rp = {0};
    rt_status s = rt_replay_prepare(st, run_id, from_step, from_what, &rp, err);
    if (s == RT_OK)
        s = rt_store_begin(st, err);
    if (s == RT_OK) {
        s = rt_run_create_tx(st, &rp.req, 1, err);
        if (s == RT_OK && rp.req.id[0]) /* AUDIT: the new run and its record commit together */
            s = rt_store_audit_append(st, actor, "run.replay", rp.req.id, details, err);
        if (s == RT_OK)
            s = rt_store_commit(st, err);
        else
            rt_store_rollback(st);
    }
    if (s == RT_OK)
        memcpy(new_id, rp.req.id, 37);
    rt_replay_clear(&rp);
    return s;
}

/* ---------- bulk ---------- */

static void note_error(rt_bulk *b, const char *id, const char *msg)
{
    b->skipped++;
    if (json_array_size(b->errors) < RT_BULK_ERRORS_MAX)
        json_array_append_new(b->errors, json_pack("{s:s, s:s}", "id", id, "error", msg));
}

static void note_acted(rt_bulk *b, const char *id, const char *replay_id)
{
    b->acted++;
    if (json_array_size(b->run_ids) < RT_BULK_IDS_MAX) {
        json_array_append_new(b->run_ids, json_string(id));
        if (replay_id)
            json_array_append_new(b->replay_ids, json_string(replay_id));
    }
}

/* Cancels one page in one transaction (each run through rt_run_cancel_tx). */
static rt_status cancel_page(rt_store *st, rt_bulk *b, json_t *page, json_t *details, const char *why,
                             rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    size_t i;
    json_t *run;
    int64_t acted = b->acted;
    json_t *done = json_array();
    json_array_foreach(page, i, run) {
        if (s != RT_OK)
            break;
        if (json_is_true(json_object_get(run, "refused")))
            continue;
        const char *id = json_string_value(json_object_get(run, "id"));
        bool cancelled = false;
        s = rt_run_cancel_tx(st, id, why, b->actor, details, &cancelled, err);
        if (s == RT_OK && cancelled)
            json_array_append_new(done, json_string(id));
        else if (s == RT_OK)
            b->skipped++; /* ended meanwhile */
    }
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK) {
        rt_store_rollback(st);
        b->acted = acted;
    } else {
        json_array_foreach(done, i, run) note_acted(b, json_string_value(run), NULL);
        if (json_array_size(done) > 0)
            rt_metrics_counter_add("ratchet_run_control_total", "action", "cancel", json_array_size(done));
    }
    json_decref(done);
    return s;
}

static rt_status replay_page(rt_store *st, rt_bulk *b, json_t *page, json_t *details, rt_error *err)
{
    size_t i;
    json_t *run;
    json_array_foreach(page, i, run) {
        if (json_is_true(json_object_get(run, "refused")))
            continue;
        const char *id = json_string_value(json_object_get(run, "id"));
        char new_id[37];
        json_object_set_new(details, "replay_of", json_string(id));
        rt_error rerr;
        rt_status s = rt_run_replay(st, id, b->from_step, "from_step", b->actor, details, new_id, &rerr);
        if (s == RT_OK && new_id[0]) {
            note_acted(b, id, new_id);
            rt_metrics_counter_add("ratchet_run_control_total", "action", "replay", 1);
        }
        else if (s == RT_OK)
            note_error(b, id, "admission created no run");
        else if (s == RT_ERR_INVALID || s == RT_ERR_NOT_FOUND || s == RT_ERR_CONFLICT)
            note_error(b, id, rerr.msg);
        else {
            *err = rerr;
            return s;
        }
    }
    return RT_OK;
}

/* Marks the page's runs an agent may not touch (system workflows: the filter already
 * holds it to its entity) and counts them. */
static void mark_refused(rt_bulk *b, json_t *page, json_t *refused_ids)
{
    size_t i;
    json_t *run;
    json_array_foreach(page, i, run) {
        const char *why = NULL;
        if (!b->agent ||
            rt_agent_may_touch(b->filter.entity_id, json_is_true(json_object_get(run, "system")),
                               json_string_value(json_object_get(run, "entity_id")), &why))
            continue;
        json_object_set_new(run, "refused", json_true());
        b->refused++;
        if (json_array_size(refused_ids) < REFUSED_IDS_MAX)
            json_array_append(refused_ids, json_object_get(run, "id"));
    }
}

rt_status rt_runs_bulk(rt_store *st, rt_bulk *b, rt_error *err)
{
    b->matched = b->acted = b->refused = b->skipped = 0;
    b->run_ids = json_array();
    b->replay_ids = json_array();
    b->errors = json_array();
    int64_t now = rt_now_ms();
    if (!b->filter.until_ms || b->filter.until_ms > now)
        b->filter.until_ms = now;
    b->filter.unfinished = b->action == RT_BULK_CANCEL;
    int64_t system = 0;
    rt_status s = rt_store_runs_count(st, &b->filter, &b->matched, &system, err);
    if (s != RT_OK)
        return s;
    const char *verb = b->action == RT_BULK_CANCEL ? "cancel" : "replay";
    char why[600];
    snprintf(why, sizeof why, "cancelled by %s (bulk)%s%.500s", b->actor, b->reason ? ": " : "",
             b->reason ? b->reason : "");
    json_t *details = json_pack("{s:s, s:s, s:b}", "via", b->via ? b->via : "api", "bulk", verb, "bulk_action",
                                true);
    if (b->action == RT_BULK_REPLAY && b->from_step)
        json_object_set_new(details, "from", json_string(b->from_step));
    json_t *refused_ids = json_array();
    int64_t cursor_us = 0;
    char cursor_id[37] = "";
    for (;;) {
        json_t *page = NULL;
        int limit = b->dry_run ? RT_BULK_IDS_MAX : RT_BULK_PAGE;
        s = rt_store_runs_page(st, &b->filter, limit, &cursor_us, cursor_id, &page, err);
        if (s != RT_OK)
            break;
        size_t n = json_array_size(page);
        mark_refused(b, page, refused_ids);
        if (b->dry_run) {
            size_t i;
            json_t *run;
            json_array_foreach(page, i, run) {
                if (!json_is_true(json_object_get(run, "refused")) && json_array_size(b->run_ids) < RT_BULK_IDS_MAX)
                    json_array_append(b->run_ids, json_object_get(run, "id"));
            }
        } else if (b->action == RT_BULK_CANCEL) {
            s = cancel_page(st, b, page, details, why, err);
        } else {
            s = replay_page(st, b, page, details, err);
        }
        json_decref(page);
        /* A dry run lists the first page and counts the rest in one statement. */
        if (s != RT_OK || b->dry_run || n < (size_t)limit)
            break;
    }
    if (s == RT_OK && b->dry_run) {
        b->refused = b->agent ? system : 0;
        b->acted = b->matched - b->refused;
    }
    if (s == RT_OK && b->refused > 0 && !b->dry_run) {
        json_t *rd = json_pack("{s:s, s:I, s:O, s:s}", "action", verb, "refused", (json_int_t)b->refused, "run_ids",
                               refused_ids, "reason", "an agent never touches the runs of a system workflow");
        rt_error rerr;
        if (rt_refusal_record_own(st, b->actor, "agent.refused", "runs", rd, &rerr) != RT_OK)
            rt_log(RT_LOG_WARN, NULL, "bulk %s: refusal not audited: %s", verb, rerr.msg);
        json_decref(rd);
    }
    if (s == RT_OK)
        rt_log(RT_LOG_INFO, NULL, "bulk %s by %s%s: matched %lld, acted %lld, refused %lld, skipped %lld", verb,
               b->actor, b->dry_run ? " (dry run)" : "", (long long)b->matched, (long long)b->acted,
               (long long)b->refused, (long long)b->skipped);
    json_decref(refused_ids);
    json_decref(details);
    return s;
}

void rt_bulk_clear(rt_bulk *b)
{
    json_decref(b->run_ids);
    json_decref(b->replay_ids);
    json_decref(b->errors);
    b->run_ids = b->replay_ids = b->errors = NULL;
}

json_t *rt_bulk_json(const rt_bulk *b)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:b, s:O, s:O}", "matched", (json_int_t)b->matched, "acted",
                          (json_int_t)b->acted, "refused", (json_int_t)b->refused, "skipped", (json_int_t)b->skipped,
                          "dry_run", b->dry_run, "run_ids", b->run_ids, "errors", b->errors);
    if (b->action == RT_BULK_REPLAY && !b->dry_run)
        json_object_set(o, "replay_ids", b->replay_ids);
    return o;
}
