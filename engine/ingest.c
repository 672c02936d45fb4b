/* ingest.c — events in, runs out, in one transaction per batch. */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "log.h"

bool rt_ingest_matches(const rt_workflow *wf, const rt_event *ev)
{
    if (!wf->enabled)
        return false;
    for (size_t t = 0; t < wf->n_triggers; t++) {
        const rt_trigger *tr = &wf->triggers[t];
        if (tr->kind != RT_TRIGGER_EVENT || !rt_event_name_matches(tr->event, ev->name))
            continue;
        if (!tr->if_expr)
            return true;
        /* The context holds only the event: borrowed envelope, increfed by "O". */
        json_t *ctx = json_pack("{s:O}", "event", ev->envelope);
        bool yes = false;
        rt_error err;
        if (rt_expr_condition(tr->if_expr, ctx, &yes, &err) != RT_OK) {
            rt_log_ctx lc = {.workflow = wf->id};
            rt_log(RT_LOG_WARN, &lc, "trigger if for event %s (%s) failed, not starting: %s", ev->id, ev->name,
                   err.msg);
            yes = false;
        }
        json_decref(ctx);
        if (yes)
            return true;
    }
    return false;
}

void rt_ingest_results_clear(rt_ingest_result *results, size_t n)
{
    for (size_t i = 0; results && i < n; i++) {
        json_decref(results[i].run_ids);
        results[i].run_ids = NULL;
    }
}

rt_status rt_ingest_events(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                           const char *transport, rt_ingest_result *results, rt_error *err)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:O, s:s}", "id", events[i]->id, "name",
                                              events[i]->name, "ts", (json_int_t)events[i]->ts_ms, "envelope",
                                              events[i]->envelope, "transport", transport));
        if (results) {
            results[i].duplicate = true;
            results[i].run_ids = json_array();
        }
    }
    json_t *inserted = NULL;
    rt_run_request *reqs = NULL;
    size_t n_reqs = 0, cap = 0;
    json_t **req_trigger = NULL;
    size_t *req_event = NULL;
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_insert_events(st, rows, &inserted, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        bool fresh = false;
        size_t k;
        json_t *id;
        json_array_foreach(inserted, k, id) {
            if (strcmp(json_string_value(id), events[i]->id) == 0) {
                fresh = true;
                break;
            }
        }
        /* The same id twice in one batch: only the first occurrence counts. */
        for (size_t j = 0; fresh && j < i; j++)
            if (strcmp(events[j]->id, events[i]->id) == 0)
                fresh = false;
        if (!fresh)
            continue;
        if (results)
            results[i].duplicate = false;
        for (size_t w = 0; set && w < set->n; w++) {
            const rt_workflow *wf = set->items[w];
            if (!rt_ingest_matches(wf, events[i]))
                continue;
            if (n_reqs == cap) {
                cap = cap ? cap * 2 : 16;
                reqs = realloc(reqs, cap * sizeof *reqs);
                req_trigger = realloc(req_trigger, cap * sizeof *req_trigger);
                req_event = realloc(req_event, cap * sizeof *req_event);
            }
            char key[256];
            snprintf(key, sizeof key, "event:%s", events[i]->id);
            req_trigger[n_reqs] = json_pack("{s:s, s:s, s:s, s:s}", "type", "event", "event_id", events[i]->id,
                                            "event", events[i]->name, "transport", transport);
            req_event[n_reqs] = i;
            reqs[n_reqs] = (rt_run_request){.wf = wf, .trigger = req_trigger[n_reqs], .event = events[i]->envelope};
            /* The key buffer must outlive create_runs: keep it in the trigger object. */
            json_object_set_new(req_trigger[n_reqs], "dedupe_key", json_string(key));
            reqs[n_reqs].dedupe_key = json_string_value(json_object_get(req_trigger[n_reqs], "dedupe_key"));
            n_reqs++;
        }
    }
    if (s == RT_OK && n_reqs > 0)
        s = rt_store_create_runs_tx(st, reqs, n_reqs, err);
    if (s == RT_OK && n_reqs > 0) {
        json_t *pairs = json_object(); /* event id -> [run ids] */
        for (size_t r = 0; r < n_reqs; r++) {
            if (!reqs[r].id[0])
                continue;
            const rt_event *ev = events[req_event[r]];
            json_t *list = json_object_get(pairs, ev->id);
            if (!list) {
                list = json_array();
                json_object_set_new(pairs, ev->id, list);
            }
            json_array_append_new(list, json_string(reqs[r].id));
            if (results)
                json_array_append_new(results[req_event[r]].run_ids, json_string(reqs[r].id));
        }
        json_t *arr = json_array();
        const char *eid;
        json_t *list;
        json_object_foreach(pairs, eid, list) {
            json_array_append_new(arr, json_pack("{s:s, s:O}", "id", eid, "run_ids", list));
        }
        s = rt_store_set_event_runs(st, arr, err);
        json_decref(arr);
        json_decref(pairs);
    }
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK) {
        rt_store_rollback(st);
        if (results) {
            for (size_t i = 0; i < n; i++)
                json_array_clear(results[i].run_ids);
        }
    }
    for (size_t r = 0; r < n_reqs; r++)
        json_decref(req_trigger[r]);
    free(reqs);
    free(req_trigger);
    free(req_event);
    json_decref(inserted);
    json_decref(rows);
    return s;
}
