/* workflow_catalog.c — sync, apply, remove, pause, resume, list and history of the
 * registry (see workflow_catalog.h). Every change takes the registry lock, records a
 * change row and an audit record and NOTIFYs, all in its own transaction. */
#include "workflow_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "create.h"
#include "log.h"
#include "store_audit.h"
#include "store_workflows.h"
#include "textdiff.h"
#include "util.h"

static rt_status begin_locked(rt_store *st, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_wf_lock(st, err);
    return s;
}

static json_t *state_of(json_t *states, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(states, i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "workflow_id")), id))
            return r;
    }
    return NULL;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A new current version inside the caller's locked transaction. */
/* later (may be NULL): collects the audit record ({action, subject, details}) instead of
 * appending it, for a transaction that appends its records last (rt_catalog_sync_dir). */
static rt_status apply_locked(rt_store *st, const rt_workflow *wf, const char *source, const char *actor,
                              const json_t *prev, json_t *later, rt_error *err)
{
    rt_status s = rt_store_put_workflow(st, wf, err);
    if (s == RT_OK)
        s = rt_store_wf_set_current(st, wf->id, wf->hash, source, wf->file, err);
    if (s == RT_OK)
        s = rt_store_wf_change(st, wf->id, "apply", wf->hash, source, actor, NULL, err);
    json_t *details = json_pack("{s:s, s:s, s:s?}", "version", wf->hash, "source", source, "previous",
                                prev && !json_is_true(json_object_get(prev, "removed")) ? str(prev, "hash") : NULL);
    if (s == RT_OK && later)
        json_array_append_new(later, json_pack("{s:s, s:s, s:O}", "action", "workflow.apply", "subject", wf->id,
                                               "details", details));
    else if (s == RT_OK) /* AUDIT HOOK (DESIGN §6), in this transaction */
        s = rt_store_audit_append(st, actor, "workflow.apply", wf->id, details, err);
    json_decref(details);
    return s;
}

/* Appends the collected records (apply_locked's later) in order. */
static rt_status audit_all(rt_store *st, const char *actor, json_t *records, rt_error *err)
{
    rt_status s = RT_OK;
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r) {
        if (s == RT_OK) /* AUDIT HOOK (DESIGN §6), in this transaction */
            s = rt_store_audit_append(st, actor, json_string_value(json_object_get(r, "action")),
                                      json_string_value(json_object_get(r, "subject")), json_object_get(r, "details"),
                                      err);
    }
    return s;
}

typedef struct bad_files {
    json_t *paths;
    rt_workflow_error_fn fn;
    void *arg;
} bad_files;

static void note_bad(void *arg, const char *file, const rt_error *e)
{
    bad_files *b = arg;
    json_array_append_new(b->paths, json_string(file ? file : ""));
    if (b->fn)
        b->fn(b->arg, file, e);
}

static bool listed(json_t *paths, const char *p)
{
    size_t i;
    json_t *v;
    json_array_foreach(paths, i, v) {
        if (p && !strcmp(json_string_value(v), p))
            return true;
    }
    return false;
}

rt_status rt_catalog_sync_dir(rt_store *st, const char *dir, const char *actor, rt_workflow_error_fn on_error,
                              void *arg, rt_catalog_sync_result *res, rt_error *err)
{
    memset(res, 0, sizeof *res);
    bad_files bad = {.paths = json_array(), .fn = on_error, .arg = arg};
    /* The audit records go last: the chain's lock is then held only at the end, never while
     * this transaction waits on a row (a version another transaction is pinning for a new
     * run, which wants that lock next: a deadlock). */
    json_t *later = json_array();
    rt_workflow_set *set = NULL;
    rt_status s = rt_workflow_load_dir(dir, &set, note_bad, &bad, err);
    json_t *states = NULL;
    if (s == RT_OK) {
        res->files = set->n;
        res->errors = set->n_errors;
        s = begin_locked(st, err);
    }
    if (s == RT_OK)
        s = rt_store_wf_states(st, &states, err);
    for (size_t i = 0; s == RT_OK && i < set->n; i++) {
        const rt_workflow *wf = set->items[i];
        json_t *row = state_of(states, wf->id);
        const char *file_hash = row ? str(row, "file_hash") : NULL;
        if (file_hash && !strcmp(file_hash, wf->hash))
            continue; /* the file did not change since it was last synced */
        if (row && !json_is_true(json_object_get(row, "removed")) && !strcmp(str(row, "hash"), wf->hash)) {
            s = rt_store_wf_set_current(st, wf->id, wf->hash, "file", wf->file, err); /* same version */
            continue;
        }
        s = apply_locked(st, wf, "file", actor, row, later, err);
        res->applied++;
    }
    size_t k;
    json_t *row;
    json_array_foreach(states, k, row) {
        const char *id = str(row, "workflow_id");
        if (s != RT_OK || json_is_true(json_object_get(row, "removed")) || strcmp(str(row, "source"), "file") ||
            rt_workflow_set_find(set, id) || listed(bad.paths, str(row, "file")))
            continue;
        s = rt_store_wf_set_removed(st, id, true, err);
        if (s == RT_OK)
            s = rt_store_wf_change(st, id, "remove", NULL, "file", actor, NULL, err);
        json_array_append_new(later, json_pack("{s:s, s:s, s:{s:s?}}", "action", "workflow.remove", "subject", id,
                                               "details", "file", str(row, "file")));
        res->removed++;
    }
    if (s == RT_OK)
        s = audit_all(st, actor, later, err);
    if (s == RT_OK && (res->applied || res->removed))
        s = rt_store_wf_notify(st, err);
    if (set)
        s = rt_store_end(st, s, err);
    json_decref(states);
    json_decref(bad.paths);
    json_decref(later);
    rt_workflow_set_free(set);
    return s;
}

static rt_status build(json_t *row, rt_workflow **out, rt_error *err)
{
    rt_status s = rt_workflow_from_json(json_object_get(row, "definition"), NULL, out, err);
    if (s == RT_OK) /* the pinned hash: jsonb may print a definition differently */
        snprintf((*out)->hash, sizeof (*out)->hash, "%s", str(row, "hash"));
    return s;
}

rt_status rt_catalog_load(rt_store *st, rt_workflow_set **out, rt_error *err)
{
    json_t *rows = NULL;
    rt_status s = rt_store_wf_current(st, &rows, err);
    if (s != RT_OK)
        return s;
    rt_workflow_set *set = calloc(1, sizeof *set);
    set->items = calloc(json_array_size(rows) + 1, sizeof *set->items);
    if (!set || !set->items) {
        if (set)
            free(set->items);
        free(set);
        json_decref(rows);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        rt_error e;
        rt_workflow *wf = NULL;
        if (build(row, &wf, &e) != RT_OK) {
            /* A version stored by a newer engine (a step type this one lacks): skipped here. */
            rt_log(RT_LOG_ERROR, NULL, "registry: workflow %s version %.12s does not load here: %s",
                   str(row, "workflow_id"), str(row, "hash"), e.msg);
            set->n_errors++;
            continue;
        }
        set->items[set->n++] = wf;
    }
    json_decref(rows);
    *out = set;
    return RT_OK;
}

rt_status rt_catalog_find(rt_store *st, const char *id, rt_workflow **out, rt_error *err)
{
    *out = NULL;
    json_t *row = NULL, *def = NULL;
    rt_status s = rt_store_wf_state(st, id, &row, err);
    if (s == RT_OK && json_is_true(json_object_get(row, "removed")))
        s = rt_error_set(err, RT_ERR_NOT_FOUND, "workflow \"%.128s\" was removed", id);
    if (s == RT_OK)
        s = rt_store_get_definition(st, str(row, "hash"), &def, err);
    if (s == RT_OK) {
        json_object_set_new(row, "definition", def); /* steals def */
        s = build(row, out, err);
    }
    json_decref(row);
    return s;
}

rt_status rt_catalog_apply_tx(rt_store *st, const rt_workflow *wf, const char *source, const char *actor,
                              bool *changed, rt_error *err)
{
    *changed = false;
    json_t *row = NULL;
    rt_status s = rt_store_wf_lock(st, err);
    if (s == RT_OK) {
        s = rt_store_wf_state(st, wf->id, &row, err);
        if (s == RT_ERR_NOT_FOUND)
            s = RT_OK;
    }
    bool same = row && !json_is_true(json_object_get(row, "removed")) && !strcmp(str(row, "hash"), wf->hash);
    if (s == RT_OK && !same) {
        s = apply_locked(st, wf, source, actor, row, NULL, err);
        if (s == RT_OK)
            s = rt_store_wf_notify(st, err);
        *changed = s == RT_OK;
    }
    json_decref(row);
    return s;
}

rt_status rt_catalog_apply(rt_store *st, const rt_workflow *wf, const char *source, const char *actor,
                           bool *changed, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_catalog_apply_tx(st, wf, source, actor, changed, err);
    return rt_store_end(st, s, err);
}

/* The registry row of id, locked in: RT_ERR_NOT_FOUND when unknown or removed. */
static rt_status live_row(rt_store *st, const char *id, json_t **row, rt_error *err)
{
    rt_status s = rt_store_wf_state(st, id, row, err);
    if (s == RT_OK && json_is_true(json_object_get(*row, "removed")))
        s = rt_error_set(err, RT_ERR_NOT_FOUND, "workflow \"%.128s\" was removed", id);
    return s;
}

rt_status rt_catalog_remove(rt_store *st, const char *id, const char *actor, bool cancel_running,
                            size_t *cancelled, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_catalog_remove_tx(st, id, actor, cancel_running, cancelled, err);
    return rt_store_end(st, s, err);
}

rt_status rt_catalog_remove_tx(rt_store *st, const char *id, const char *actor, bool cancel_running,
                               size_t *cancelled, rt_error *err)
{
    *cancelled = 0;
    json_t *row = NULL, *runs = NULL;
    rt_status s = rt_store_wf_lock(st, err);
    if (s == RT_OK)
        s = live_row(st, id, &row, err);
    if (s == RT_OK)
        s = rt_store_wf_set_removed(st, id, false, err);
    if (s == RT_OK) {
        json_t *ids = json_pack("[s]", id);
        s = rt_store_active_runs(st, ids, &runs, err);
        json_decref(ids);
    }
    *cancelled = json_array_size(runs); /* in flight: cancelled below, or left to finish */
    if (s == RT_OK && cancel_running && json_array_size(runs)) {
        char why[200];
        snprintf(why, sizeof why, "cancelled: workflow %.100s removed by %.60s", id, actor);
        size_t i;
        json_t *r;
        json_array_foreach(runs, i, r) json_object_set_new(r, "error", json_string(why));
        s = rt_store_cancel_runs(st, runs, err);
    }
    json_t *details = json_pack("{s:b, s:I}", "cancel_running", cancel_running, "in_flight", (json_int_t)*cancelled);
    if (s == RT_OK)
        s = rt_store_wf_change(st, id, "remove", NULL, NULL, actor, details, err);
    if (s == RT_OK) /* AUDIT HOOK (DESIGN §6) */
        s = rt_store_audit_append(st, actor, "workflow.remove", id, details, err);
    if (s == RT_OK)
        s = rt_store_wf_notify(st, err);
    json_decref(details);
    json_decref(runs);
    json_decref(row);
    return s;
}

rt_status rt_catalog_pause(rt_store *st, const char *id, const char *actor, bool *changed, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_catalog_pause_tx(st, id, actor, changed, err);
    return rt_store_end(st, s, err);
}

rt_status rt_catalog_pause_tx(rt_store *st, const char *id, const char *actor, bool *changed, rt_error *err)
{
    *changed = false;
    json_t *row = NULL;
    rt_status s = rt_store_wf_lock(st, err);
    if (s == RT_OK)
        s = live_row(st, id, &row, err);
    if (s == RT_OK && !json_is_true(json_object_get(row, "paused"))) {
        s = rt_store_wf_set_paused(st, id, true, actor, err);
        if (s == RT_OK)
            s = rt_store_wf_change(st, id, "pause", NULL, NULL, actor, NULL, err);
        if (s == RT_OK) /* AUDIT HOOK (DESIGN §6) */
            s = rt_store_audit_append(st, actor, "workflow.pause", id, NULL, err);
        if (s == RT_OK)
            s = rt_store_wf_notify(st, err);
        *changed = s == RT_OK;
    }
    json_decref(row);
    return s;
}

/* Starts the held requests on wf, in the resume's transaction. */
static rt_status start_held(rt_store *st, const rt_workflow *wf, json_t *held, size_t *started, rt_error *err)
{
    size_t n = json_array_size(held);
    rt_run_request *reqs = calloc(n ? n : 1, sizeof *reqs);
    if (!reqs)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *h;
    json_array_foreach(held, i, h) {
        reqs[i] = (rt_run_request){.wf = wf,
                                   .trigger = json_object_get(h, "trigger"), /* borrowed from held */
                                   .event = json_object_get(h, "event"),
                                   .run_at_ms = json_integer_value(json_object_get(h, "run_at")),
                                   .dedupe_key = str(h, "dedupe_key"),
                                   .parent_run_id = str(h, "parent_run_id"),
                                   .parent_step_id = str(h, "parent_step_id")};
    }
    rt_status s = n ? rt_run_create_tx(st, reqs, n, err) : RT_OK;
    for (size_t k = 0; s == RT_OK && k < n; k++)
        *started += reqs[k].id[0] != '\0';
    free(reqs);
    return s;
}

rt_status rt_catalog_resume(rt_store *st, const char *id, const char *actor, const char *on_resume,
                            bool *changed, size_t *started, size_t *skipped, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_catalog_resume_tx(st, id, actor, on_resume, changed, started, skipped, err);
    return rt_store_end(st, s, err);
}

rt_status rt_catalog_resume_tx(rt_store *st, const char *id, const char *actor, const char *on_resume,
                               bool *changed, size_t *started, size_t *skipped, rt_error *err)
{
    *changed = false;
    *started = *skipped = 0;
    if (on_resume && strcmp(on_resume, "run") && strcmp(on_resume, "skip"))
        return rt_error_set(err, RT_ERR_INVALID, "on_resume must be run or skip, not \"%.32s\"", on_resume);
    json_t *row = NULL, *held = NULL;
    rt_workflow *wf = NULL;
    rt_status s = rt_store_wf_lock(st, err);
    if (s == RT_OK)
        s = live_row(st, id, &row, err);
    if (s == RT_OK && json_is_true(json_object_get(row, "paused"))) {
        s = rt_store_wf_set_paused(st, id, false, actor, err);
        if (s == RT_OK)
            s = rt_catalog_find(st, id, &wf, err);
        if (s == RT_OK)
            s = rt_store_wf_take_held(st, id, &held, err);
        bool skip = on_resume ? !strcmp(on_resume, "skip") : wf && wf->on_resume_skip;
        if (s == RT_OK && skip)
            *skipped = json_array_size(held);
        else if (s == RT_OK)
            s = start_held(st, wf, held, started, err);
        json_t *details = json_pack("{s:s, s:I, s:I}", "on_resume", skip ? "skip" : "run", "started",
                                    (json_int_t)*started, "skipped", (json_int_t)*skipped);
        if (s == RT_OK)
            s = rt_store_wf_change(st, id, "resume", NULL, NULL, actor, details, err);
        if (s == RT_OK) /* AUDIT HOOK (DESIGN §6) */
            s = rt_store_audit_append(st, actor, "workflow.resume", id, details, err);
        json_decref(details);
        if (s == RT_OK)
            s = rt_store_wf_notify(st, err);
        *changed = s == RT_OK;
    }
    rt_workflow_free(wf);
    json_decref(held);
    json_decref(row);
    return s;
}

rt_status rt_catalog_list(rt_store *st, json_t **out, rt_error *err)
{
    return rt_store_wf_list(st, out, err);
}

char *rt_catalog_diff(const json_t *from, const json_t *to, const char *label_from, const char *label_to)
{
    size_t flags = JSON_INDENT(2) | JSON_SORT_KEYS;
    char *a = from ? json_dumps(from, flags) : NULL, *b = to ? json_dumps(to, flags) : NULL;
    char *d = rt_text_diff(a ? a : "", b ? b : "", label_from, label_to);
    free(a);
    free(b);
    return d;
}

rt_status rt_catalog_history(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    json_t *changes = NULL;
    rt_status s = rt_store_wf_changes(st, id, &changes, err);
    if (s != RT_OK)
        return s;
    if (json_array_size(changes) == 0) {
        json_decref(changes);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "workflow \"%.128s\" has no history", id);
    }
    const json_t *prev = NULL; /* the previous version's definition */
    char prev_label[80] = "/dev/null";
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c) {
        if (strcmp(str(c, "action"), "apply"))
            continue;
        const json_t *def = json_object_get(c, "definition");
        char label[80];
        snprintf(label, sizeof label, "%s@%.12s", id, str(c, "hash"));
        char *d = rt_catalog_diff(prev, def, prev_label, label);
        json_object_set_new(c, "diff", d ? json_string(d) : json_null());
        free(d);
        prev = def;
        snprintf(prev_label, sizeof prev_label, "%s", label);
    }
    *out = changes;
    return RT_OK;
}
