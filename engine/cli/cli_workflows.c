/* cli_workflows.c — the `workflows` command on the registry (workflow_catalog.h). Every
 * change is made as "cli:$USER" and audited by the catalog in its own transaction. */
#include "cli_workflows.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "metrics.h"
#include "store.h"
#include "workflow.h"
#include "workflow_catalog.h"

#define EXIT_USAGE 2
#define MAX_POS 16

static const char usage_text[] =
    "usage: ratchet workflows [list] [--json] | apply FILE|DIR... | remove ID [--cancel-running] | pause ID |"
    " resume ID [--on-resume run|skip] | history ID [--json]";

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ratchet workflows: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (%s)\n", usage_text);
    return EXIT_USAGE;
}

static void print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2));
    printf("%s\n", text ? text : "null");
    free(text);
}

static const char *s_or(json_t *o, const char *k, const char *d)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : d;
}

/* "cron 0 0 * * *, event invoice.paid" */
static void triggers_text(json_t *triggers, char *buf, size_t len)
{
    size_t used = 0, i;
    json_t *t;
    buf[0] = '\0';
    json_array_foreach(triggers, i, t) {
        const char *cron = s_or(t, "cron", NULL), *ev = s_or(t, "event", NULL);
        int n = snprintf(buf + used, len - used, "%s%s %s", i ? ", " : "", cron ? "cron" : "event",
                         cron ? cron : ev ? ev : "?");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    if (!buf[0])
        snprintf(buf, len, "manual");
}

static int list(rt_store *st, bool as_json)
{
    json_t *rows = NULL;
    rt_error err;
    if (rt_catalog_list(st, &rows, &err) != RT_OK) {
        fprintf(stderr, "ratchet workflows: %s\n", err.msg);
        return 1;
    }
    if (as_json) {
        print_json(rows);
    } else if (json_array_size(rows) == 0) {
        printf("(no workflows: `ratchet serve` syncs its directory, `ratchet workflows apply FILE` adds one)\n");
    } else {
        printf("%-28s %-12s %-6s %-9s %-40s %-22s %s\n", "WORKFLOW", "VERSION", "SOURCE", "STATE", "TRIGGERS",
               "LAST RUN", "IN FLIGHT");
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
            const char *state = json_is_true(json_object_get(r, "removed"))   ? "removed"
                                : json_is_true(json_object_get(r, "paused"))  ? "paused"
                                : json_is_true(json_object_get(r, "enabled")) ? "enabled"
                                                                              : "disabled";
            char trig[41], last[64] = "-";
            triggers_text(json_object_get(r, "triggers"), trig, sizeof trig);
            json_t *lr = json_object_get(r, "last_run");
            if (json_is_object(lr))
                snprintf(last, sizeof last, "%s", s_or(lr, "status", "?"));
            printf("%-28s %-12.12s %-6s %-9s %-40s %-22s %lld\n", s_or(r, "id", "?"), s_or(r, "version", "-"),
                   s_or(r, "source", "?"), state, trig, last,
                   (long long)json_integer_value(json_object_get(r, "in_flight")));
        }
    }
    json_decref(rows);
    return 0;
}

static void print_bad(void *arg, const char *file, const rt_error *err)
{
    (void)file;
    int *bad = arg;
    (*bad)++;
    rt_metrics_counter_add("ratchet_bad_input_total", "kind", "workflow", 1);
    fprintf(stderr, "error: %s\n", err->msg);
}

static int apply(rt_store *st, const char *actor, const char *const *paths, int n)
{
    int bad = 0, rc = 0;
    for (int p = 0; p < n; p++) {
        rt_workflow_set *set = NULL;
        rt_error err;
        if (rt_workflow_load_dir(paths[p], &set, print_bad, &bad, &err) != RT_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
            continue;
        }
        for (size_t i = 0; i < set->n; i++) {
            bool changed = false;
            const rt_workflow *wf = set->items[i];
            if (rt_catalog_apply(st, wf, "api", actor, &changed, &err) != RT_OK) {
                fprintf(stderr, "error: %s: %s\n", wf->id, err.msg);
                rc = 1;
                continue;
            }
            printf("%s: %s %.12s\n", changed ? "applied" : "unchanged", wf->id, wf->hash);
        }
        rt_workflow_set_free(set);
    }
    return rc || bad ? 1 : 0;
}

static int history(rt_store *st, const char *id, bool as_json)
{
    json_t *changes = NULL;
    rt_error err;
    if (rt_catalog_history(st, id, &changes, &err) != RT_OK) {
        fprintf(stderr, "ratchet workflows history: %s\n", err.msg);
        return 1;
    }
    size_t i;
    json_t *c;
    if (as_json) {
        json_array_foreach(changes, i, c) json_object_del(c, "definition");
        print_json(changes);
    } else {
        json_array_foreach(changes, i, c) {
            const char *action = s_or(c, "action", "?");
            printf("#%lld %s %s by %s", (long long)json_integer_value(json_object_get(c, "seq")), s_or(c, "at", "?"),
                   action, s_or(c, "actor", "?"));
            if (!strcmp(action, "apply"))
                printf(": version %.12s (%s)", s_or(c, "hash", "?"), s_or(c, "source", "?"));
            json_t *d = json_object_get(c, "details");
            if (json_is_object(d) && strcmp(action, "apply")) {
                char *t = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
                printf(" %s", t ? t : "");
                free(t);
            }
            printf("\n");
            const char *diff = s_or(c, "diff", NULL);
            if (diff && *diff)
                printf("%s", diff);
        }
    }
    json_decref(changes);
    return 0;
}

int rt_cli_workflows(rt_config *cfg, int argc, char **argv, int pos)
{
    const char *positional[MAX_POS];
    int n_pos = 0;
    bool as_json = false, cancel_running = false;
    const char *on_resume = NULL;
    for (int i = pos; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (n_pos == MAX_POS)
                return usage("unexpected argument \"%s\"", a);
            positional[n_pos++] = a;
        } else if (!strcmp(a, "--json")) {
            as_json = true;
        } else if (!strcmp(a, "--cancel-running")) {
            cancel_running = true;
        } else if (!strncmp(a, "--on-resume", 11) && (a[11] == '=' || a[11] == '\0')) {
            on_resume = a[11] == '=' ? a + 12 : i + 1 < argc ? argv[++i] : NULL;
            if (!on_resume || (strcmp(on_resume, "run") && strcmp(on_resume, "skip")))
                return usage("%s", "--on-resume takes run or skip");
        } else {
            rt_error err;
            rt_status s = rt_config_apply_flag(cfg, argc, argv, &i, &err);
            if (s == RT_ERR_NOT_FOUND)
                return usage("unknown option \"%s\"", a);
            if (s != RT_OK)
                return usage("%s", err.msg);
        }
    }
    const char *verb = n_pos ? positional[0] : "list";
    static const char *const verbs[] = {"list", "apply", "remove", "pause", "resume", "history", NULL};
    bool known = false;
    for (size_t k = 0; verbs[k]; k++)
        known = known || !strcmp(verb, verbs[k]);
    if (!known)
        return usage("unknown subcommand \"%s\"", verb);
    bool is_list = !strcmp(verb, "list"), is_apply = !strcmp(verb, "apply");
    if (is_list && n_pos > 1)
        return usage("unexpected argument \"%s\"", positional[1]);
    if (is_apply && n_pos < 2)
        return usage("%s", "apply needs a file or directory");
    if (!is_list && !is_apply && n_pos != 2)
        return usage("%s needs exactly one workflow id", verb);
    if (as_json && !is_list && strcmp(verb, "history"))
        return usage("%s", "--json is for list and history");
    if (cancel_running && strcmp(verb, "remove"))
        return usage("%s", "--cancel-running is for remove");
    if (on_resume && strcmp(verb, "resume"))
        return usage("%s", "--on-resume is for resume");

    rt_error err;
    if (rt_config_apply_logging(cfg, &err) != RT_OK || rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet workflows: %s\n", err.msg);
        return EXIT_USAGE;
    }
    rt_store *st = NULL;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet workflows: %s\n", err.msg);
        return 1;
    }
    char actor[160];
    rt_audit_cli_actor(actor, sizeof actor);
    int rc = 0;
    const char *id = n_pos > 1 ? positional[1] : NULL;
    if (is_list) {
        rc = list(st, as_json);
    } else if (is_apply) {
        rc = apply(st, actor, positional + 1, n_pos - 1);
    } else if (!strcmp(verb, "history")) {
        rc = history(st, id, as_json);
    } else {
        bool changed = false;
        size_t n1 = 0, n2 = 0;
        rt_status s;
        if (!strcmp(verb, "remove"))
            s = rt_catalog_remove(st, id, actor, cancel_running, &n1, &err);
        else if (!strcmp(verb, "pause"))
            s = rt_catalog_pause(st, id, actor, &changed, &err);
        else
            s = rt_catalog_resume(st, id, actor, on_resume, &changed, &n1, &n2, &err);
        if (s != RT_OK) {
            fprintf(stderr, "ratchet workflows %s: %s\n", verb, err.msg);
            rc = s == RT_ERR_INVALID ? EXIT_USAGE : 1;
        } else if (!strcmp(verb, "remove")) {
            printf("removed %s: no new runs; %zu run(s) in flight %s\n", id, n1,
                   cancel_running ? "cancelled" : "finish on their version");
        } else if (!strcmp(verb, "pause")) {
            printf(changed ? "paused %s: new runs are held until `ratchet workflows resume %s`\n"
                           : "%s was already paused%.0s\n",
                   id, id);
        } else if (changed) {
            printf("resumed %s: %zu held run(s) started, %zu skipped\n", id, n1, n2);
        } else {
            printf("%s was not paused\n", id);
        }
    }
    rt_store_close(st);
    return rc;
}
