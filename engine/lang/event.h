/* event.h — the event envelope (DESIGN §5), the same on every transport: parsing and
 * validating what publishers send, and building the events the engine makes itself. */
#ifndef RT_EVENT_H
#define RT_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define RT_EVENT_MAX_BYTES (1u << 20) /* the default size limit (DESIGN §5: 1 MiB) */
#define RT_EVENT_ID_MAX 200           /* `id`: 1..200 visible ASCII characters */
#define RT_EVENT_REF_MAX 200          /* `entity_id`, `actor.id`: 1..200 characters */
#define RT_EVENT_TS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define RT_EVENT_VERSION "1"          /* the only envelope version this engine speaks */
/* Ids of events the engine makes ("ratchet:on_failure:<run>", ...) start with this; no
 * ingress accepts it from a producer (rt_event_parse, rt_event_from_json refuse it), so
 * nobody can pre-empt an engine event by posting its id first (DESIGN §6). */
#define RT_EVENT_ENGINE_ID_PREFIX "ratchet:"
/* The approval gate's events (DESIGN §6): decisions come in, requests go out. */
#define RT_APPROVAL_DECIDED_EVENT "ratchet.approval.decided"
#define RT_APPROVAL_REQUESTED_EVENT "ratchet.approval.requested"

typedef enum rt_actor_type {
    RT_ACTOR_USER = 0,
    RT_ACTOR_AGENT,
    RT_ACTOR_SERVICE, /* the default when an event names no actor */
    RT_ACTOR_SYSTEM,
} rt_actor_type;

/* "user", "agent", "service", "system". */
const char *rt_actor_type_name(rt_actor_type t);
/* The reverse; RT_ERR_INVALID (message lists the four) for anything else. */
rt_status rt_actor_type_parse(const char *s, rt_actor_type *out, rt_error *err);

/* A validated, normalized event. `envelope` is owned and always holds name, id, ts, data,
 * actor.type and v (plus entity_id, actor.id and "x-" keys when the publisher gave them),
 * in that order. The string fields point into `envelope`: they live as long as the event,
 * and nobody may modify `envelope`. */
typedef struct rt_event {
    const char *name;
    const char *id;
    int64_t ts_ms;
    json_t *data;          /* borrowed from envelope: any JSON value, {} when absent */
    rt_actor_type actor_type;
    const char *actor_id;  /* NULL when absent */
    const char *entity_id; /* NULL when absent */
    json_t *envelope;      /* owned */
} rt_event;

/* Why an input was refused, for dead-letter counting (ratchet_events_dead_lettered_total
 * {reason}) and logs. */
typedef enum rt_event_fault {
    RT_EVENT_FAULT_NONE = 0,
    RT_EVENT_FAULT_TOO_LARGE, /* over max_bytes; not parsed at all */
    RT_EVENT_FAULT_NOT_JSON,  /* syntax error, bad UTF-8, NUL in a string, duplicate key */
    RT_EVENT_FAULT_INVALID,   /* JSON, but not a valid envelope */
    RT_EVENT_FAULT_RESERVED_ID, /* a producer's id in the engine's namespace */
    RT_EVENT_FAULT_NAME_MISMATCH, /* a broker body naming another event than its subject (intake) */
    RT_EVENT_FAULT_RESERVED_NAME, /* a producer's event under a name only the engine makes */
} rt_event_fault;

/* "none", "too_large", "not_json", "invalid", "reserved_id", "name_mismatch",
 * "reserved_name" (stable: they
 * are metric label values). */
const char *rt_event_fault_name(rt_event_fault f);

/* Parses and validates one event from a transport. max_bytes 0 means RT_EVENT_MAX_BYTES;
 * the size is checked before parsing. `ts` defaults to now_ms, `id` to a fresh UUIDv7,
 * `data` to {}, `actor` to {"type": "service"}, `v` to "1". An optional key given as null
 * counts as absent (CloudEvents does the same), except `data`, where null is a value.
 * Unknown top-level and actor keys are refused, except extension keys starting with "x-",
 * which are kept. On error: RT_ERR_INVALID (or RT_ERR_NOMEM), *out NULL, and err names
 * the JSON path ("$.actor.type: ...") or, for syntax errors, line and column. */
rt_status rt_event_parse(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                         rt_error *err);
/* The same, also saying why an input was refused (fault may be NULL). */
rt_status rt_event_parse_ex(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                            rt_error *err, rt_event_fault *fault);

/* The same for a broker message, which may be the engine's own event coming back through
 * its outbox: an id in the engine's namespace is parsed, not refused. The caller accepts
 * such an event only as a duplicate of one already stored (intake.c). */
rt_status rt_event_parse_relay(const void *bytes, size_t len, size_t max_bytes, int64_t now_ms, rt_event **out,
                               rt_error *err, rt_event_fault *fault);
/* Is id in the engine's namespace (RT_EVENT_ENGINE_ID_PREFIX)? */
bool rt_event_id_reserved(const char *id);
/* Whether only the engine may make events of this name (ratchet.approval.requested: it
 * starts approver-paging workflows, so a producer must not forge one). */
bool rt_event_name_reserved(const char *name);

/* The same rules for an envelope that is already parsed (doc is borrowed and not changed;
 * the event shares `data` and "x-" values with it, so doc must not be modified later).
 * Strings holding a NUL (json_stringn, JSON_ALLOW_NUL) are refused anywhere in doc. */
rt_status rt_event_from_json(const json_t *doc, int64_t now_ms, rt_event **out, rt_error *err);

/* An event the engine makes itself (CLI send, on_failure, publish step), checked by the
 * same rules, except that its id may be in the engine's namespace. data is borrowed (NULL means {}; the event keeps its own reference, so the
 * caller must not modify data afterwards); actor_id, entity_id and id may be NULL (a
 * UUIDv7 is assigned); ts is the current time. */
rt_status rt_event_new(const char *name, json_t *data, rt_actor_type actor_type, const char *actor_id,
                       const char *entity_id, const char *id, rt_event **out, rt_error *err);

/* The envelope as compact JSON; caller frees with free(). NULL only when out of memory. */
char *rt_event_to_json(const rt_event *ev);

void rt_event_free(rt_event *ev);

#endif
