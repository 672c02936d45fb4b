/* fuzz_event.c — libFuzzer target for the event envelope (engine/lang/event.c): any bytes go
 * through rt_event_parse_ex; the same bytes, parsed leniently (NULs allowed, any value),
 * through rt_event_from_json. Beyond crashes and leaks it aborts when a result breaks
 * the contract: an error without a message or fault, a size over the limit that was not
 * refused first, an accepted event whose fields break the rules, or an envelope that does
 * not parse again to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "workflow.h"

#define NOW 1700000000000LL

static void check_event(const rt_event *ev, int64_t now)
{
    if (!ev || !ev->envelope || !json_is_object(ev->envelope))
        abort();
    if (rt_event_name_check(ev->name, NULL) != RT_OK)
        abort();
    size_t n = strlen(ev->id);
    if (n == 0 || n > RT_EVENT_ID_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (ev->id[i] < 0x21 || ev->id[i] > 0x7e)
            abort();
    }
    if (ev->ts_ms < 0 || ev->ts_ms > RT_EVENT_TS_MAX)
        abort();
    if ((unsigned)ev->actor_type > RT_ACTOR_SYSTEM || !ev->data)
        abort();
    if ((ev->entity_id && !*ev->entity_id) || (ev->actor_id && !*ev->actor_id))
        abort();
    /* every key is known or an extension */
    static const char *const keys[] = {"name", "id", "ts", "data", "actor", "entity_id", "v"};
    const char *k;
    json_t *v;
    json_object_foreach(ev->envelope, k, v) {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(k, keys[i]) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0] && strncmp(k, "x-", 2) != 0)
            abort();
    }
    if (strcmp(json_string_value(json_object_get(ev->envelope, "v")), RT_EVENT_VERSION) != 0)
        abort();

    /* the envelope parses again to itself (with another clock: nothing is defaulted) */
    char *text = rt_event_to_json(ev);
    if (!text)
        abort();
    rt_event *again = NULL;
    rt_error err;
    if (rt_event_parse(text, strlen(text), strlen(text), now + 1, &again, &err) != RT_OK ||
        !json_equal(again->envelope, ev->envelope) || again->ts_ms != ev->ts_ms || strcmp(again->id, ev->id) != 0)
        abort();
    rt_event_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_event *ev = (rt_event *)&ev; /* must come back NULL on error */
    rt_error err;
    err.msg[0] = '\0';
    rt_event_fault fault = RT_EVENT_FAULT_NONE;
    rt_status st = rt_event_parse_ex(data, size, 0, NOW, &ev, &err, &fault);
    if (st == RT_OK) {
        if (fault != RT_EVENT_FAULT_NONE)
            abort();
        check_event(ev, NOW);
        rt_event_free(ev);
    } else if (ev != NULL || err.msg[0] == '\0' || fault == RT_EVENT_FAULT_NONE || fault == RT_EVENT_FAULT_TOO_LARGE) {
        abort();
    }

    /* a limit below the size is refused before parsing, whatever the bytes (a limit of 0
     * means the default, so start at 2 bytes) */
    if (size > 1) {
        ev = (rt_event *)&ev;
        if (rt_event_parse_ex(data, size, size - 1, NOW, &ev, &err, &fault) != RT_ERR_INVALID || ev != NULL ||
            fault != RT_EVENT_FAULT_TOO_LARGE)
            abort();
    }

    /* the already-parsed path, on a document that may hold NULs */
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (doc) {
        ev = NULL;
        if (rt_event_from_json(doc, NOW, &ev, &err) == RT_OK) {
            check_event(ev, NOW);
            rt_event_free(ev);
        } else if (ev != NULL || err.msg[0] == '\0') {
            abort();
        }
        json_decref(doc);
    }
    return 0;
}
