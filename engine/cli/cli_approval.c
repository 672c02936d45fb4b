/* cli_approval.c — `keygen`, `approve`, `reject`, `approvals`, `audit`, `audit verify`.
 * approve/reject sign the decision here, with the approver's private key, and send it like
 * any client would: as a ratchet.approval.decided event, straight to the database or over
 * a broker. The engine decides; the command reports what the audit log says it decided. */
#include "cli_approval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "approval.h"
#include "args.h"
#include "audit.h"
#include "event.h"
#include "ingest.h"
#include "intake.h"
#include "log.h"
#include "store.h"
#include "store_workflows.h"
#include "store_approval.h"
#include "store_audit.h"
#include "util.h"
#include "workflow.h"

#define EXIT_USAGE 2

typedef struct args {
    const char *cmd;
    const rt_arg_cmd *spec; /* set by parse */
    rt_args parsed;
    const char *positional[RT_ARGS_MAX_POS];
    int n_positional;
} args;

/* A usage error after parsing: "ratchet approve: --as ID and --key FILE are required; see
 * ratchet approve --help". */
static int usage(const args *a, const char *fmt, const char *arg)
{
    if (a->spec)
        fprintf(stderr, "%s: ", a->spec->name);
    else
        fprintf(stderr, "ratchet %s: ", a->cmd);
    fprintf(stderr, fmt, arg);
    if (a->spec)
        fprintf(stderr, "; see %s --help\n", a->spec->name);
    else
        fprintf(stderr, " (see `ratchet help`)\n");
    return EXIT_USAGE;
}

/* The command's arguments (args.h), then the log settings. Returns true to go on; false
 * with *rc the exit status (0 after --help). */
static bool parse(args *a, const rt_arg_cmd *spec, rt_config *cfg, int argc, char **argv, int pos, int *rc)
{
    a->spec = spec;
    if (!rt_args_take(spec, cfg, argc, argv, pos, &a->parsed, rc))
        return false;
    for (int i = 0; i < a->parsed.n_pos; i++)
        a->positional[a->n_positional++] = a->parsed.pos[i];
    rt_error err;
    if (rt_config_apply_logging(cfg, &err) != RT_OK) {
        *rc = usage(a, "%s", err.msg);
        return false;
    }
    return true;
}

static const char *opt_value(const args *a, const char *name)
{
    return rt_args_value(&a->parsed, name);
}

static bool opt_given(const args *a, const char *name)
{
    return rt_args_given(&a->parsed, name);
}

#define O_JSON {"--json", NULL, "print JSON"}
#define O_END {NULL, NULL, NULL}
static const rt_arg_opt keygen_opts[] = {
    {"--approver", "ID", "the approver's id (required)"},
    {"--out", "DIR", "where the key pair goes (default: .)"},
    O_END,
};
static const rt_arg_cmd keygen_cmd = {"ratchet keygen", NULL, 0,
                                      "an approver's Ed25519 key pair; prints its RATCHET_APPROVERS line", keygen_opts,
                                      true};
static const rt_arg_opt decide_opts[] = {
    {"--as", "ID", "the approver (required)"},
    {"--key", "FILE", "the approver's private key (required)"},
    {"--comment", "C", "a comment kept with the decision"},
    {"--step", "STEP", "decide an approval step rather than the run's gate"},
    {"--via", "db|amqp|nats", "how the signed decision travels (default: db)"},
    {"--hash", "HASH", "the action_hash to sign (default: read from the database)"},
    {"--nonce", "NONCE", "the decision's nonce (default: random)"},
    {"--ts", "MS", "the decision's time, unix milliseconds (default: now)"},
    {"--print", NULL, "print the signed event, do not send it"},
    O_JSON,
    {"--wait-timeout", "DURATION", "how long to wait for the engine's verdict (default: 10s)"},
    O_END,
};
static const rt_arg_cmd approve_cmd = {"ratchet approve", "RUN", 1, "sign and send an approval; prints what the "
                                       "engine decided", decide_opts, true};
static const rt_arg_cmd reject_cmd = {"ratchet reject", "RUN", 1, "sign and send a rejection; prints what the "
                                      "engine decided", decide_opts, true};
static const rt_arg_opt approvals_opts[] = {O_JSON, O_END};
static const rt_arg_cmd approvals_cmd = {"ratchet approvals", NULL, 0,
                                         "runs and steps awaiting approval, with action_hash and expiry",
                                         approvals_opts, true};
static const rt_arg_opt audit_opts[] = {
    {"--since", "TIME|DURATION", "records from this time (RFC 3339) or this long ago (1h)"},
    {"--limit", "N", "at most N records"},
    O_JSON,
    O_END,
};
static const rt_arg_cmd audit_cmd = {"ratchet audit", "[verify]", 1, "the audit log; `verify` walks its hash chain",
                                     audit_opts, true};

static int need_db(const args *a, rt_config *cfg, rt_store **st)
{
    rt_error err;
    if (rt_config_require_database(cfg, &err) != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        return EXIT_USAGE;
    }
    if (rt_store_open(cfg->database_url, st, &err) != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        return 1;
    }
    return 0;
}

static void print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    free(text);
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : dflt;
}

/* ---------- keygen ---------- */

static int cmd_keygen(args *a, rt_config *cfg, int argc, char **argv, int pos)
{
    int rc;
    if (!parse(a, &keygen_cmd, cfg, argc, argv, pos, &rc))
        return rc;
    const char *id = opt_value(a, "--approver");
    const char *dir = opt_value(a, "--out");
    if (!id)
        return usage(a, "%s", "--approver is required");
    char line[256];
    rt_error err;
    if (rt_approval_keygen(dir ? dir : ".", id, line, sizeof line, &err) != RT_OK) {
        fprintf(stderr, "ratchet keygen: %s\n", err.msg);
        return err.code == RT_ERR_INVALID ? EXIT_USAGE : 1;
    }
    printf("%s\n", line);
    fflush(stdout);
    fprintf(stderr,
            "Wrote %s/%s.key (private, mode 0600: keep it with the approver, never on the engine's hosts) and\n"
            "%s/%s.pub. Add the line above to the approvers file named by RATCHET_APPROVERS.\n",
            dir ? dir : ".", id, dir ? dir : ".", id);
    return 0;
}

/* ---------- approve / reject ---------- */

typedef struct body_ctx {
    const rt_event *ev;
} body_ctx;

static char *event_body(void *arg, size_t i, const char **id)
{
    (void)i;
    body_ctx *b = arg;
    *id = b->ev->id;
    return rt_event_to_json(b->ev);
}

static void quiet(void *arg, const char *file, const rt_error *err)
{
    (void)arg;
    (void)file;
    (void)err;
}

/* Prints what the engine made of the decision; the exit code. */
static int report(const args *a, json_t *outcome, const char *event_id, bool as_json)
{
    const char *action = str_or(outcome, "action", "?");
    json_t *details = json_object_get(outcome, "details");
    bool refused = !strcmp(action, "approval.refused");
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:O?, s:O?, s:O?}", "event_id", event_id, "outcome",
                              refused ? "refused" : !strcmp(action, "approval.approved") ? "approved" : "rejected",
                              "audit_seq", json_integer_value(json_object_get(outcome, "seq")), "run_id",
                              json_object_get(outcome, "subject"), "reason", json_object_get(details, "reason"),
                              "message", json_object_get(details, "message"));
        print_json(o);
        json_decref(o);
    } else if (refused) {
        fprintf(stderr, "ratchet %s: refused (%s): %s\n", a->cmd, str_or(details, "reason", "?"),
                str_or(details, "message", ""));
    } else {
        const char *step = json_string_value(json_object_get(details, "step_id"));
        printf("%s run %s%s%s (audit #%lld)\n", !strcmp(action, "approval.approved") ? "approved" : "rejected",
               str_or(outcome, "subject", "?"), step ? " step " : "", step ? step : "",
               (long long)json_integer_value(json_object_get(outcome, "seq")));
    }
    return refused ? 1 : 0;
}

/* Recomputes the gate's action_hash into hash (>= 65 bytes) from its workflow_hash, the
 * run's event and (step gates) the rendered `with`; checks the pinned definition exists and
 * is the gate's workflow. false after saying why on stderr. */
static bool verify_action(const args *a, rt_store *st, json_t *gate, const char *step, char *hash)
{
    const char *wf_hash = str_or(gate, "workflow_hash", "");
    const char *stored = str_or(gate, "action_hash", "");
    json_t *def = NULL;
    rt_error err;
    rt_status s = rt_store_get_definition(st, wf_hash, &def, &err);
    const char *def_id = json_string_value(json_object_get(def, "id"));
    if (s != RT_OK || !def_id || strcmp(def_id, str_or(gate, "workflow", "")) != 0) {
        fprintf(stderr,
                "ratchet %s: refusing to sign: the run's pinned definition %s %s (gate of workflow %s)\n", a->cmd,
                wf_hash, s != RT_OK ? "cannot be read" : "is another workflow's", str_or(gate, "workflow", "?"));
        json_decref(def);
        return false;
    }
    json_decref(def);
    json_t *with = step ? json_object_get(json_object_get(gate, "details"), "with") : NULL;
    rt_approval_action_hash(wf_hash, json_object_get(gate, "event"), step, with, hash);
    if (strcmp(hash, stored) != 0) {
        fprintf(stderr,
                "ratchet %s: refusing to sign: the stored action_hash %s is not the hash of what run %s will run "
                "(recomputed from its pinned definition %s and its event: %s); the run or its gate was changed "
                "in the database\n",
                a->cmd, stored, str_or(gate, "run_id", "?"), wf_hash, hash);
        return false;
    }
    return true;
}

/* Everything the approver signs for, on stderr: workflow and pinned definition, who asked,
 * the whole event and (step gates) the rendered `with`, as indented JSON with non-ASCII
 * escaped, so that nothing is cut off and no look-alike character passes unseen. */
static void show_action(const args *a, json_t *gate, bool approve, const char *hash)
{
    (void)a;
    const char *step = str_or(gate, "step_id", NULL);
    json_t *actor = json_object_get(gate, "actor");
    fprintf(stderr, "%s run %s of workflow %s%s%s\n", approve ? "approving" : "rejecting", str_or(gate, "run_id", "?"),
            str_or(gate, "workflow", "?"), step ? " at step " : "", step ? step : "");
    fprintf(stderr, "  pinned definition: sha256 %s\n", str_or(gate, "workflow_hash", "?"));
    fprintf(stderr, "  requested by:      %s:%s%s%s\n", str_or(actor, "type", "service"), str_or(actor, "id", "-"),
            str_or(gate, "entity_id", NULL) ? ", entity " : "", str_or(gate, "entity_id", ""));
    fprintf(stderr, "  expires:           %s\n", str_or(gate, "expires_at", "never"));
    fprintf(stderr, "  action_hash:       %s (recomputed from the definition hash and the event below: it matches)\n",
            hash);
    size_t flags = JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_ENCODE_ANY;
    char *ev = json_dumps(json_object_get(gate, "event"), flags);
    fprintf(stderr, "the event the run was started with:\n%s\n", ev ? ev : "(none)");
    free(ev);
    if (step) {
        char *with = json_dumps(json_object_get(json_object_get(gate, "details"), "with"), flags);
        fprintf(stderr, "step %s, its rendered `with`:\n%s\n", step, with ? with : "(none)");
        free(with);
    }
}

/* What `approve`/`reject` were asked, checked. */
typedef struct decision_req {
    const char *run_id, *as, *key, *comment, *step, *via, *hash, *nonce;
    bool approve, as_json, print_only;
    int64_t ts, wait_ms;
} decision_req;

/* Reads and checks the options into o: 0, or the exit code after saying why. */
static int decide_options(args *a, rt_config *cfg, bool approve, decision_req *o)
{
    if (a->n_positional != 1)
        return usage(a, "%s", "expected a run id");
    *o = (decision_req){.run_id = a->positional[0], .as = opt_value(a, "--as"), .key = opt_value(a, "--key"),
                       .comment = opt_value(a, "--comment"), .step = opt_value(a, "--step"),
                       .via = opt_value(a, "--via") ? opt_value(a, "--via") : "db", .hash = opt_value(a, "--hash"),
                       .nonce = opt_value(a, "--nonce"), .approve = approve, .as_json = opt_given(a, "--json"),
                       .print_only = opt_given(a, "--print"), .ts = rt_now_ms(), .wait_ms = 10000};
    if (!o->as || !o->key)
        return usage(a, "%s", "--as ID and --key FILE are required");
    if (!rt_uuid_valid(o->run_id))
        return usage(a, "\"%.64s\" is not a run id (expected a UUID)", o->run_id);
    if (strcmp(o->via, "db") && strcmp(o->via, "amqp") && strcmp(o->via, "nats"))
        return usage(a, "--via %s: expected db, amqp or nats", o->via);
    rt_error err;
    if (opt_value(a, "--ts")) {
        char *end;
        errno = 0;
        long long v = strtoll(opt_value(a, "--ts"), &end, 10);
        if (errno || *end || v <= 0)
            return usage(a, "--ts %s: expected unix milliseconds", opt_value(a, "--ts"));
        o->ts = v;
    }
    if (opt_value(a, "--wait-timeout") && rt_duration_parse(opt_value(a, "--wait-timeout"), &o->wait_ms, &err) != RT_OK)
        return usage(a, "--wait-timeout: %s", err.msg);
    if (rt_approval_configure(cfg->approvers_file, cfg->approval_skew_ms, &err) != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        return EXIT_USAGE;
    }
    struct stat sb;
    if (stat(o->key, &sb) == 0 && (sb.st_mode & 077))
        fprintf(stderr, "ratchet %s: warning: %s is readable by others (mode %03o): chmod 600 it\n", a->cmd, o->key,
                (unsigned)(sb.st_mode & 0777));
    return 0;
}

/* The run's one pending gate (at o->step when given), or NULL after saying why. */
static json_t *pending_gate(const args *a, const decision_req *o, json_t *pending)
{
    json_t *pick = NULL;
    size_t i, matches = 0;
    json_t *g;
    json_array_foreach(pending, i, g) {
        if (o->step && strcmp(str_or(g, "step_id", ""), o->step) != 0)
            continue;
        pick = g;
        matches++;
    }
    if (matches == 0)
        fprintf(stderr, "ratchet %s: run %s is not awaiting approval%s%s\n", a->cmd, o->run_id,
                o->step ? " at step " : "", o->step ? o->step : "");
    else if (matches > 1)
        fprintf(stderr, "ratchet %s: run %s has %zu approval steps waiting: pass --step STEP\n", a->cmd, o->run_id,
                matches);
    return matches == 1 ? pick : NULL;
}

/* Without --hash: what the approver signs is what the engine shows it will run. Opens the
 * database (*st), finds the gate, recomputes its action hash into hash_buf and shows the
 * action; o->hash and o->step then point at hash_buf and step_buf. 0 or an exit code. */
static int gate_to_sign(args *a, rt_config *cfg, decision_req *o, rt_store **st, char hash_buf[65],
                        char step_buf[130])
{
    int rc;
    if ((rc = need_db(a, cfg, st)))
        return rc;
    json_t *pending = NULL;
    rt_error err;
    rt_status s = rt_store_approval_pending(*st, o->run_id, &pending, &err);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        return s == RT_ERR_INVALID ? EXIT_USAGE : 1;
    }
    json_t *pick = pending_gate(a, o, pending);
    rc = pick ? 0 : 1;
    if (pick) {
        snprintf(step_buf, 130, "%s", str_or(pick, "step_id", ""));
        /* Sign only what was recomputed here from the pinned definition's hash and the
         * event the run stored, never the stored hash on its word: if someone changed the
         * run's event (or the gate) in the database, the two disagree and nothing is signed. */
        if (verify_action(a, *st, pick, step_buf[0] ? step_buf : NULL, hash_buf)) {
            show_action(a, pick, o->approve, hash_buf);
            o->hash = hash_buf;
            o->step = step_buf[0] ? step_buf : NULL;
        } else {
            rc = 1;
        }
    }
    json_decref(pending);
    return rc;
}

/* The signed decision document (a new reference in *out), checked as the engine will. */
static rt_status sign_decision(const decision_req *o, json_t **out, rt_error *err)
{
    char nonce[40];
    if (o->nonce) {
        snprintf(nonce, sizeof nonce, "%.39s", o->nonce);
    } else {
        unsigned char rnd[16];
        rt_random_bytes(rnd, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
    }
    json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "run_id", o->run_id, "decision",
                          o->approve ? "approve" : "reject", "approver", o->as, "ts", (json_int_t)o->ts, "nonce",
                          o->nonce ? o->nonce : nonce, "action_hash", o->hash);
    if (o->comment)
        json_object_set_new(d, "comment", json_string(o->comment));
    if (o->step)
        json_object_set_new(d, "step_id", json_string(o->step));
    size_t len = 0;
    char *canon = rt_approval_canonical(d, &len);
    char sig[100];
    rt_status s = canon ? rt_approval_sign_file(o->key, canon, len, sig, err)
                        : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    free(canon);
    if (s == RT_OK) {
        json_object_set_new(d, "sig", json_string(sig));
        s = rt_approval_decision_check(d, err);
    }
    if (s != RT_OK) {
        json_decref(d);
        return s;
    }
    *out = d;
    return RT_OK;
}

/* Hands the decision event to the engine: ingested here (--via db: *st is open) or published
 * to a broker, after which *st is the database to wait on, or NULL when none is configured. */
static rt_status send_decision(rt_config *cfg, const char *via, rt_event *ev, rt_store **st, rt_error *err)
{
    rt_status s;
    if (!strcmp(via, "db")) {
        rt_workflow_set *set = NULL; /* workflows may start on the decision event too */
        if (cfg->workflows && rt_workflow_load_dir(cfg->workflows, &set, quiet, NULL, err) != RT_OK)
            set = NULL;
        rt_ingest_result res = {0};
        s = rt_ingest_events(set, *st, &ev, 1, "cli", &res, err);
        rt_ingest_results_clear(&res, 1);
        rt_workflow_set_free(set);
    } else {
        body_ctx b = {.ev = ev};
        s = rt_intake_publish(cfg, via, ev->name, 1, 0, event_body, &b, err);
        if (s == RT_OK && !*st && cfg->database_url && *cfg->database_url &&
            rt_store_open(cfg->database_url, st, err) != RT_OK)
            *st = NULL; /* sent; without the database there is no outcome to wait for */
    }
    return s;
}

/* The engine's verdict is an audit record naming the event: waits for it and reports it. */
static int await_verdict(const args *a, const decision_req *o, rt_store *st, const rt_event *ev)
{
    json_t *outcome = NULL;
    rt_error err;
    rt_status s;
    int64_t deadline = rt_mono_ms() + o->wait_ms, pause = 20;
    for (;;) {
        s = rt_store_approval_outcome(st, ev->id, &outcome, &err);
        if (s != RT_ERR_NOT_FOUND || rt_mono_ms() > deadline)
            break;
        struct timespec t = {.tv_sec = 0, .tv_nsec = pause * 1000000};
        nanosleep(&t, NULL);
        pause = pause * 2 > 250 ? 250 : pause * 2;
    }
    if (s == RT_ERR_NOT_FOUND) {
        fprintf(stderr, "ratchet %s: decision %s sent via %s, but no engine has judged it within %lld ms (is serve running "
                        "and consuming %s?)\n",
                a->cmd, ev->id, o->via, (long long)o->wait_ms, o->via);
        return 1;
    }
    if (s != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        return 1;
    }
    int rc = report(a, outcome, ev->id, o->as_json);
    json_decref(outcome);
    return rc;
}

/* Prints the signed document (--print) or sends it as an event and waits for the verdict. */
static int deliver_decision(args *a, rt_config *cfg, const decision_req *o, json_t *d, rt_store **st)
{
    if (o->print_only) {
        char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text ? text : "");
        free(text);
        return 0;
    }
    rt_event *ev = NULL;
    rt_error err;
    int rc;
    rt_status s = rt_event_new(RT_APPROVAL_DECIDED_EVENT, d, RT_ACTOR_USER, o->as, NULL, NULL, &ev, &err);
    if (s == RT_OK && !strcmp(o->via, "db") && !*st && (rc = need_db(a, cfg, st))) {
        rt_event_free(ev);
        return rc;
    }
    if (s == RT_OK)
        s = send_decision(cfg, o->via, ev, st, &err);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        rt_event_free(ev);
        return 1;
    }
    if (!*st) {
        printf("%s\n", ev->id);
        fprintf(stderr, "decision sent via %s as event %s (no database configured to wait for the outcome)\n", o->via,
                ev->id);
        rc = 0;
    } else {
        rc = await_verdict(a, o, *st, ev);
    }
    rt_event_free(ev);
    return rc;
}

static int cmd_decide(args *a, rt_config *cfg, int argc, char **argv, int pos, bool approve)
{
    int rc;
    if (!parse(a, approve ? &approve_cmd : &reject_cmd, cfg, argc, argv, pos, &rc))
        return rc;
    decision_req o;
    if ((rc = decide_options(a, cfg, approve, &o)))
        return rc;
    rt_store *st = NULL;
    char hash_buf[65] = "", step_buf[130] = "";
    if (!o.hash && (rc = gate_to_sign(a, cfg, &o, &st, hash_buf, step_buf))) {
        rt_store_close(st);
        return rc;
    }
    json_t *d = NULL;
    rt_error err;
    rt_status s = sign_decision(&o, &d, &err);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", a->cmd, err.msg);
        rt_store_close(st);
        return s == RT_ERR_INVALID ? EXIT_USAGE : 1;
    }
    rc = deliver_decision(a, cfg, &o, d, &st);
    json_decref(d);
    rt_store_close(st);
    return rc;
}

/* ---------- approvals ---------- */

static int cmd_approvals(args *a, rt_config *cfg, int argc, char **argv, int pos)
{
    int rc;
    rt_store *st = NULL;
    if (!parse(a, &approvals_cmd, cfg, argc, argv, pos, &rc) || (rc = need_db(a, cfg, &st)))
        return rc;
    json_t *pending = NULL, *proposals = NULL;
    rt_error err;
    rt_status s = rt_store_approval_pending(st, NULL, &pending, &err);
    if (s == RT_OK) /* agents' workflow changes (workflow_proposal.h) wait here too */
        s = rt_store_wf_proposals_pending(st, &proposals, &err);
    rt_store_close(st);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet approvals: %s\n", err.msg);
        return 1;
    }
    size_t k;
    json_t *p;
    if (opt_given(a, "--json")) {
        json_array_foreach(proposals, k, p) {
            json_object_del(p, "base_definition");
            json_object_set_new(p, "kind", json_string("workflow_proposal"));
            json_array_append(pending, p);
        }
        print_json(pending);
    } else {
        printf("%-36s  %-16s  %-24s  %-22s  %-24s  %s\n", "RUN", "STEP", "WORKFLOW", "STARTED BY", "EXPIRES",
               "ACTION_HASH");
        size_t i;
        json_t *g;
        json_array_foreach(pending, i, g) {
            json_t *actor = json_object_get(g, "actor");
            char who[200];
            snprintf(who, sizeof who, "%s:%s", str_or(actor, "type", "service"), str_or(actor, "id", "-"));
            printf("%-36s  %-16s  %-24s  %-22s  %-24s  %s\n", str_or(g, "run_id", "?"), str_or(g, "step_id", "-"),
                   str_or(g, "workflow", "?"), who, str_or(g, "expires_at", "never"), str_or(g, "action_hash", "?"));
        }
        if (json_array_size(proposals) > 0)
            printf("\n%-36s  %-8s  %-24s  %-22s  %s\n", "PROPOSAL", "ACTION", "WORKFLOW", "PROPOSED BY", "ACTION_HASH");
        json_array_foreach(proposals, k, p)
            printf("%-36s  %-8s  %-24s  %-22s  %s\n", str_or(p, "id", "?"), str_or(p, "action", "?"),
                   str_or(p, "workflow_id", "?"), str_or(p, "requested_by", "?"), str_or(p, "action_hash", "?"));
        if (json_array_size(pending) == 0 && json_array_size(proposals) == 0)
            printf("(nothing awaits approval)\n");
    }
    json_decref(proposals);
    json_decref(pending);
    return 0;
}

/* ---------- audit ---------- */

static int cmd_audit(args *a, rt_config *cfg, int argc, char **argv, int pos)
{
    int rc;
    if (!parse(a, &audit_cmd, cfg, argc, argv, pos, &rc))
        return rc;
    bool verify = a->n_positional == 1 && !strcmp(a->positional[0], "verify");
    if (a->n_positional == 1 && !verify)
        return usage(a, "unknown subcommand \"%s\"", a->positional[0]);
    if (verify && (opt_given(a, "--since") || opt_given(a, "--limit")))
        return usage(a, "%s", "verify walks the whole chain: --since and --limit are for the listing");
    rt_error err;
    int64_t since = 0;
    const char *since_s = opt_value(a, "--since");
    if (since_s && rt_time_parse(since_s, &since, &err) != RT_OK) {
        int64_t ago;
        if (rt_duration_parse(since_s, &ago, &err) != RT_OK)
            return usage(a, "--since %s: expected an RFC 3339 time or a duration (\"1h\": the last hour)", since_s);
        since = rt_now_ms() - ago;
    }
    long limit = 100;
    if (opt_value(a, "--limit")) {
        char *end;
        limit = strtol(opt_value(a, "--limit"), &end, 10);
        if (*end || limit < 1 || limit > 100000)
            return usage(a, "--limit %s: expected an integer from 1 to 100000", opt_value(a, "--limit"));
    }
    rt_store *st = NULL;
    if ((rc = need_db(a, cfg, &st)))
        return rc;
    bool as_json = opt_given(a, "--json");
    if (verify) {
        rt_audit_verdict v;
        rt_status s = rt_audit_verify(st, &v, &err);
        rt_store_close(st);
        if (s != RT_OK) {
            fprintf(stderr, "ratchet audit verify: %s\n", err.msg);
            return 1;
        }
        if (as_json) {
            json_t *o = json_pack("{s:b, s:I, s:s}", "ok", v.ok, "records", (json_int_t)v.records, "head", v.head);
            if (!v.ok) {
                json_object_set_new(o, "broken_seq", json_integer(v.broken_seq));
                json_object_set_new(o, "why", json_string(v.why));
            }
            print_json(o);
            json_decref(o);
        } else if (v.ok) {
            printf("ok: %lld records, head %s\n", (long long)v.records, v.head);
        } else {
            printf("broken at seq %lld: %s\n", (long long)v.broken_seq, v.why);
            fprintf(stderr, "%lld record(s) before it verified, ending at head %s\n", (long long)v.records, v.head);
        }
        return v.ok ? 0 : 1;
    }
    rt_audit_row *rows = NULL;
    size_t n = 0;
    rt_status s = rt_store_audit_list(st, since, (int)limit, &rows, &n, &err);
    rt_store_close(st);
    if (s != RT_OK) {
        fprintf(stderr, "ratchet audit: %s\n", err.msg);
        return 1;
    }
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *details = json_loads(rows[i].details, JSON_DECODE_ANY, NULL);
            json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "seq",
                                                 (json_int_t)rows[i].seq, "at", rows[i].at, "actor", rows[i].actor,
                                                 "action", rows[i].action, "subject", rows[i].subject, "details",
                                                 details ? details : json_string(rows[i].details), "prev_hash",
                                                 rows[i].prev_hash, "hash", rows[i].hash));
        }
        print_json(arr);
        json_decref(arr);
    } else {
        printf("%-6s  %-24s  %-24s  %-20s  %-36s  %s\n", "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS");
        for (size_t i = 0; i < n; i++)
            printf("%-6lld  %-24s  %-24s  %-20s  %-36s  %.100s%s\n", (long long)rows[i].seq, rows[i].at, rows[i].actor,
                   rows[i].action, rows[i].subject[0] ? rows[i].subject : "-", rows[i].details,
                   strlen(rows[i].details) > 100 ? "..." : "");
        if (n == 0)
            printf("(no audit records%s)\n", since ? " since then" : "");
    }
    rt_audit_rows_free(rows, n);
    return 0;
}

int rt_cli_approval(const char *cmd, rt_config *cfg, int argc, char **argv, int pos)
{
    args a = {.cmd = cmd};
    if (!strcmp(cmd, "keygen"))
        return cmd_keygen(&a, cfg, argc, argv, pos);
    if (!strcmp(cmd, "approve"))
        return cmd_decide(&a, cfg, argc, argv, pos, true);
    if (!strcmp(cmd, "reject"))
        return cmd_decide(&a, cfg, argc, argv, pos, false);
    if (!strcmp(cmd, "approvals"))
        return cmd_approvals(&a, cfg, argc, argv, pos);
    if (!strcmp(cmd, "audit"))
        return cmd_audit(&a, cfg, argc, argv, pos);
    return usage(&a, "unknown command \"%s\"", cmd);
}
