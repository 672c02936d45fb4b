/* test_workflow.c — the workflow loader: a table of bad definitions (each error names its
 * JSON path), parsed fields of good ones, directories with bad files, wildcard matching. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"
#include "cron.h"
#include "expr.h"
#include "util.h"
#include "workflow.h"

/* JSON written with ' for " so the tables stay readable. Caller frees. */
static char *q(const char *s)
{
    char *o = strdup(s);
    assert_non_null(o);
    for (char *p = o; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return o;
}

static rt_status parse_q(const char *src, const char *file, rt_workflow **wf, rt_error *err)
{
    char *text = q(src);
    rt_status st = rt_workflow_parse(text, strlen(text), file, wf, err);
    free(text);
    return st;
}

static void assert_contains(const char *hay, const char *needle, const char *name)
{
    if (!strstr(hay, needle)) {
        print_error("case %s:\n  message:  %s\n  expected: %s\n", name, hay, needle);
        fail();
    }
}

/* ------------------------------------------------------------------------------------ */

#define STEP_LOG "{'id':'a','uses':'log','with':{'message':'hi'}}"
#define STEPS_LOG "'steps':[" STEP_LOG "]"

typedef struct bad_case {
    const char *name;
    const char *json;
    const char *expect;
} bad_case;

static const bad_case bad_cases[] = {
    {"root array", "[]", "$: a workflow must be a JSON object, not an array"},
    {"missing id", "{" STEPS_LOG "}", "$: missing required key \"id\""},
    {"id not string", "{'id':7," STEPS_LOG "}", "$.id: must be a string, not an integer"},
    {"id uppercase", "{'id':'Bad_ID'," STEPS_LOG "}", "$.id: \"Bad_ID\" is not a valid workflow id"},
    {"id leading dash", "{'id':'-x'," STEPS_LOG "}", "$.id: \"-x\" is not a valid workflow id"},
    {"id quoted in message", "{'id':'a\\'b\\n'," STEPS_LOG "}", "$.id: \"a\\\"b\\n\" is not a valid workflow id"},
    {"id empty", "{'id':''," STEPS_LOG "}", "$.id: \"\" is not a valid workflow id"},
    {"unknown key suggestion", "{'id':'x','steeps':[]}", "$.steeps: unknown key (did you mean \"steps\"?)"},
    {"unknown key list", "{'id':'x','colour':1," STEPS_LOG "}", "$.colour: unknown key (allowed: $schema, id"},
    {"odd key quoted", "{'id':'x','a b':1," STEPS_LOG "}", "$[\"a b\"]: unknown key"},
    {"name not string", "{'id':'x','name':[]," STEPS_LOG "}", "$.name: must be a string, not an array"},
    {"enabled string", "{'id':'x','enabled':'yes'," STEPS_LOG "}", "$.enabled: must be true or false, not a string"},
    {"system null", "{'id':'x','system':null," STEPS_LOG "}", "$.system: must be true or false, not null"},
    {"triggers object", "{'id':'x','triggers':{}," STEPS_LOG "}", "$.triggers: must be an array, not an object"},
    {"trigger string", "{'id':'x','triggers':['0 * * * *']," STEPS_LOG "}",
     "$.triggers[0]: a trigger must be an object, not a string"},
    {"trigger both", "{'id':'x','triggers':[{'cron':'@daily','event':'a'}]," STEPS_LOG "}",
     "$.triggers[0]: a trigger has exactly one of \"cron\" or \"event\""},
    {"trigger neither", "{'id':'x','triggers':[{'if':'true'}]," STEPS_LOG "}",
     "$.triggers[0]: a trigger needs \"cron\" or \"event\""},
    {"trigger misspelt", "{'id':'x','triggers':[{'evnt':'a.b'}]," STEPS_LOG "}",
     "$.triggers[0].evnt: unknown key (did you mean \"event\"?)"},
    {"cron trigger with if", "{'id':'x','triggers':[{'cron':'@daily','if':'true'}]," STEPS_LOG "}",
     "$.triggers[0].if: unknown key for a cron trigger (allowed: cron, timezone, catch_up)"},
    {"event trigger with timezone", "{'id':'x','triggers':[{'event':'a','timezone':'UTC'}]," STEPS_LOG "}",
     "$.triggers[0].timezone: unknown key for an event trigger"},
    {"catch_up bad", "{'id':'x','triggers':[{'cron':'@daily','catch_up':'sometimes'}]," STEPS_LOG "}",
     "$.triggers[0].catch_up: \"sometimes\" is not one of latest, all, none"},
    {"cron empty", "{'id':'x','triggers':[{'cron':'  '}]," STEPS_LOG "}", "$.triggers[0].cron: empty cron expression"},
    {"cron not string", "{'id':'x','triggers':[{'cron':5}]," STEPS_LOG "}",
     "$.triggers[0].cron: must be a string, not an integer"},
    {"timezone empty", "{'id':'x','triggers':[{'cron':'@daily','timezone':''}]," STEPS_LOG "}",
     "$.triggers[0].timezone: empty time zone"},
    {"event > not last", "{'id':'x','triggers':[{'event':'a'},{'event':'a.>.b'}]," STEPS_LOG "}",
     "$.triggers[1].event: event pattern \"a.>.b\": '>' must be the last token"},
    {"event empty token", "{'id':'x','triggers':[{'event':'a..b'}]," STEPS_LOG "}",
     "$.triggers[0].event: event pattern \"a..b\": empty token"},
    {"event space", "{'id':'x','triggers':[{'event':'a b'}]," STEPS_LOG "}",
     "$.triggers[0].event: event pattern \"a b\": character ' ' at column 2"},
    {"event partial wildcard", "{'id':'x','triggers':[{'event':'a.b*'}]," STEPS_LOG "}",
     "$.triggers[0].event: event pattern \"a.b*\": character '*' at column 4"},
    {"event empty", "{'id':'x','triggers':[{'event':''}]," STEPS_LOG "}", "$.triggers[0].event: empty event pattern"},
    {"if empty", "{'id':'x','triggers':[{'event':'a','if':' '}]," STEPS_LOG "}", "$.triggers[0].if: empty expression"},
    {"if mixed template", "{'id':'x','triggers':[{'event':'a','if':'x ${{ a }}'}]," STEPS_LOG "}",
     "$.triggers[0].if: must be a bare expression"},
    {"if two templates", "{'id':'x','triggers':[{'event':'a','if':'${{ a }}${{ b }}'}]," STEPS_LOG "}",
     "$.triggers[0].if: must be a bare expression"},
    {"if empty template", "{'id':'x','triggers':[{'event':'a','if':'${{  }}'}]," STEPS_LOG "}",
     "$.triggers[0].if: empty expression"},
    {"priority", "{'id':'x','priority':'urgent'," STEPS_LOG "}",
     "$.priority: \"urgent\" is not one of critical, high, normal, low"},
    {"concurrency not object", "{'id':'x','concurrency':1," STEPS_LOG "}", "$.concurrency: must be an object"},
    {"concurrency limit 0", "{'id':'x','concurrency':{'limit':0}," STEPS_LOG "}",
     "$.concurrency.limit: must be between 1 and 1000000, not 0"},
    {"concurrency limit fraction", "{'id':'x','concurrency':{'limit':1.5}," STEPS_LOG "}",
     "$.concurrency.limit: must be an integer, not 1.5"},
    {"concurrency limit huge", "{'id':'x','concurrency':{'limit':5555555555555555555555555555555555.51}," STEPS_LOG "}",
     "$.concurrency.limit: must be between 1 and 1000000, not 5.55556e+33"},
    {"concurrency limit huge int", "{'id':'x','concurrency':{'limit':9223372036854775807}," STEPS_LOG "}",
     "$.concurrency.limit: must be between 1 and 1000000, not 9223372036854775807"},
    {"concurrency no limit", "{'id':'x','concurrency':{'key':'event.data.a'}," STEPS_LOG "}",
     "$.concurrency: missing required key \"limit\""},
    {"concurrency key blank", "{'id':'x','concurrency':{'limit':1,'key':''}," STEPS_LOG "}",
     "$.concurrency.key: empty expression"},
    {"throttle no period", "{'id':'x','throttle':{'limit':5}," STEPS_LOG "}",
     "$.throttle: missing required key \"period\""},
    {"throttle period words", "{'id':'x','throttle':{'limit':5,'period':'1 minute'}," STEPS_LOG "}",
     "$.throttle.period: invalid duration \"1 minute\""},
    {"throttle burst 0", "{'id':'x','throttle':{'limit':5,'period':'1m','burst':0}," STEPS_LOG "}",
     "$.throttle.burst: must be between 1"},
    {"throttle unknown", "{'id':'x','throttle':{'limit':5,'period':'1m','perod':'1m'}," STEPS_LOG "}",
     "$.throttle.perod: unknown key (did you mean \"period\"?)"},
    {"debounce timeout short", "{'id':'x','debounce':{'period':'30s','timeout':'10s'}," STEPS_LOG "}",
     "$.debounce.timeout: 10s is shorter than period 30s"},
    {"singleton mode", "{'id':'x','singleton':{'mode':'replace'}," STEPS_LOG "}",
     "$.singleton.mode: \"replace\" is not one of skip, cancel"},
    {"idempotency number", "{'id':'x','idempotency':3," STEPS_LOG "}", "$.idempotency: must be a string, not an integer"},
    {"batch no timeout", "{'id':'x','batch_events':{'max_size':10}," STEPS_LOG "}",
     "$.batch_events: missing required key \"timeout\""},
    {"batch too large", "{'id':'x','batch_events':{'max_size':10001,'timeout':'1s'}," STEPS_LOG "}",
     "$.batch_events.max_size: must be between 1 and 10000"},
    {"timeout zero", "{'id':'x','timeout':'0s'," STEPS_LOG "}", "$.timeout: invalid duration \"0s\""},
    {"timeout no unit", "{'id':'x','timeout':'5'," STEPS_LOG "}", "$.timeout: invalid duration \"5\""},
    {"start_timeout number", "{'id':'x','start_timeout':5," STEPS_LOG "}", "$.start_timeout: must be a string"},
    {"sla number", "{'id':'x','sla':600," STEPS_LOG "}", "$.sla: must be a string"},
    {"retries attempts 0", "{'id':'x','retries':{'max_attempts':0}," STEPS_LOG "}",
     "$.retries.max_attempts: must be between 1 and 1000, not 0"},
    {"retries backoff", "{'id':'x','retries':{'backoff':'quadratic'}," STEPS_LOG "}",
     "$.retries.backoff: \"quadratic\" is not one of fixed, linear, exponential"},
    {"retries cap below delay", "{'id':'x','retries':{'delay':'2m','max_delay':'1s'}," STEPS_LOG "}",
     "$.retries.max_delay: 1s is shorter than delay 2m"},
    {"retries jitter string", "{'id':'x','retries':{'jitter':'yes'}," STEPS_LOG "}",
     "$.retries.jitter: must be true or false"},
    {"approval no approvers", "{'id':'x','approval':{'required_for':['agent']}," STEPS_LOG "}",
     "$.approval: missing required key \"approvers\""},
    {"approval empty approvers", "{'id':'x','approval':{'required_for':['agent'],'approvers':[]}," STEPS_LOG "}",
     "$.approval.approvers: must not be empty"},
    {"approval bad actor", "{'id':'x','approval':{'required_for':['robot'],'approvers':['a']}," STEPS_LOG "}",
     "$.approval.required_for[0]: \"robot\" is not one of user, agent, service, system"},
    {"approval duplicate actor",
     "{'id':'x','approval':{'required_for':['agent','agent'],'approvers':['a']}," STEPS_LOG "}",
     "$.approval.required_for[1]: \"agent\" is listed twice"},
    {"approval bad approver", "{'id':'x','approval':{'required_for':['agent'],'approvers':['ops lead']}," STEPS_LOG "}",
     "$.approval.approvers[0]: \"ops lead\" is not a valid approver id"},
    {"cancel_on not array", "{'id':'x','cancel_on':{'event':'a'}," STEPS_LOG "}", "$.cancel_on: must be an array"},
    {"cancel_on no event", "{'id':'x','cancel_on':[{'if':'true'}]," STEPS_LOG "}",
     "$.cancel_on[0]: missing required key \"event\""},
    {"on_failure both", "{'id':'x','on_failure':{'event':'a','workflow':'b'}," STEPS_LOG "}",
     "$.on_failure: needs exactly one of"},
    {"on_failure wildcard", "{'id':'x','on_failure':{'event':'a.*'}," STEPS_LOG "}",
     "$.on_failure.event: event name \"a.*\": wildcards"},
    {"on_failure self", "{'id':'x','on_failure':{'workflow':'x'}," STEPS_LOG "}",
     "$.on_failure.workflow: a workflow cannot be its own on_failure handler"},
    {"steps missing", "{'id':'x'}", "$: missing required key \"steps\""},
    {"steps empty", "{'id':'x','steps':[]}", "$.steps: a workflow needs at least one step"},
    {"step not object", "{'id':'x','steps':['a']}", "$.steps[0]: a step must be an object, not a string"},
    {"step no id", "{'id':'x','steps':[{'uses':'log','with':{'message':'m'}}]}",
     "$.steps[0]: missing required key \"id\""},
    {"step bad id", "{'id':'x','steps':[{'id':'A','uses':'log','with':{'message':'m'}}]}",
     "$.steps[0].id: \"A\" is not a valid step id"},
    {"step duplicate id", "{'id':'x','steps':[" STEP_LOG "," STEP_LOG "]}",
     "$.steps[1].id: duplicate step id \"a\" (also $.steps[0])"},
    {"step no uses", "{'id':'x','steps':[{'id':'a'}]}", "$.steps[0]: missing required key \"uses\""},
    {"step unknown type", "{'id':'x','steps':[{'id':'a','uses':'htp'}]}",
     "$.steps[0].uses: unknown step type \"htp\" (did you mean \"http\"? known: transform, log"},
    {"step unknown type far", "{'id':'x','steps':[{'id':'a','uses':'kafka'}]}",
     "$.steps[0].uses: unknown step type \"kafka\" (known: "},
    {"with array", "{'id':'x','steps':[{'id':'a','uses':'log','with':[]}]}",
     "$.steps[0].with: must be an object, not an array"},
    {"with validate", "{'id':'x','steps':[" STEP_LOG ",{'id':'t','uses':'transform'}]}",
     "$.steps[1].with: transform needs \"value\""},
    {"with validate sleep",
     "{'id':'x','steps':[{'id':'s','uses':'sleep','with':{'duration':'1s','until':'2026-01-01T00:00:00Z'}}]}",
     "$.steps[0].with: sleep needs exactly one of"},
    {"with validate log level", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m','level':'loud'}}]}",
     "$.steps[0].with: log \"level\" must be"},
    {"retires typo", "{'id':'x','steps':[" STEP_LOG ",{'id':'b','uses':'log','with':{'message':'m'}},"
                     "{'id':'c','uses':'log','with':{'message':'m'},'retires':{}}]}",
     "$.steps[2].retires: unknown key (did you mean \"retries\"?)"},
    {"need typo", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'need':[]}]}",
     "$.steps[0].need: unknown key (did you mean \"needs\"?)"},
    {"needs not array", "{'id':'x','steps':[" STEP_LOG ",{'id':'b','uses':'log','with':{'message':'m'},'needs':'a'}]}",
     "$.steps[1].needs: must be an array, not a string"},
    {"needs item number", "{'id':'x','steps':[" STEP_LOG ",{'id':'b','uses':'log','with':{'message':'m'},'needs':[1]}]}",
     "$.steps[1].needs[0]: must be a string, not an integer"},
    {"needs unknown", "{'id':'x','steps':[" STEP_LOG ",{'id':'b','uses':'log','with':{'message':'m'},'needs':['zzz']}]}",
     "$.steps[1].needs[0]: unknown step \"zzz\""},
    {"needs suggestion",
     "{'id':'x','steps':[{'id':'fetch','uses':'log','with':{'message':'m'}},"
     "{'id':'b','uses':'log','with':{'message':'m'},'needs':['fetc']}]}",
     "$.steps[1].needs[0]: unknown step \"fetc\" (did you mean \"fetch\"?)"},
    {"needs twice",
     "{'id':'x','steps':[" STEP_LOG ",{'id':'b','uses':'log','with':{'message':'m'},'needs':['a','a']}]}",
     "$.steps[1].needs[1]: \"a\" is listed twice"},
    {"cycle of three",
     "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'needs':['c']},"
     "{'id':'b','uses':'log','with':{'message':'m'},'needs':['a']},"
     "{'id':'c','uses':'log','with':{'message':'m'},'needs':['b']}]}",
     "$.steps[1].needs[0]: dependency cycle: a -> c -> b -> a"},
    {"cycle through default",
     "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'needs':['b']},"
     "{'id':'b','uses':'log','with':{'message':'m'}}]}",
     "$.steps[1].needs: dependency cycle: a -> b -> a"},
    {"self cycle", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'needs':['a']}]}",
     "$.steps[0].needs[0]: dependency cycle: a -> a"},
    {"step timeout", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'timeout':'soon'}]}",
     "$.steps[0].timeout: invalid duration \"soon\""},
    {"step retries attempts", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'retries':{'max_attempts':-1}}]}",
     "$.steps[0].retries.max_attempts: must be between 1 and 1000"},
    {"continue_on_error number", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'continue_on_error':1}]}",
     "$.steps[0].continue_on_error: must be true or false, not an integer"},
    {"for_each array", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'for_each':[1,2]}]}",
     "$.steps[0].for_each: must be a string, not an array"},
    {"for_each_concurrency alone",
     "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'for_each_concurrency':2}]}",
     "$.steps[0].for_each_concurrency: only applies to a step with \"for_each\""},
    {"for_each_concurrency 0",
     "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'for_each':'event.data.items','for_each_concurrency':0}]}",
     "$.steps[0].for_each_concurrency: must be between 1"},
    {"step if blank", "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'if':''}]}",
     "$.steps[0].if: empty expression"},
};

static void test_bad_definitions(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0], checked = 0;
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        if (!c->expect)
            continue;
        rt_workflow *wf = (rt_workflow *)1;
        rt_error err = {0};
        rt_status st = parse_q(c->json, NULL, &wf, &err);
        if (st == RT_OK) {
            print_error("case %s: loaded, expected error: %s\n", c->name, c->expect);
            rt_workflow_free(wf);
            fail();
        }
        assert_int_equal(st, RT_ERR_INVALID);
        assert_null(wf);
        assert_contains(err.msg, c->expect, c->name);
        assert_true(err.msg[0] == '$' || strncmp(err.msg, "line ", 5) == 0);
        checked++;
    }
    assert_true(checked >= 40);
}

static void test_file_prefix_and_too_many_steps(void **state)
{
    (void)state;
    rt_workflow *wf;
    rt_error err;
    assert_int_equal(parse_q("{'id':'x','steps':[{'id':'a','uses':'htp'}]}", "workflows/x.json", &wf, &err),
                     RT_ERR_INVALID);
    assert_contains(err.msg, "workflows/x.json: $.steps[0].uses: unknown step type \"htp\"", "file prefix");

    /* RT_WORKFLOW_MAX_STEPS + 1 steps */
    json_t *steps = json_array();
    for (int i = 0; i <= RT_WORKFLOW_MAX_STEPS; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        json_array_append_new(steps, json_pack("{s:s,s:s,s:{s:s}}", "id", id, "uses", "log", "with", "message", "m"));
    }
    json_t *def = json_pack("{s:s,s:o}", "id", "big", "steps", steps); /* steps reference stolen */
    assert_int_equal(rt_workflow_from_json(def, NULL, &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$.steps: 257 steps, over the limit of 256", "too many steps");
    /* exactly the limit loads */
    json_array_remove(steps, 0);
    assert_int_equal(rt_workflow_from_json(def, NULL, &wf, &err), RT_OK);
    assert_int_equal(wf->n_steps, RT_WORKFLOW_MAX_STEPS);
    rt_workflow_free(wf);
    json_decref(def);

    /* a NUL inside a string built in memory */
    def = json_pack("{s:s%,s:[{s:s,s:s,s:{s:s}}]}", "id", "a\0b", (size_t)3, "steps", "id", "a", "uses", "log", "with",
                    "message", "m");
    assert_non_null(def);
    assert_int_equal(rt_workflow_from_json(def, NULL, &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$.id: must not contain a NUL character", "nul");
    json_decref(def);

    assert_int_equal(rt_workflow_from_json(NULL, "f.json", &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "f.json: $: a workflow must be a JSON object", "null def");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    rt_workflow *wf;
    rt_error err;
    const char *text = "{\n  \"id\": \"x\",\n  \"steps\": [\n    {\"id\": \"a\" \"uses\": \"log\"}\n  ]\n}\n";
    assert_int_equal(rt_workflow_parse(text, strlen(text), "workflows/x.json", &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "workflows/x.json:4:", "syntax line");
    assert_contains(err.msg, ": JSON syntax error: ", "syntax text");
    assert_null(wf);

    const char *dup = "{\"id\": \"x\",\n \"id\": \"y\", \"steps\": []}";
    assert_int_equal(rt_workflow_parse(dup, strlen(dup), "d.json", &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "d.json:2:", "dup line");
    assert_contains(err.msg, "duplicate object key", "dup text");

    assert_int_equal(rt_workflow_parse("", 0, NULL, &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "line 1, column 0: JSON syntax error", "empty");

    assert_int_equal(rt_workflow_parse("{} x", 4, "t.json", &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "t.json:1:", "trailing");

    size_t big = RT_WORKFLOW_MAX_BYTES + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, ' ', big);
    buf[0] = '{';
    buf[big - 1] = '}';
    assert_int_equal(rt_workflow_parse(buf, big, "big.json", &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "big.json: workflow is 4194305 bytes, over the 4194304-byte limit", "size");
    free(buf);
}

/* ------------------------------------------------------------------------------------ */

static void test_minimal_defaults(void **state)
{
    (void)state;
    rt_workflow *wf;
    rt_error err;
    assert_int_equal(parse_q("{'id':'x'," STEPS_LOG "}", NULL, &wf, &err), RT_OK);
    assert_string_equal(wf->id, "x");
    assert_null(wf->name);
    assert_null(wf->file);
    assert_true(wf->enabled);
    assert_false(wf->system);
    assert_int_equal(wf->priority, RT_PRIORITY_NORMAL);
    assert_int_equal(wf->timeout_ms, 0);
    assert_int_equal(wf->start_timeout_ms, 0);
    assert_int_equal(wf->retries.max_attempts, 3);
    assert_int_equal(wf->retries.backoff, RT_BACKOFF_EXPONENTIAL);
    assert_int_equal(wf->retries.delay_ms, 1000);
    assert_int_equal(wf->retries.max_delay_ms, 0);
    assert_false(wf->retries.jitter);
    assert_int_equal(wf->n_triggers, 0);
    assert_null(wf->triggers);
    assert_null(wf->output);
    assert_null(wf->concurrency);
    assert_null(wf->approval);
    assert_null(wf->cancel_on);
    assert_null(wf->idempotency);
    assert_int_equal(wf->n_steps, 1);
    assert_string_equal(wf->steps[0].id, "a");
    assert_string_equal(wf->steps[0].uses, "log");
    assert_non_null(wf->steps[0].type);
    assert_string_equal(wf->steps[0].type->name, "log");
    assert_int_equal(wf->steps[0].n_needs, 0);
    assert_false(wf->steps[0].has_retries);
    assert_int_equal(wf->steps[0].for_each_concurrency, 0);
    assert_int_equal(strlen(wf->hash), 64);

    /* the hash is sha256 of the canonical definition: key order does not matter */
    char *canon = rt_json_canonical(wf->definition);
    char hex[65];
    rt_sha256_hex(canon, strlen(canon), hex);
    free(canon);
    assert_string_equal(hex, wf->hash);
    rt_workflow *again;
    assert_int_equal(parse_q("{'steps':[{'with':{'message':'hi'},'uses':'log','id':'a'}],'id':'x'}", NULL, &again, &err),
                     RT_OK);
    assert_string_equal(again->hash, wf->hash);
    rt_workflow_free(again);
    assert_int_equal(parse_q("{'id':'x','name':'X'," STEPS_LOG "}", NULL, &again, &err), RT_OK);
    assert_string_not_equal(again->hash, wf->hash);
    assert_string_equal(again->name, "X");
    rt_workflow_free(again);

    /* `with` defaults to {}, which the step type's validate() then judges */
    assert_int_equal(parse_q("{'id':'y','steps':[{'id':'s','uses':'transform'}]}", "f.json", &again, &err),
                     RT_ERR_INVALID);
    assert_contains(err.msg, "f.json: $.steps[0].with: transform needs \"value\"", "default with");
    assert_int_equal(parse_q("{'id':'y'," STEPS_LOG "}", "f.json", &again, &err), RT_OK);
    assert_string_equal(again->file, "f.json");
    rt_workflow_free(again);
    rt_workflow_free(wf);
    rt_workflow_free(NULL);
}

static const char *design_example =
    "{"
    "  'id': 'daily-ledger-checkpoint', 'name': 'Daily ledger checkpoint', 'enabled': true, 'system': true,"
    "  'triggers': ["
    "    {'cron': '0 0 * * *', 'timezone': 'UTC', 'catch_up': 'all'},"
    "    {'event': 'ledger.checkpoint.requested', 'if': 'event.data.force == true'},"
    "    {'cron': '@hourly'}"
    "  ],"
    "  'priority': 'high',"
    "  'concurrency': {'limit': 1, 'key': 'event.data.entity_id'},"
    "  'throttle': {'limit': 60, 'period': '1m'},"
    "  'debounce': {'period': '30s', 'key': 'event.data.account_id'},"
    "  'singleton': {'key': 'event.data.account_id', 'mode': 'skip'},"
    "  'idempotency': 'event.data.day',"
    "  'batch_events': {'max_size': 100, 'timeout': '5s'},"
    "  'timeout': '15m', 'start_timeout': '1h', 'sla': '10m',"
    "  'retries': {'max_attempts': 5, 'backoff': 'exponential', 'delay': '2m', 'max_delay': '32m', 'jitter': true},"
    "  'approval': {'required_for': ['agent'], 'approvers': ['ops-lead'], 'timeout': '24h'},"
    "  'cancel_on': [{'event': 'ledger.checkpoint.cancelled', 'if': 'async.data.day == event.data.day'}],"
    "  'on_failure': {'event': 'ratchet.run.failed'},"
    "  'output': {'hash': '${{ steps.hash.output.rows[0].hash }}'},"
    "  'steps': ["
    "    {'id': 'hash', 'uses': 'sql', 'with': {'query': 'select 1'}},"
    "    {'id': 'store', 'uses': 'sql', 'with': {'query': 'insert', 'params': ['${{ schedule.date }}']},"
    "     'retries': {'backoff': 'fixed'}, 'timeout': '30s'},"
    "    {'id': 'publish', 'uses': 'log', 'with': {'message': '${{ steps.hash.output.rows[0] }}'},"
    "     'continue_on_error': true, 'if': '${{ steps.store.status == \\'completed\\' }}'}"
    "  ]"
    "}";

static void test_design_example(void **state)
{
    (void)state;
    rt_workflow *wf;
    rt_error err;
    char *text = q(design_example); /* \\' becomes \" inside a JSON string */
    rt_status st = rt_workflow_parse(text, strlen(text), NULL, &wf, &err);
    free(text);
    if (st != RT_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, RT_OK);
    assert_string_equal(wf->id, "daily-ledger-checkpoint");
    assert_string_equal(wf->name, "Daily ledger checkpoint");
    assert_true(wf->system);
    assert_int_equal(wf->priority, RT_PRIORITY_HIGH);
    assert_string_equal(rt_priority_name(wf->priority), "high");
    assert_int_equal(wf->timeout_ms, 15 * 60000);
    assert_int_equal(wf->start_timeout_ms, 3600000);
    assert_int_equal(wf->sla_ms, 600000);

    assert_int_equal(wf->n_triggers, 3);
    assert_int_equal(wf->triggers[0].kind, RT_TRIGGER_CRON);
    assert_string_equal(wf->triggers[0].cron, "0 0 * * *");
    assert_string_equal(wf->triggers[0].timezone, "UTC");
    assert_int_equal(wf->triggers[0].catch_up, RT_CATCH_UP_ALL);
    assert_null(wf->triggers[0].event);
    assert_int_equal(wf->triggers[1].kind, RT_TRIGGER_EVENT);
    assert_string_equal(wf->triggers[1].event, "ledger.checkpoint.requested");
    assert_string_equal(wf->triggers[1].if_expr, "event.data.force == true");
    assert_null(wf->triggers[1].cron);
    assert_string_equal(wf->triggers[2].timezone, "UTC"); /* default */
    assert_int_equal(wf->triggers[2].catch_up, RT_CATCH_UP_LATEST);

    assert_int_equal(wf->retries.max_attempts, 5);
    assert_int_equal(wf->retries.backoff, RT_BACKOFF_EXPONENTIAL);
    assert_int_equal(wf->retries.delay_ms, 120000);
    assert_int_equal(wf->retries.max_delay_ms, 32 * 60000);
    assert_true(wf->retries.jitter);

    assert_int_equal(json_integer_value(json_object_get(wf->concurrency, "limit")), 1);
    assert_string_equal(json_string_value(json_object_get(wf->throttle, "period")), "1m");
    assert_non_null(wf->debounce);
    assert_non_null(wf->singleton);
    assert_non_null(wf->batch_events);
    assert_string_equal(wf->idempotency, "event.data.day");
    assert_string_equal(json_string_value(json_array_get(json_object_get(wf->approval, "approvers"), 0)), "ops-lead");
    assert_int_equal(json_array_size(wf->cancel_on), 1);
    assert_string_equal(json_string_value(json_object_get(wf->on_failure, "event")), "ratchet.run.failed");
    assert_true(json_is_object(wf->output));

    assert_int_equal(wf->n_steps, 3);
    assert_int_equal(wf->steps[0].n_needs, 0);
    assert_int_equal(wf->steps[1].n_needs, 1);
    assert_string_equal(wf->steps[1].needs[0], "hash");
    assert_int_equal(wf->steps[1].need_idx[0], 0);
    assert_int_equal(wf->steps[2].n_needs, 1);
    assert_int_equal(wf->steps[2].need_idx[0], 1);
    assert_false(wf->steps[0].has_retries);
    assert_true(wf->steps[1].has_retries);
    /* a step's retries inherit the keys it does not give from the workflow's */
    assert_int_equal(wf->steps[1].retries.backoff, RT_BACKOFF_FIXED);
    assert_int_equal(wf->steps[1].retries.max_attempts, 5);
    assert_int_equal(wf->steps[1].retries.delay_ms, 120000);
    assert_int_equal(wf->steps[1].retries.max_delay_ms, 32 * 60000);
    assert_int_equal(wf->steps[1].timeout_ms, 30000);
    assert_true(wf->steps[2].continue_on_error);
    assert_non_null(wf->steps[2].if_expr);
    assert_int_equal(rt_workflow_step_index(wf, "publish"), 2);
    assert_int_equal(rt_workflow_step_index(wf, "nope"), -1);
    assert_int_equal(rt_workflow_step_index(NULL, "a"), -1);

    /* deterministic: rebuilding from the stored definition gives the same workflow */
    rt_workflow *again;
    assert_int_equal(rt_workflow_from_json(wf->definition, NULL, &again, &err), RT_OK);
    assert_string_equal(again->hash, wf->hash);
    assert_int_equal(again->n_steps, wf->n_steps);
    rt_workflow_free(again);
    rt_workflow_free(wf);
}

static void test_dag(void **state)
{
    (void)state;
    rt_workflow *wf;
    rt_error err;
    rt_status st = parse_q("{'id':'dag','steps':["
                           "{'id':'a','uses':'log','with':{'message':'m'}},"
                           "{'id':'b','uses':'log','with':{'message':'m'},'needs':[]},"
                           "{'id':'c','uses':'log','with':{'message':'m'},'needs':['b','a']},"
                           "{'id':'d','uses':'log','with':{'message':'m'},'needs':['e']},"
                           "{'id':'e','uses':'log','with':{'message':'m'},'needs':['a'],"
                           "'for_each':'event.data.items','for_each_concurrency':4.0},"
                           "{'id':'f','uses':'log','with':{'message':'m'}}]}",
                           NULL, &wf, &err);
    if (st != RT_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, RT_OK);
    assert_int_equal(wf->steps[0].n_needs, 0);
    assert_int_equal(wf->steps[1].n_needs, 0); /* [] = root */
    assert_null(wf->steps[1].needs);
    assert_int_equal(wf->steps[2].n_needs, 2);
    assert_int_equal(wf->steps[2].need_idx[0], 1);
    assert_int_equal(wf->steps[2].need_idx[1], 0);
    assert_int_equal(wf->steps[3].n_needs, 1); /* a later step is fine while there is no cycle */
    assert_int_equal(wf->steps[3].need_idx[0], 4);
    assert_int_equal(wf->steps[4].n_needs, 1);
    assert_int_equal(wf->steps[4].need_idx[0], 0);
    assert_int_equal(wf->steps[5].n_needs, 1); /* default: the previous step */
    assert_string_equal(wf->steps[5].needs[0], "e");
    assert_int_equal(wf->steps[5].need_idx[0], 4);
    assert_string_equal(wf->steps[4].for_each, "event.data.items");
    assert_int_equal(wf->steps[4].for_each_concurrency, 4);
    rt_workflow_free(wf);
}

static void test_good_variants(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{'id':'a0','$schema':'../schemas/workflow.schema.json','description':'d'," STEPS_LOG "}",
        "{'id':'a.b_c-d'," STEPS_LOG "}",
        "{'id':'x','triggers':[]," STEPS_LOG "}",
        "{'id':'x','triggers':[{'event':'>'},{'event':'a.*.c'},{'event':'a.>'},{'event':'*'},"
        "{'event':'stripe:invoice.payment_succeeded'}]," STEPS_LOG "}",
        "{'id':'x','triggers':[{'event':'a','if':'  ${{ event.data.x == 1 }}  '}]," STEPS_LOG "}",
        "{'id':'x','concurrency':{'limit':2.0}," STEPS_LOG "}",
        "{'id':'x','singleton':{}," STEPS_LOG "}",
        "{'id':'x','cancel_on':[]," STEPS_LOG "}",
        "{'id':'x','on_failure':{'workflow':'alert-ops'}," STEPS_LOG "}",
        "{'id':'x','approval':{'required_for':['agent','user'],'approvers':['alice@example.com','ops-lead']}," STEPS_LOG "}",
        "{'id':'x','output':[1,'two',{'three':null}]," STEPS_LOG "}",
        "{'id':'x','retries':{'max_delay':'1h'}," STEPS_LOG "}",
        "{'id':'x','steps':[{'id':'s','uses':'sleep','with':{'duration':'${{ event.data.wait }}'}}]}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        rt_workflow *wf;
        rt_error err;
        rt_status st = parse_q(good[i], NULL, &wf, &err);
        if (st != RT_OK)
            print_error("good[%zu]: %s\n", i, err.msg);
        assert_int_equal(st, RT_OK);
        rt_workflow_free(wf);
    }
}

/* Checks delegated to cron.c and expr.c: their messages arrive prefixed with the path.
 * Both modules are implemented: a placeholder answer (RT_ERR_INTERNAL) is a failure. */
static void test_delegated_checks(void **state)
{
    (void)state;
    rt_error err;
    rt_cron *c = NULL;
    rt_tz *tz = NULL;
    bool have_cron = rt_cron_parse("* * * * *", &c, &err) != RT_ERR_INTERNAL;
    bool have_tz = rt_tz_load("UTC", &tz, &err) != RT_ERR_INTERNAL;
    bool have_expr = rt_expr_check("1", &err) != RT_ERR_INTERNAL;
    rt_cron_free(c);
    rt_tz_free(tz);
    static const struct {
        int needs; /* 0 cron, 1 tz, 2 expr */
        const char *json, *expect;
    } cases[] = {
        {0, "{'id':'x','triggers':[{'cron':'0 25 * * *'}]," STEPS_LOG "}", "$.triggers[0].cron: cron \"0 25 * * *\""},
        {1, "{'id':'x','triggers':[{'cron':'@daily','timezone':'Mars/Base'}]," STEPS_LOG "}",
         "$.triggers[0].timezone: "},
        {2, "{'id':'x','triggers':[{'event':'a','if':'event.data.x =='}]," STEPS_LOG "}",
         "$.triggers[0].if: expression `event.data.x ==`"},
        {2, "{'id':'x','concurrency':{'limit':1,'key':'${{ a + }}'}," STEPS_LOG "}", "$.concurrency.key: expression"},
        {2, "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'hi ${{ a + }}'}}]}",
         "$.steps[0].with.message: expression"},
        {2, "{'id':'x','output':{'x':['${{ ) }}']}," STEPS_LOG "}", "$.output.x[0]: expression"},
        {2, "{'id':'x','steps':[{'id':'a','uses':'log','with':{'message':'m'},'for_each':'len('}]}",
         "$.steps[0].for_each: expression"},
    };
    assert_true(have_cron);
    assert_true(have_tz);
    assert_true(have_expr);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_workflow *wf;
        assert_int_equal(parse_q(cases[i].json, NULL, &wf, &err), RT_ERR_INVALID);
        assert_contains(err.msg, cases[i].expect, cases[i].json);
    }
}

/* ------------------------------------------------------------------------------------ */

static void write_file(const char *dir, const char *name, const char *json)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char *text = q(json);
    fputs(text, f);
    free(text);
    fclose(f);
}

typedef struct seen {
    int n;
    char files[8][512];
    char msgs[8][RT_ERROR_MAX];
} seen;

static void on_error(void *arg, const char *file, const rt_error *err)
{
    seen *s = arg;
    if (s->n < 8) {
        snprintf(s->files[s->n], sizeof s->files[0], "%s", file);
        snprintf(s->msgs[s->n], sizeof s->msgs[0], "%s", err->msg);
    }
    s->n++;
}

static void remove_tree(const char *dir, const char *const *names)
{
    char path[512];
    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/rt-test-wf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "c.json", "{'id':'gamma'," STEPS_LOG "}");
    write_file(dir, "a.json", "{'id':'alpha'," STEPS_LOG "}");
    write_file(dir, "b.json", "{'id':'beta','steps':[{'id':'a','uses':'nope'}]}");
    write_file(dir, "d.json", "{'id':'alpha','name':'again'," STEPS_LOG "}");
    write_file(dir, "e.json", "{'id':'broken',\n 'steps': [,]}");
    write_file(dir, ".hidden.json", "not even json");
    write_file(dir, "notes.txt", "ignored");

    rt_workflow_set *set;
    rt_error err;
    seen s = {0};
    assert_int_equal(rt_workflow_load_dir(dir, &set, on_error, &s, &err), RT_OK);
    assert_int_equal(set->n, 2);
    assert_int_equal(set->n_errors, 3);
    assert_int_equal(s.n, 3);
    assert_string_equal(set->items[0]->id, "alpha");
    assert_string_equal(set->items[1]->id, "gamma");
    assert_non_null(rt_workflow_set_find(set, "gamma"));
    assert_null(rt_workflow_set_find(set, "beta"));
    assert_null(rt_workflow_set_find(NULL, "beta"));
    assert_null(set->items[0]->name); /* the first alpha (a.json) wins */
    /* errors in sorted order, each naming its file */
    assert_contains(s.files[0], "/b.json", "b file");
    assert_contains(s.msgs[0], "/b.json: $.steps[0].uses: unknown step type \"nope\"", "b msg");
    assert_contains(s.files[1], "/d.json", "d file");
    assert_contains(s.msgs[1], "/d.json: $.id: duplicate workflow id \"alpha\" (already loaded from ", "d msg");
    assert_contains(s.msgs[1], "/a.json)", "d msg origin");
    assert_contains(s.msgs[2], "/e.json:2:", "e line");
    assert_contains(s.msgs[2], "JSON syntax error", "e syntax");
    rt_workflow_set_free(set);

    /* no callback: still counted */
    assert_int_equal(rt_workflow_load_dir(dir, &set, NULL, NULL, &err), RT_OK);
    assert_int_equal(set->n_errors, 3);
    rt_workflow_set_free(set);

    /* a single file path */
    char path[512];
    snprintf(path, sizeof path, "%s/c.json", dir);
    assert_int_equal(rt_workflow_load_dir(path, &set, NULL, NULL, &err), RT_OK);
    assert_int_equal(set->n, 1);
    assert_string_equal(set->items[0]->id, "gamma");
    assert_string_equal(set->items[0]->file, path);
    rt_workflow_set_free(set);

    /* load_file with a bad file names it */
    rt_workflow *wf;
    snprintf(path, sizeof path, "%s/b.json", dir);
    assert_int_equal(rt_workflow_load_file(path, &wf, &err), RT_ERR_INVALID);
    assert_contains(err.msg, path, "load_file path");

    static const char *const names[] = {"a.json", "b.json", "c.json", "d.json", "e.json", ".hidden.json", "notes.txt",
                                        NULL};
    remove_tree(dir, names);

    /* an empty directory is fine; a missing one is an error */
    strcpy(dir, "/tmp/rt-test-wf-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(rt_workflow_load_dir(dir, &set, NULL, NULL, &err), RT_OK);
    assert_int_equal(set->n, 0);
    rt_workflow_set_free(set);
    rmdir(dir);
    assert_int_equal(rt_workflow_load_dir(dir, &set, NULL, NULL, &err), RT_ERR_NOT_FOUND);
    assert_null(set);
    assert_contains(err.msg, dir, "missing dir");
    rt_workflow_set_free(NULL);
}

static void test_load_file_too_big(void **state)
{
    (void)state;
    char path[] = "/tmp/rt-test-wf-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, RT_WORKFLOW_MAX_BYTES + 1), 0);
    close(fd);
    rt_workflow *wf;
    rt_error err;
    assert_int_not_equal(rt_workflow_load_file(path, &wf, &err), RT_OK);
    assert_contains(err.msg, path, "big path");
    assert_contains(err.msg, "over the", "big limit");
    unlink(path);
}

/* ------------------------------------------------------------------------------------ */

typedef struct match_case {
    const char *pattern, *name;
    bool match;
} match_case;

static const match_case match_cases[] = {
    {"a.b", "a.b", true},
    {"a.b", "a.c", false},
    {"a.b", "a.b.c", false},
    {"a.b.c", "a.b", false},
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"*.b", "a.b", true},
    {"*", "a", true},
    {"*", "a.b", false},
    {"a.*.c", "a.x.c", true},
    {"a.*.c", "a.x.d", false},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c.d", true},
    {"a.>", "a", false},
    {">", "a", true},
    {">", "a.b.c", true},
    {"*.>", "a.b", true},
    {"*.>", "a", false},
    {"invoice.paid", "invoice.paid", true},
    {"Invoice.paid", "invoice.paid", false},
    {"invoice", "invoice.paid", false},
    {"a.b", "", false},
    {"", "a", false},
    {NULL, "a", false},
    {"a", NULL, false},
};

static void test_event_matching(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const match_case *c = &match_cases[i];
        if (rt_event_name_matches(c->pattern, c->name) != c->match) {
            print_error("pattern %s name %s: expected %s\n", c->pattern ? c->pattern : "NULL",
                        c->name ? c->name : "NULL", c->match ? "match" : "no match");
            fail();
        }
    }
    rt_error err;
    assert_int_equal(rt_event_pattern_check("a.*.>", &err), RT_OK);
    assert_int_equal(rt_event_name_check("a.*", &err), RT_ERR_INVALID);
    assert_int_equal(rt_event_name_check("a.b", &err), RT_OK);
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(rt_event_name_check(long_name, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "over the 200-byte limit", "long event");
    /* validate and the brokers agree: a 219-byte trigger is refused at load, not at serve */
    long_name[219] = '\0';
    assert_int_equal(rt_event_pattern_check(long_name, &err), RT_ERR_INVALID);
    assert_int_equal(rt_bus_pattern_check(long_name, &err), RT_ERR_INVALID);
    long_name[200] = '\0';
    assert_int_equal(rt_event_pattern_check(long_name, &err), RT_OK);
    assert_int_equal(rt_bus_pattern_check(long_name, &err), RT_OK);
    assert_true(rt_workflow_id_valid("a"));
    assert_false(rt_workflow_id_valid(NULL));
    assert_false(rt_workflow_id_valid("a/b"));
    assert_string_equal(rt_backoff_name(RT_BACKOFF_LINEAR), "linear");
    assert_string_equal(rt_catch_up_name(RT_CATCH_UP_NONE), "none");
    assert_string_equal(rt_priority_name((rt_priority)9), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_definitions),
        cmocka_unit_test(test_file_prefix_and_too_many_steps),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_dag),
        cmocka_unit_test(test_good_variants),
        cmocka_unit_test(test_delegated_checks),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_load_file_too_big),
        cmocka_unit_test(test_event_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
