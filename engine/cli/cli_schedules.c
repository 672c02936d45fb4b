/* cli_schedules.c — the `schedules` command: list every cron trigger with its state and
 * fire times, pause and resume a workflow's schedules. */
#include "cli_schedules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "audit.h"
#include "cron.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "store_schedules.h"
#include "util.h"
#include "workflow.h"

#define EXIT_USAGE 2

static const rt_arg_opt schedules_opts[] = {{"--json", NULL, "print JSON (list only)"}, {NULL, NULL, NULL}};
static const rt_arg_cmd schedules_cmd = {
    "ratchet schedules", "[list | pause WORKFLOW | resume WORKFLOW]", 2,
    "every cron trigger (expression, zone, state, last and next fire); pause or resume a workflow's ticks",
    schedules_opts, true};

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ratchet schedules: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see ratchet schedules --help\n");
    return EXIT_USAGE;
}

static void local_or_dash(const rt_tz *tz, int64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        snprintf(buf, len, "-");
        return;
    }
    char t[32], d[16];
    rt_schedule_local_time(tz, ms / 1000, t, d);
    snprintf(buf, len, "%s", t);
}

static int list(rt_store *st, bool as_json)
{
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    rt_error err;
    if (rt_store_schedules_list(st, &rows, &n, &err) != RT_OK) {
        fprintf(stderr, "ratchet schedules: %s\n", err.msg);
        return 1;
    }
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, rt_schedule_row_json(&rows[i]));
        char *text = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(arr);
    } else if (n == 0) {
        printf("(no cron schedules: they appear when `ratchet serve` loads workflows with cron triggers)\n");
    } else {
        /* Times in each trigger's own zone, as the expression reads; each zone read once. */
        enum { ZONES = 64 };
        const char *zone_names[ZONES];
        rt_tz *zones[ZONES];
        size_t n_zones = 0;
        printf("%-28s %-3s %-18s %-20s %-8s %-25s %s\n", "WORKFLOW", "#", "CRON", "TIMEZONE", "STATE", "LAST FIRE",
               "NEXT FIRE");
        for (size_t i = 0; i < n; i++) {
            const rt_schedule_row *r = &rows[i];
            rt_tz *tz = NULL; /* NULL: shown in UTC */
            size_t z = 0;
            while (z < n_zones && strcmp(zone_names[z], r->timezone))
                z++;
            if (z < n_zones) {
                tz = zones[z];
            } else if (n_zones < ZONES) {
                rt_error e;
                if (rt_tz_load(r->timezone, &tz, &e) != RT_OK)
                    tz = NULL;
                zone_names[n_zones] = r->timezone;
                zones[n_zones++] = tz;
            }
            char last[40], next[40];
            local_or_dash(tz, r->last_fire_ms, last, sizeof last);
            local_or_dash(tz, r->enabled && !r->paused ? r->next_fire_ms : 0, next, sizeof next);
            printf("%-28s %-3d %-18s %-20s %-8s %-25s %s\n", r->workflow_id, r->trigger_index, r->cron, r->timezone,
                   rt_schedule_state(r), last, next);
        }
        for (size_t z = 0; z < n_zones; z++)
            rt_tz_free(zones[z]);
    }
    rt_schedule_rows_free(rows, n);
    return 0;
}

static void quiet_error(void *arg, const char *file, const rt_error *err)
{
    (void)arg;
    (void)file;
    (void)err;
}

/* Does the workflow have schedules, or is it about to (a file with a cron trigger that no
 * serve has loaded yet)? Prints the reason and returns false when not. */
static bool known(rt_store *st, const rt_config *cfg, const char *wf_id, size_t *n_schedules)
{
    rt_error err;
    if (rt_store_schedules_count(st, wf_id, n_schedules, &err) != RT_OK) {
        fprintf(stderr, "ratchet schedules: %s\n", err.msg);
        return false;
    }
    if (*n_schedules > 0)
        return true;
    rt_workflow_set *set = NULL;
    const rt_workflow *wf = NULL;
    if (cfg->workflows && rt_workflow_load_dir(cfg->workflows, &set, quiet_error, NULL, &err) == RT_OK)
        wf = rt_workflow_set_find(set, wf_id);
    bool cron = false;
    for (size_t k = 0; wf && k < wf->n_triggers; k++)
        cron |= wf->triggers[k].kind == RT_TRIGGER_CRON;
    if (wf && !cron)
        fprintf(stderr, "ratchet schedules: workflow \"%s\" has no cron trigger\n", wf_id);
    else if (!wf)
        fprintf(stderr,
                "ratchet schedules: unknown workflow \"%s\": no cron schedule has that workflow id "
                "(see `ratchet schedules`)\n",
                wf_id);
    rt_workflow_set_free(set);
    return wf && cron;
}

int rt_cli_schedules(rt_config *cfg, int argc, char **argv, int pos)
{
    rt_args args;
    int rc;
    if (!rt_args_take(&schedules_cmd, cfg, argc, argv, pos, &args, &rc))
        return rc;
    const char *positional[2] = {args.n_pos > 0 ? args.pos[0] : NULL, args.n_pos > 1 ? args.pos[1] : NULL};
    bool as_json = rt_args_given(&args, "--json");
    const char *verb = positional[0] ? positional[0] : "list";
    bool is_list = !strcmp(verb, "list"), is_pause = !strcmp(verb, "pause"), is_resume = !strcmp(verb, "resume");
    if (!is_list && !is_pause && !is_resume)
        return usage("unknown subcommand \"%s\"", verb);
    if (is_list && positional[1])
        return usage("unexpected argument \"%s\"", positional[1]);
    if (!is_list && !positional[1])
        return usage("%s needs a workflow id", verb);
    if (!is_list && as_json)
        return usage("%s", "--json is for the list only");

    rt_error err;
    if (rt_config_apply_logging(cfg, &err) != RT_OK || rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet schedules: %s\n", err.msg);
        return EXIT_USAGE;
    }
    rt_store *st = NULL;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet schedules: %s\n", err.msg);
        return 1;
    }
    if (is_list) {
        rc = list(st, as_json);
        rt_store_close(st);
        return rc;
    }
    const char *wf_id = positional[1];
    size_t n_sched = 0;
    bool paused = false;
    /* A resume also clears a pause whose workflow has no schedules any more. */
    if (is_resume && rt_store_schedules_paused(st, wf_id, &paused, &err) != RT_OK) {
        fprintf(stderr, "ratchet schedules: %s\n", err.msg);
        rt_store_close(st);
        return 1;
    }
    if (!paused && !known(st, cfg, wf_id, &n_sched)) {
        rt_store_close(st);
        return 1;
    }
    char actor[160];
    rt_audit_cli_actor(actor, sizeof actor);
    bool changed = false;
    rt_status s = is_pause ? rt_schedules_pause(st, wf_id, actor, &changed, &err)
                           : rt_schedules_resume(st, wf_id, actor, &changed, &err);
    rt_store_close(st);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet schedules %s: %s\n", verb, err.msg);
        return 1;
    }
    if (is_pause && changed)
        printf("paused %s: no cron tick fires until `ratchet schedules resume %s`\n", wf_id, wf_id);
    else if (is_pause)
        printf("%s was already paused\n", wf_id);
    else if (changed)
        printf("resumed %s: it fires from its next tick on (the ticks of the pause are not caught up)\n", wf_id);
    else
        printf("%s was not paused\n", wf_id);
    return 0;
}
