/* api_hooks.h — inbound webhooks (DESIGN §8): POST /hooks/stripe verifies Stripe-Signature
 * and stores the payload as the event stripe.<type>; POST /hooks/generic/{name} does the
 * same for any sender that signs with an HMAC header. Public routes: the signature is the
 * authentication.
 *
 * Both signature headers read "t=<unix seconds>,v1=<hex>[,v1=<hex>...]" where each v1 may
 * be HMAC-SHA256(secret, t "." raw body) in hex: Stripe's scheme, which ours copies. Other
 * entries (Stripe's v0) are ignored. A delivery is refused (400, nothing stored) unless a
 * v1 matches and t is within RATCHET_WEBHOOK_TOLERANCE of now; the signature is checked
 * before the timestamp and before the body is parsed. */
#ifndef RT_API_HOOKS_H
#define RT_API_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_routes.h"

#define RT_HOOK_NAME_MAX 64 /* generic hook names: [a-z0-9][a-z0-9_]{0,63} */
#define RT_HOOK_T_MAX 16    /* t=: 1 to 12 digits, plus room */

/* What the signature header says about a delivery. The names (rt_hook_verdict_name) are
 * the `reason` label values of ratchet_webhook_refused_total. */
typedef enum rt_hook_verdict {
    RT_HOOK_OK = 0,
    RT_HOOK_MALFORMED,     /* header absent, no t=, t= not 1 to 12 digits, no v1=, a part without '=' */
    RT_HOOK_BAD_SIGNATURE, /* no v1 matches (wrong secret, changed body, or a v1 that is not 64 hex digits) */
    RT_HOOK_EXPIRED,       /* a v1 matches but |now - t| > tolerance */
} rt_hook_verdict;

/* "ok", "malformed", "bad_signature", "expired". */
const char *rt_hook_verdict_name(rt_hook_verdict v);

/* Checks header (NULL = absent) against body[0..len) with secret (the whole string is the
 * HMAC key, Stripe's "whsec_" included). On RT_HOOK_OK, t_text (>= RT_HOOK_T_MAX bytes)
 * holds the t= value exactly as signed; otherwise why (>= 160 bytes is plenty) says what
 * is wrong without repeating any signature. Signatures are compared in constant time. */
rt_hook_verdict rt_hook_verify(const char *header, const void *body, size_t len, const char *secret, int64_t now_ms,
                               int64_t tolerance_ms, char *t_text, char *why, size_t why_len);

/* A generic hook's name: [a-z0-9][a-z0-9_]{0,63}, so that "hook.<name>" is a valid event
 * name and no two names share a secret variable (rt_hook_secret_var is injective: '-' and
 * '.' would both have become '_'). */
bool rt_hook_name_valid(const char *name);

/* The environment variable holding a generic hook's secret: "RATCHET_SECRET_HOOK_" and the
 * name upper-cased (one name, one variable). name must be valid; out >= 96 bytes. */
void rt_hook_secret_var(const char *name, char *out, size_t len);

/* The event id of a generic delivery without one: "hook:<name>:" and the hex SHA-256 of
 * t_text "." body, so a replay of the same signed delivery is a duplicate while the same
 * body signed at another second is a new event. out >= 140 bytes. */
void rt_hook_derived_id(const char *name, const char *t_text, const void *body, size_t len, char *out, size_t out_len);

/* The route handlers (api_routes.c's table). */
void rt_api_post_stripe_hook(rt_api_req *r);
void rt_api_post_generic_hook(rt_api_req *r);

#endif
