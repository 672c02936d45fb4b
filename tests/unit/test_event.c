/* test_event.c — the event envelope: a table of refused inputs (each message names its
 * JSON path, or line and column), a table of accepted ones with their normalized fields,
 * the size limit, NUL bytes, and events the engine makes itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "util.h"

#define NOW 1700000000000LL

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

static void assert_contains(const char *hay, const char *needle, const char *name)
{
    if (!strstr(hay, needle)) {
        print_error("case %s:\n  message:  %s\n  expected: %s\n", name, hay, needle);
        fail();
    }
}

/* ------------------------------------------------------------------------------------ */

typedef struct bad_case {
    const char *name;
    const char *json; /* ' for " */
    const char *expect;
    rt_event_fault fault;
} bad_case;

#define F_JSON RT_EVENT_FAULT_NOT_JSON
#define F_INV RT_EVENT_FAULT_INVALID

static const bad_case bad_cases[] = {
    /* not JSON: line and column */
    {"empty input", "", "line 1, column 0: JSON syntax error", F_JSON},
    {"garbage", "hello", "line 1, column 5: JSON syntax error: invalid token near 'hello'", F_JSON},
    {"trailing comma", "{'name':'a',}", "line 1, column 13: JSON syntax error", F_JSON},
    {"second line", "{\n 'name': 'a',\n 'data': {'x': }\n}", "line 3, column", F_JSON},
    {"trailing data", "{'name':'a'} x", "JSON syntax error: end of file expected", F_JSON},
    {"two objects", "{'name':'a'}{'name':'b'}", "JSON syntax error", F_JSON},
    {"duplicate key", "{'name':'a','name':'b'}", "duplicate object key", F_JSON},
    {"duplicate key in data", "{'name':'a','data':{'k':1,'k':2}}", "duplicate object key", F_JSON},
    {"escaped NUL", "{'name':'a','data':'x\\u0000y'}", "\\u0000 (NUL) is not allowed in strings", F_JSON},
    {"escaped NUL in key", "{'name':'a','x-\\u0000':1}", "JSON syntax error", F_JSON},
    {"lone surrogate", "{'name':'a','data':'\\ud800'}", "invalid Unicode", F_JSON},
    {"huge integer", "{'name':'a','data':123456789012345678901234567890}", "too big integer", F_JSON},
    {"real overflow", "{'name':'a','data':1e400}", "real number overflow", F_JSON},
    {"NaN", "{'name':'a','data':NaN}", "JSON syntax error", F_JSON},
    {"tab in string", "{'name':'a','data':'a\tb'}", "control character", F_JSON},
    /* not an object */
    {"root array", "[]", "$: an event must be a JSON object, not an array", F_INV},
    {"root string", "'invoice.paid'", "$: an event must be a JSON object, not a string", F_INV},
    {"root null", "null", "$: an event must be a JSON object, not null", F_INV},
    {"root number", "1.5", "$: an event must be a JSON object, not a number", F_INV},
    /* name */
    {"name missing", "{'data':{}}", "$: missing required key \"name\"", F_INV},
    {"name number", "{'name':7}", "$.name: must be a string, not an integer", F_INV},
    {"name null", "{'name':null}", "$.name: must be a string, not null", F_INV},
    {"name empty", "{'name':''}", "$.name: must not be empty", F_INV},
    {"name wildcard *", "{'name':'a.*'}", "$.name: event name \"a.*\": wildcards (* and >) are only allowed", F_INV},
    {"name wildcard >", "{'name':'>'}", "wildcards (* and >) are only allowed in patterns", F_INV},
    {"name empty token", "{'name':'a..b'}", "$.name: event name \"a..b\": empty token", F_INV},
    {"name trailing dot", "{'name':'a.'}", "empty token", F_INV},
    {"name space", "{'name':'a b'}", "character ' ' at column 2 is not allowed", F_INV},
    {"name newline quoted", "{'name':'a\\n'}", "$.name: event name \"a\\n\"", F_INV},
    {"name slash", "{'name':'orders/created'}", "character '/' at column 7", F_INV},
    /* id */
    {"id number", "{'name':'a','id':42}", "$.id: must be a string, not an integer", F_INV},
    {"id empty", "{'name':'a','id':''}", "$.id: must not be empty", F_INV},
    {"id space", "{'name':'a','id':'evt 1'}", "$.id: \"evt 1\": character at byte 4 is not allowed", F_INV},
    {"id non-ASCII", "{'name':'a','id':'\xc3\xa9'}", "$.id: \"\xc3\xa9\": character at byte 1", F_INV},
    {"id DEL", "{'name':'a','id':'a\x7f'}", "$.id: \"a\\u007f\": character at byte 2", F_INV},
    /* ts */
    {"ts string", "{'name':'a','ts':'2024-11-22T00:00:00Z'}",
     "$.ts: must be an integer (milliseconds since the epoch), not a string", F_INV},
    {"ts fraction", "{'name':'a','ts':1.5}", "$.ts: must be an integer (milliseconds since the epoch), not a fraction (1.5)",
     F_INV},
    {"ts negative", "{'name':'a','ts':-1}", "$.ts: -1 is out of range", F_INV},
    {"ts after 9999", "{'name':'a','ts':253402300800000}", "$.ts: 253402300800000 is out of range", F_INV},
    {"ts huge real", "{'name':'a','ts':1e300}", "$.ts: 1e+300 is out of range", F_INV},
    {"ts boolean", "{'name':'a','ts':true}", "$.ts: must be an integer (milliseconds since the epoch), not a boolean",
     F_INV},
    {"ts object", "{'name':'a','ts':{}}", "not an object", F_INV},
    /* actor */
    {"actor string", "{'name':'a','actor':'agent'}", "$.actor: must be an object like", F_INV},
    {"actor without type", "{'name':'a','actor':{'id':'agent-7'}}", "$.actor: missing required key \"type\"", F_INV},
    {"actor type unknown", "{'name':'a','actor':{'type':'robot'}}",
     "$.actor.type: \"robot\" is not one of user, agent, service, system", F_INV},
    {"actor type case", "{'name':'a','actor':{'type':'Agent'}}", "$.actor.type: \"Agent\" is not one of", F_INV},
    {"actor type number", "{'name':'a','actor':{'type':1}}", "$.actor.type: must be a string, not an integer", F_INV},
    {"actor id number", "{'name':'a','actor':{'type':'user','id':7}}", "$.actor.id: must be a string, not an integer",
     F_INV},
    {"actor id empty", "{'name':'a','actor':{'type':'user','id':''}}", "$.actor.id: must not be empty", F_INV},
    {"actor id newline", "{'name':'a','actor':{'type':'user','id':'a\\nb'}}",
     "$.actor.id: \"a\\nb\": control characters are not allowed", F_INV},
    {"actor unknown key", "{'name':'a','actor':{'type':'user','name':'Ada'}}",
     "$.actor.name: unknown key (allowed: type, id; extension keys start with \"x-\")", F_INV},
    {"actor typo", "{'name':'a','actor':{'typ':'user'}}", "$.actor.typ: unknown key (did you mean \"type\"?", F_INV},
    /* entity_id, v */
    {"entity_id number", "{'name':'a','entity_id':42}", "$.entity_id: must be a string, not an integer", F_INV},
    {"entity_id empty", "{'name':'a','entity_id':''}", "$.entity_id: must not be empty", F_INV},
    {"entity_id control", "{'name':'a','entity_id':'acct\\u0001'}",
     "$.entity_id: \"acct\\u0001\": control characters are not allowed", F_INV},
    {"v number", "{'name':'a','v':1}", "$.v: must be a string, not an integer", F_INV},
    {"v 2", "{'name':'a','v':'2'}", "$.v: unsupported envelope version \"2\" (this engine reads version \"1\")", F_INV},
    {"v 1.0", "{'name':'a','v':'1.0'}", "$.v: unsupported envelope version \"1.0\"", F_INV},
    /* unknown keys */
    {"payload", "{'name':'a','payload':{}}", "$.payload: unknown key (did you mean \"data\"?", F_INV},
    {"timestamp", "{'name':'a','timestamp':1}", "$.timestamp: unknown key (did you mean \"ts\"?", F_INV},
    {"type as name", "{'type':'invoice.paid'}", "$.type: unknown key (did you mean \"name\"?", F_INV},
    {"typo entity", "{'name':'a','entiy_id':'x'}", "$.entiy_id: unknown key (did you mean \"entity_id\"?", F_INV},
    {"no suggestion", "{'name':'a','colour':'red'}",
     "$.colour: unknown key (allowed: name, id, ts, data, actor, entity_id, v; extension keys start with \"x-\")",
     F_INV},
    {"odd key", "{'name':'a','a \\'b':1}", "$[\"a \\\"b\"]: unknown key", F_INV},
    {"uppercase X-", "{'name':'a','X-trace':'1'}", "$.X-trace: unknown key", F_INV},
    {"unknown before missing name", "{'nmae':'a'}", "$.nmae: unknown key (did you mean \"name\"?", F_INV},
};

static void test_bad_events(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char *text = q(c->json);
        rt_event *ev = (rt_event *)1;
        rt_error err;
        rt_error_clear(&err);
        rt_event_fault fault = RT_EVENT_FAULT_NONE;
        rt_status st = rt_event_parse_ex(text, strlen(text), 0, NOW, &ev, &err, &fault);
        if (st != RT_ERR_INVALID) {
            print_error("case %s: status %s, expected invalid\n", c->name, rt_status_name(st));
            fail();
        }
        assert_null(ev);
        assert_int_equal(err.code, RT_ERR_INVALID);
        assert_contains(err.msg, c->expect, c->name);
        if (fault != c->fault) {
            print_error("case %s: fault %s, expected %s\n", c->name, rt_event_fault_name(fault),
                        rt_event_fault_name(c->fault));
            fail();
        }
        free(text);
    }
}

/* ------------------------------------------------------------------------------------ */

typedef struct good_case {
    const char *name;
    const char *json;      /* ' for " */
    const char *ev_name;
    const char *id;        /* NULL: a fresh UUIDv7 */
    int64_t ts;
    rt_actor_type actor;
    const char *actor_id;  /* NULL: absent */
    const char *entity_id; /* NULL: absent */
    const char *data;      /* the data, compact with sorted keys, ' for " */
} good_case;

static const good_case good_cases[] = {
    {"minimal", "{'name':'invoice.paid'}", "invoice.paid", NULL, NOW, RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"design example",
     "{'name': 'invoice.paid', 'id': '01JDM3ZC5Q4X8R9T2V6W7Y0ABC', 'ts': 1732300000000, 'data': {'invoice_id': "
     "'in_1'}, 'actor': {'type': 'agent', 'id': 'agent-7'}, 'entity_id': 'acct_42', 'v': '1'}",
     "invoice.paid", "01JDM3ZC5Q4X8R9T2V6W7Y0ABC", 1732300000000LL, RT_ACTOR_AGENT, "agent-7", "acct_42",
     "{'invoice_id':'in_1'}"},
    {"nulls are absent", "{'name':'a','id':null,'ts':null,'actor':null,'entity_id':null,'v':null}", "a", NULL, NOW,
     RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"data null stays", "{'name':'a','data':null}", "a", NULL, NOW, RT_ACTOR_SERVICE, NULL, NULL, "null"},
    {"data array", "{'name':'a','data':[1,'x',null]}", "a", NULL, NOW, RT_ACTOR_SERVICE, NULL, NULL, "[1,'x',null]"},
    {"data scalar", "{'name':'a','data':12}", "a", NULL, NOW, RT_ACTOR_SERVICE, NULL, NULL, "12"},
    {"actor user no id", "{'name':'a','actor':{'type':'user'}}", "a", NULL, NOW, RT_ACTOR_USER, NULL, NULL, "{}"},
    {"actor id null", "{'name':'a','actor':{'type':'system','id':null}}", "a", NULL, NOW, RT_ACTOR_SYSTEM, NULL, NULL,
     "{}"},
    {"actor service", "{'name':'a','actor':{'type':'service','id':'billing'}}", "a", NULL, NOW, RT_ACTOR_SERVICE,
     "billing", NULL, "{}"},
    {"ts zero", "{'name':'a','ts':0}", "a", NULL, 0, RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"ts max", "{'name':'a','ts':253402300799999}", "a", NULL, 253402300799999LL, RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"ts integral real", "{'name':'a','ts':1.7323e12}", "a", NULL, 1732300000000LL, RT_ACTOR_SERVICE, NULL, NULL,
     "{}"},
    {"ts minus zero", "{'name':'a','ts':-0.0}", "a", NULL, 0, RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"name punctuation", "{'name':'stripe:charge.succeeded-v2.A_b'}", "stripe:charge.succeeded-v2.A_b", NULL, NOW,
     RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"id punctuation", "{'name':'a','id':'evt_!#$%&()*+,-./:;<=>?@[]^_`{|}~'}", "a",
     "evt_!#$%&()*+,-./:;<=>?@[]^_`{|}~", NOW, RT_ACTOR_SERVICE, NULL, NULL, "{}"},
    {"entity unicode", "{'name':'a','entity_id':'\xe5\xae\xa2-42'}", "a", NULL, NOW, RT_ACTOR_SERVICE, NULL,
     "\xe5\xae\xa2-42", "{}"},
    {"extensions", "{'x-trace':'t1','name':'a','actor':{'type':'agent','x-model':'m'}}", "a", NULL, NOW,
     RT_ACTOR_AGENT, NULL, NULL, "{}"},
    {"surrogate pair", "{'name':'a','data':'\\ud83d\\ude00'}", "a", NULL, NOW, RT_ACTOR_SERVICE, NULL, NULL,
     "'\xf0\x9f\x98\x80'"},
};

static void test_good_events(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
        const good_case *c = &good_cases[i];
        char *text = q(c->json);
        rt_event *ev = NULL;
        rt_error err;
        rt_error_clear(&err);
        rt_event_fault fault = RT_EVENT_FAULT_TOO_LARGE;
        if (rt_event_parse_ex(text, strlen(text), 0, NOW, &ev, &err, &fault) != RT_OK) {
            print_error("case %s: %s\n", c->name, err.msg);
            fail();
        }
        assert_int_equal(fault, RT_EVENT_FAULT_NONE);
        assert_string_equal(ev->name, c->ev_name);
        if (c->id) {
            assert_string_equal(ev->id, c->id);
        } else {
            assert_true(rt_uuid_valid(ev->id));
            assert_int_equal(ev->id[14], '7'); /* version 7: time-ordered */
        }
        assert_int_equal(ev->ts_ms, c->ts);
        assert_int_equal(ev->actor_type, c->actor);
        if (c->actor_id)
            assert_string_equal(ev->actor_id, c->actor_id);
        else
            assert_null(ev->actor_id);
        if (c->entity_id)
            assert_string_equal(ev->entity_id, c->entity_id);
        else
            assert_null(ev->entity_id);

        char *want = q(c->data);
        char *got = json_dumps(ev->data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (strcmp(want, got) != 0) {
            print_error("case %s: data %s, expected %s\n", c->name, got, want);
            fail();
        }
        free(want);
        free(got);

        /* the envelope is complete and agrees with the fields */
        json_t *env = ev->envelope;
        assert_string_equal(json_string_value(json_object_get(env, "name")), ev->name);
        assert_string_equal(json_string_value(json_object_get(env, "id")), ev->id);
        assert_int_equal(json_integer_value(json_object_get(env, "ts")), ev->ts_ms);
        assert_ptr_equal(json_object_get(env, "data"), ev->data);
        assert_string_equal(json_string_value(json_object_get(json_object_get(env, "actor"), "type")),
                            rt_actor_type_name(ev->actor_type));
        assert_string_equal(json_string_value(json_object_get(env, "v")), "1");
        assert_int_equal(json_object_get(env, "entity_id") != NULL, ev->entity_id != NULL);

        /* and parses again to itself */
        char *out = rt_event_to_json(ev);
        assert_non_null(out);
        rt_event *again = NULL;
        assert_int_equal(rt_event_parse(out, strlen(out), 0, 1, &again, &err), RT_OK);
        assert_true(json_equal(again->envelope, ev->envelope));
        rt_event_free(again);
        free(out);
        rt_event_free(ev);
        free(text);
    }
}

/* ------------------------------------------------------------------------------------ */

static void test_normalized_json(void **state)
{
    (void)state;
    char *text = q("{'x-b':[1],'v':'1','entity_id':'e1','actor':{'x-k':true,'id':'u1','type':'user'},'data':{'k':"
                   "'v'},'ts':5,'id':'i1','name':'n.m'}");
    rt_event *ev;
    rt_error err;
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_OK);
    char *out = rt_event_to_json(ev);
    char *want = q("{'name':'n.m','id':'i1','ts':5,'data':{'k':'v'},'actor':{'type':'user','id':'u1','x-k':true},"
                   "'entity_id':'e1','v':'1','x-b':[1]}");
    assert_string_equal(out, want);
    free(want);
    free(out);
    rt_event_free(ev);
    free(text);

    text = q("{'name':'a'}");
    assert_int_equal(rt_event_parse(text, strlen(text), 0, 42, &ev, &err), RT_OK);
    out = rt_event_to_json(ev);
    char expect[256];
    snprintf(expect, sizeof expect, "{\"name\":\"a\",\"id\":\"%s\",\"ts\":42,\"data\":{},\"actor\":{\"type\":\"service\"},"
                                    "\"v\":\"1\"}",
             ev->id);
    assert_string_equal(out, expect);
    free(out);
    rt_event_free(ev);
    free(text);
}

static void test_size_limit(void **state)
{
    (void)state;
    rt_event *ev = (rt_event *)1;
    rt_error err;
    rt_event_fault fault;
    /* checked before parsing: garbage over the limit is "too large", not a syntax error */
    const char garbage[] = "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a";
    assert_int_equal(rt_event_parse_ex(garbage, 10, 9, NOW, &ev, &err, &fault), RT_ERR_INVALID);
    assert_null(ev);
    assert_int_equal(fault, RT_EVENT_FAULT_TOO_LARGE);
    assert_string_equal(err.msg, "event is 10 bytes, over the 9-byte limit");
    assert_string_equal(rt_event_fault_name(fault), "too_large");

    /* exactly at the limit is fine */
    const char *small = "{\"name\":\"a\"}";
    assert_int_equal(rt_event_parse(small, strlen(small), strlen(small), NOW, &ev, &err), RT_OK);
    rt_event_free(ev);

    /* 0 means the 1 MiB default */
    size_t n = RT_EVENT_MAX_BYTES;
    char *big = malloc(n + 1);
    assert_non_null(big);
    int head = snprintf(big, n, "{\"name\":\"a\",\"data\":\"");
    memset(big + head, 'x', n - (size_t)head - 2);
    memcpy(big + n - 2, "\"}", 2);
    assert_int_equal(rt_event_parse(big, n, 0, NOW, &ev, &err), RT_OK);
    assert_int_equal(strlen(json_string_value(ev->data)), n - (size_t)head - 2);
    rt_event_free(ev);
    big[n] = ' ';
    assert_int_equal(rt_event_parse_ex(big, n + 1, 0, NOW, &ev, &err, &fault), RT_ERR_INVALID);
    assert_int_equal(fault, RT_EVENT_FAULT_TOO_LARGE);
    assert_contains(err.msg, "over the 1048576-byte limit", "1 MiB default");
    free(big);
}

static void test_nul_bytes(void **state)
{
    (void)state;
    rt_event *ev = (rt_event *)1;
    rt_error err;
    rt_event_fault fault;
    /* a raw NUL inside a string, with the length covering it */
    const char raw[] = "{\"name\":\"a\",\"data\":\"x\0y\"}";
    assert_int_equal(rt_event_parse_ex(raw, sizeof raw - 1, 0, NOW, &ev, &err, &fault), RT_ERR_INVALID);
    assert_null(ev);
    assert_int_equal(fault, RT_EVENT_FAULT_NOT_JSON);
    /* a NUL inside the name would otherwise cut it to a valid "a" */
    const char in_name[] = "{\"name\":\"a\\u0000.b\"}";
    assert_int_equal(rt_event_parse_ex(in_name, sizeof in_name - 1, 0, NOW, &ev, &err, &fault), RT_ERR_INVALID);
    assert_int_equal(fault, RT_EVENT_FAULT_NOT_JSON);
    assert_contains(err.msg, "(NUL) is not allowed", "escaped NUL in name");
    /* a C string's terminator counted in len */
    const char *s = "{\"name\":\"a\"}";
    assert_int_equal(rt_event_parse_ex(s, strlen(s) + 1, 0, NOW, &ev, &err, &fault), RT_ERR_INVALID);
    assert_int_equal(fault, RT_EVENT_FAULT_NOT_JSON);
    /* NULL bytes with length 0, and a NULL error object */
    assert_int_equal(rt_event_parse(NULL, 0, 0, NOW, &ev, NULL), RT_ERR_INVALID);
    assert_null(ev);
}

static void test_from_json_shares_nothing_it_changes(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s, s:{s:i}, s:[i]}", "name", "a.b", "data", "k", 1, "x-e", 2);
    json_t *copy = json_deep_copy(doc);
    rt_event *ev;
    rt_error err;
    assert_int_equal(rt_event_from_json(doc, NOW, &ev, &err), RT_OK);
    assert_true(json_equal(doc, copy));
    assert_ptr_equal(ev->data, json_object_get(doc, "data")); /* shared, with its own reference */
    json_decref(doc);
    assert_int_equal(json_integer_value(json_object_get(ev->data, "k")), 1);
    rt_event_free(ev);
    json_decref(copy);

    assert_int_equal(rt_event_from_json(NULL, NOW, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$: an event must be a JSON object, not nothing");

    /* a document parsed with JSON_ALLOW_NUL: a NUL would cut "a\0.*" to a valid "a" */
    const char *with_nul[][2] = {
        {"{\"name\":\"a\\u0000.*\"}", "$.name: strings must not contain \\u0000 (NUL)"},
        {"{\"name\":\"a\",\"data\":[{\"k\":[\"x\\u0000\"]}]}", "$.data: strings must not contain"},
        {"{\"name\":\"a\",\"x-e\":\"\\u0000\"}", "$.x-e: strings must not contain"},
        {"{\"name\":\"a\",\"actor\":{\"type\":\"user\",\"id\":\"u\\u0000\"}}", "$.actor: strings must not"},
    };
    for (size_t i = 0; i < sizeof with_nul / sizeof with_nul[0]; i++) {
        json_t *d = json_loads(with_nul[i][0], JSON_ALLOW_NUL, NULL);
        assert_non_null(d);
        assert_int_equal(rt_event_from_json(d, NOW, &ev, &err), RT_ERR_INVALID);
        assert_null(ev);
        assert_contains(err.msg, with_nul[i][1], with_nul[i][0]);
        json_decref(d);
    }
    json_t *nul_data = json_stringn("a\0b", 3);
    assert_int_equal(rt_event_new("a", nul_data, RT_ACTOR_USER, NULL, NULL, NULL, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.data: strings must not contain \\u0000 (NUL)");
    json_decref(nul_data);
}

static void test_event_new(void **state)
{
    (void)state;
    rt_event *ev;
    rt_error err;
    json_t *data = json_pack("{s:s}", "run_id", "r1");
    int64_t before = rt_now_ms();
    assert_int_equal(rt_event_new("ratchet.run.failed", data, RT_ACTOR_SYSTEM, "ratchet", "acct_1", NULL, &ev, &err),
                     RT_OK);
    assert_int_equal(data->refcount, 2); /* the event keeps its own reference */
    assert_string_equal(ev->name, "ratchet.run.failed");
    assert_true(rt_uuid_valid(ev->id));
    assert_true(ev->ts_ms >= before && ev->ts_ms <= rt_now_ms());
    assert_int_equal(ev->actor_type, RT_ACTOR_SYSTEM);
    assert_string_equal(ev->actor_id, "ratchet");
    assert_string_equal(ev->entity_id, "acct_1");
    assert_ptr_equal(ev->data, data);
    rt_event_free(ev);
    assert_int_equal(data->refcount, 1);
    json_decref(data);

    /* given id; NULL data is {} */
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_USER, NULL, NULL, "evt-1", &ev, &err), RT_OK);
    assert_string_equal(ev->id, "evt-1");
    assert_true(json_is_object(ev->data) && json_object_size(ev->data) == 0);
    assert_null(ev->actor_id);
    assert_null(ev->entity_id);
    rt_event_free(ev);

    /* the same rules */
    ev = (rt_event *)1;
    assert_int_equal(rt_event_new("a.*", NULL, RT_ACTOR_USER, NULL, NULL, NULL, &ev, &err), RT_ERR_INVALID);
    assert_null(ev);
    assert_contains(err.msg, "$.name: event name \"a.*\": wildcards", "new wildcard");
    assert_int_equal(rt_event_new(NULL, NULL, RT_ACTOR_USER, NULL, NULL, NULL, &ev, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$: missing required key \"name\"", "new no name");
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_USER, NULL, "bad\xff", NULL, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.entity_id: not valid UTF-8");
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_USER, "", NULL, NULL, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.actor.id: must not be empty");
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_USER, NULL, NULL, "a b", &ev, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$.id: \"a b\": character at byte 2", "new bad id");
    assert_int_equal(rt_event_new("a", NULL, (rt_actor_type)9, NULL, NULL, NULL, &ev, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$.actor.type: 9 is not an actor type", "new bad actor");
}

static void test_ids_are_time_ordered(void **state)
{
    (void)state;
    rt_event *a, *b;
    rt_error err;
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_SERVICE, NULL, NULL, NULL, &a, &err), RT_OK);
    /* UUIDv7 orders by millisecond: wait for the next one */
    int64_t t = rt_now_ms();
    while (rt_now_ms() <= t + 1) {
    }
    assert_int_equal(rt_event_new("a", NULL, RT_ACTOR_SERVICE, NULL, NULL, NULL, &b, &err), RT_OK);
    assert_true(strcmp(a->id, b->id) < 0);
    rt_event_free(a);
    rt_event_free(b);
    rt_event_free(NULL);
}

static void test_names(void **state)
{
    (void)state;
    rt_actor_type t;
    rt_error err;
    const char *names[] = {"user", "agent", "service", "system"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(rt_actor_type_name((rt_actor_type)i), names[i]);
        assert_int_equal(rt_actor_type_parse(names[i], &t, &err), RT_OK);
        assert_int_equal(t, i);
    }
    assert_string_equal(rt_actor_type_name((rt_actor_type)7), "unknown");
    assert_int_equal(rt_actor_type_parse("robot", &t, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "\"robot\" is not one of user, agent, service, system");
    assert_int_equal(rt_actor_type_parse(NULL, &t, &err), RT_ERR_INVALID);
    assert_string_equal(rt_event_fault_name(RT_EVENT_FAULT_NONE), "none");
    assert_string_equal(rt_event_fault_name(RT_EVENT_FAULT_NOT_JSON), "not_json");
    assert_string_equal(rt_event_fault_name(RT_EVENT_FAULT_INVALID), "invalid");
    assert_null(rt_event_to_json(NULL));
}

static void test_long_fields(void **state)
{
    (void)state;
    /* limits: name 200 bytes, id 200 bytes, entity_id 200 characters (not bytes) */
    char name[300], id[300], ent[1000], text[2000];
    rt_event *ev;
    rt_error err;
    memset(name, 'n', 200);
    name[200] = '\0';
    memset(id, 'i', 200);
    id[200] = '\0';
    ent[0] = '\0';
    for (int i = 0; i < 200; i++)
        strcat(ent, "\xc3\xa9"); /* é: 2 bytes, 1 character */
    snprintf(text, sizeof text, "{\"name\":\"%s\",\"id\":\"%s\",\"entity_id\":\"%s\"}", name, id, ent);
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_OK);
    rt_event_free(ev);
    strcat(ent, "\xc3\xa9");
    snprintf(text, sizeof text, "{\"name\":\"a\",\"entity_id\":\"%s\"}", ent);
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.entity_id: is 201 characters, over the 200-character limit");
    strcat(id, "i");
    snprintf(text, sizeof text, "{\"name\":\"a\",\"id\":\"%s\"}", id);
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.id: is 201 characters, over the 200-character limit");
    strcat(name, "n");
    snprintf(text, sizeof text, "{\"name\":\"%s\"}", name);
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_ERR_INVALID);
    assert_string_equal(err.msg, "$.name: event name is 201 bytes, over the 200-byte limit");
    /* a long odd key is cut in the path */
    char key[200];
    memset(key, 'k', 100);
    key[0] = ' ';
    key[100] = '\0';
    snprintf(text, sizeof text, "{\"name\":\"a\",\"%s\":1}", key);
    assert_int_equal(rt_event_parse(text, strlen(text), 0, NOW, &ev, &err), RT_ERR_INVALID);
    assert_contains(err.msg, "$[\" kkk", "long key");
    assert_contains(err.msg, "kkk...\"]: unknown key", "long key cut");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_good_events),
        cmocka_unit_test(test_normalized_json),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_from_json_shares_nothing_it_changes),
        cmocka_unit_test(test_event_new),
        cmocka_unit_test(test_ids_are_time_ordered),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_long_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
