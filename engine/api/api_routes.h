/* api_routes.h — between the HTTP server (api.c) and the route handlers (api_routes.c):
 * the route table, what a handler sees of its request, and how it answers. Handlers run
 * on an MHD thread after the whole body arrived and the caller's role was checked. */
#ifndef RT_API_ROUTES_H
#define RT_API_ROUTES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "ingest.h"
#include "status.h"
#include "store.h"
#include "workflow.h"

#define RT_API_MAX_PARAMS 2

typedef struct rt_api rt_api;
typedef struct rt_api_req rt_api_req;

typedef void (*rt_api_handler)(rt_api_req *r);

typedef struct rt_api_route {
    const char *method;  /* "GET" or "POST" */
    const char *pattern; /* "/api/v1/runs/{}/cancel": each {} matches one non-empty segment */
    unsigned roles;      /* rt_role bits admitted; 0 = public (no token needed) */
    bool event_body;     /* body limit RATCHET_MAX_EVENT_BYTES instead of RT_API_BODY_MAX */
    rt_api_handler fn;
} rt_api_route;

/* The table, in match order. */
const rt_api_route *rt_api_routes(size_t *n);

struct rt_api_req {
    const rt_config *cfg;
    const rt_workflow_set *set;
    rt_api *api;
    void *conn;          /* the MHD connection (opaque here) */
    const char *method;
    const char *path;
    const char *safe_path; /* path made printable and bounded, for logs and messages */
    const char *params[RT_API_MAX_PARAMS]; /* the {} segments, decoded */
    const char *body;    /* NUL-terminated; body_len bytes (may hold NULs) */
    size_t body_len;
    bool auth_enabled;   /* false: no tokens file, loopback only, every caller is admin */
    const char *transport; /* what rt_api_ingest_deferred stores events as: NULL = "api" */
    rt_identity who;

    /* a handler's own state across a deferred answer, freed with the request */
    void *state;
    void (*state_free)(void *state);
    rt_status async_status; /* what a deferred operation ended with */
    rt_error async_err;

    /* the answer: set through the rt_api_reply_* calls */
    int status;
    json_t *json;        /* owned */
    char *text;          /* owned, with content_type */
    const char *content_type;
    char location[128];
    const char *allow;
};

/* ---- implemented in api.c ---- */

/* A query-string argument, or NULL. */
const char *rt_api_query(rt_api_req *r, const char *key);
/* A request header's value (case-insensitive name), or NULL when absent or empty. */
const char *rt_api_header(rt_api_req *r, const char *name);
/* Answers 400 and returns false when the query has a key outside allowed (NULL-terminated). */
bool rt_api_query_only(rt_api_req *r, const char *const *allowed);

/* The calling thread's database connection (reconnected when it broke), or NULL with err
 * set (RT_ERR_UNAVAILABLE). Give it back with rt_api_store_put when done (NULL is fine). */
rt_store *rt_api_store_get(rt_api_req *r, rt_error *err);
void rt_api_store_put(rt_api_req *r, rt_store *st);

/* Stores events[0..n) through the group-commit batcher (api_ingest.h) without holding
 * this thread: the connection is suspended, and once the transaction holding them ended,
 * finish(r) runs (on an MHD thread) with r->async_status / r->async_err and results[]
 * filled, and answers. events and results must live in r->state. */
void rt_api_ingest_deferred(rt_api_req *r, rt_event *const *events, size_t n, rt_ingest_result *results,
                            rt_api_handler finish);

/* Answers. json is taken (a new reference). */
void rt_api_reply_json(rt_api_req *r, int status, json_t *json);
void rt_api_reply_text(rt_api_req *r, int status, const char *content_type, char *text);
/* {"error": {"code", "message"}} with status; code is derived from status. */
void rt_api_reply_error(rt_api_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same with extra members in "error" (taken). */
void rt_api_reply_error_with(rt_api_req *r, int status, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a failed call's status: NOT_FOUND 404, INVALID 400, CONFLICT 409, UNAVAILABLE and
 * TIMEOUT 503, else 500 (logged). */
void rt_api_reply_status(rt_api_req *r, const rt_error *err);
/* 403 (or status) for an authenticated caller whose role or entity may not do this:
 * answered, logged and handed to the refusal hook (auth.h). */
void rt_api_refuse(rt_api_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- implemented in api_routes.c ---- */

/* Run-list cursors: opaque base64url of the position (created_at in unix µs, run id) of
 * the last run of a page. out >= 128 bytes. decode is false for anything else. */
void rt_api_cursor_encode(int64_t us, const char *id, char *out, size_t len);
bool rt_api_cursor_decode(const char *s, int64_t *us, char id[37]);

#endif
