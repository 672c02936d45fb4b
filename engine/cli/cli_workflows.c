/* cli_workflows.c — the `workflows` command on the registry (workflow_catalog.h). Every
 * change is made as "cli:$USER" and audited by the catalog in its own transaction. */
#include "cli_workflows.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approval.h"
#include "args.h"
#include "audit.h"
#include "metrics.h"
#include "store.h"
#include "store_workflows.h"
#include "util.h"
#include "workflow.h"
#include "workflow_catalog.h"
#include "workflow_proposal.h"

#define EXIT_USAGE 2
#define MAX_POS 16

static const rt_arg_opt workflows_opts[] = {
    {"--json", NULL, "print JSON (list, history)"},
    {"--cancel-running", NULL, "remove: cancel the runs in flight instead of letting them finish"},
    {"--on-resume", "run|skip", "resume: start the runs held while paused (run, the workflow's default) or drop them"},
    {"--as", "APPROVER", "approve, reject: the approver's id"},
    {"--key", "FILE", "approve, reject: the approver's private key"},
    {"--comment", "TEXT", "approve, reject: a comment in the signed decision"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd workflows_cmd = {
    "ratchet workflows",
    "[list] | apply FILE|DIR... | remove ID | pause ID | resume ID | history ID | approve|reject PROPOSAL",
    MAX_POS, "the workflow registry every serve process runs", workflows_opts, true};

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ratchet workflows: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see ratchet workflows --help\n");
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

/* Signs a decision on an agent's proposal with the approver's key (as `ratchet approve`
 * does for runs) and has it judged and applied here (workflow_proposal.h). The action hash
 * signed is the one stored, after showing what it stands for. */
static int decide(rt_store *st, const char *pid, bool approve, const char *as, const char *key, const char *comment)
{
    json_t *pending = NULL, *p = NULL;
    rt_error err;
    if (rt_store_wf_proposals_pending(st, &pending, &err) != RT_OK) {
        fprintf(stderr, "ratchet workflows: %s\n", err.msg);
        return 1;
    }
    size_t i;
    json_t *x;
    json_array_foreach(pending, i, x) if (!strcmp(s_or(x, "id", ""), pid)) p = x;
    if (!p) {
        fprintf(stderr, "ratchet workflows: proposal %s is not awaiting approval\n", pid);
        json_decref(pending);
        return 1;
    }
    fprintf(stderr, "%s proposal %s: %s workflow %s, asked by %s\n  action_hash %s\n", approve ? "approving" : "rejecting",
            pid, s_or(p, "action", "?"), s_or(p, "workflow_id", "?"), s_or(p, "requested_by", "?"),
            s_or(p, "action_hash", "?"));
    json_t *def = json_object_get(p, "definition"), *base = json_object_get(p, "base_definition");
    if (json_is_object(def)) {
        char *d = rt_catalog_diff(json_is_object(base) ? base : NULL, def, "current", "proposed");
        fprintf(stderr, "%s", d ? d : "");
        free(d);
    }
    unsigned char rnd[16];
    char nonce[40];
    rt_random_bytes(rnd, sizeof rnd);
    for (size_t k = 0; k < sizeof rnd; k++)
        snprintf(nonce + 2 * k, 3, "%02x", rnd[k]);
    json_t *dec = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "run_id", pid, "decision", approve ? "approve" : "reject",
                            "approver", as, "ts", (json_int_t)rt_now_ms(), "nonce", nonce, "action_hash",
                            s_or(p, "action_hash", ""));
    if (comment)
        json_object_set_new(dec, "comment", json_string(comment));
    size_t len = 0;
    char *canon = rt_approval_canonical(dec, &len);
    char sig[100];
    rt_status s = canon ? rt_approval_sign_file(key, canon, len, sig, &err) : rt_error_set(&err, RT_ERR_NOMEM, "out of memory");
    free(canon);
    if (s == RT_OK)
        json_object_set_new(dec, "sig", json_string(sig));
    char carrier[160], msg[700];
    rt_audit_cli_actor(carrier, sizeof carrier);
    rt_refusal why = RT_REFUSAL_NONE;
    json_t *out = NULL;
    if (s == RT_OK)
        s = rt_proposal_decide(st, pid, dec, carrier, false, &why, msg, sizeof msg, &out, &err);
    int rc = 0;
    if (s != RT_OK) {
        fprintf(stderr, "ratchet workflows: %s\n", err.msg);
        rc = 1;
    } else if (why) {
        fprintf(stderr, "ratchet workflows: decision refused (%s): %s\n", rt_refusal_name(why), msg);
        rc = 1;
    } else {
        printf("%s %s\n", pid, s_or(out, "outcome", "?"));
    }
    json_decref(out);
    json_decref(dec);
    json_decref(pending);
    return rc;
}

int rt_cli_workflows(rt_config *cfg, int argc, char **argv, int pos)
{
    rt_args r;
    int rc = 0;
    if (!rt_args_take(&workflows_cmd, cfg, argc, argv, pos, &r, &rc))
        return rc;
    const char *const *positional = r.pos;
    int n_pos = r.n_pos;
    bool as_json = rt_args_given(&r, "--json"), cancel_running = rt_args_given(&r, "--cancel-running");
    const char *on_resume = rt_args_value(&r, "--on-resume"), *as = rt_args_value(&r, "--as"),
               *key = rt_args_value(&r, "--key"), *comment = rt_args_value(&r, "--comment");
    if (on_resume && strcmp(on_resume, "run") && strcmp(on_resume, "skip"))
        return usage("%s", "--on-resume takes run or skip");
    const char *verb = n_pos ? positional[0] : "list";
    static const char *const verbs[] = {"list", "apply", "remove", "pause", "resume", "history", "approve", "reject",
                                        NULL};
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
    bool is_decide = !strcmp(verb, "approve") || !strcmp(verb, "reject");
    if (is_decide && (!as || !key))
        return usage("%s needs --as APPROVER and --key FILE", verb);
    if (!is_decide && (as || key || comment))
        return usage("%s", "--as, --key and --comment are for approve and reject");

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
    const char *id = n_pos > 1 ? positional[1] : NULL;
    if (is_list) {
        rc = list(st, as_json);
    } else if (is_apply) {
        rc = apply(st, actor, positional + 1, n_pos - 1);
    } else if (!strcmp(verb, "history")) {
        rc = history(st, id, as_json);
    } else if (is_decide) {
        rc = decide(st, id, !strcmp(verb, "approve"), as, key, comment);
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
