/* api.h — the HTTP API (DESIGN §8) on libmicrohttpd: /api/v1/... in JSON, /healthz,
 * /readyz and /metrics, bearer tokens with roles (auth.h). A pool of MHD threads serves
 * requests; each of those threads has its own PostgreSQL connection (libpq connections
 * are never shared between threads). */
#ifndef RT_API_H
#define RT_API_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"
#include "status.h"
#include "workflow.h"

#define RT_API_THREADS 8                 /* MHD threads, each with its own database connection */
#define RT_API_BODY_MAX (1u << 20)       /* request bodies other than events */
#define RT_API_EVENTS_PER_REQUEST 1000   /* POST /api/v1/events takes at most this many */

typedef struct rt_api rt_api;

/* Checks what serving needs before anything starts: the address parses, the tokens file
 * (RATCHET_TOKENS) loads, and without one the address is a loopback one. RT_ERR_INVALID
 * with one clear line otherwise. */
rt_status rt_api_check(const rt_config *cfg, rt_error *err);

/* Binds cfg->http_addr and serves until rt_api_stop. cfg and set are borrowed and must
 * outlive the API. Logs once what it listens on and whether tokens are required. */
rt_status rt_api_start(const rt_config *cfg, const rt_workflow_set *set, rt_api **out, rt_error *err);

/* Stops accepting, lets requests in flight finish, closes everything. NULL is a no-op. */
void rt_api_stop(rt_api *api);

/* Reads the tokens file again (SIGHUP): new tokens work and removed ones stop working at
 * once. On an error the tokens in use stay. A no-op when the API started without tokens. */
rt_status rt_api_reload_tokens(rt_api *api, rt_error *err);

/* The bound address as "host:port" (the real port when cfg asked for port 0). */
const char *rt_api_address(const rt_api *api);

/* Parses "host:port", "[v6]:port" or ":port" (all interfaces); host may be a name
 * ("localhost"). *loopback says whether it is 127.0.0.0/8 or ::1. */
rt_status rt_api_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, bool *loopback,
                            rt_error *err);

#endif
