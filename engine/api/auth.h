/* auth.h — API bearer tokens (DESIGN §6, §8): the tokens file (RATCHET_TOKENS, lines of
 * `sha256hex role [entity_id] [holder=ID]`, so only hashes of tokens are ever stored), constant-time
 * lookup of a presented token, the four roles, and making new tokens. */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define RT_AUTH_ENTITY_MAX 200 /* as RT_EVENT_REF_MAX: an entity id fits an event's entity_id */
#define RT_AUTH_TOKEN_PREFIX "rtk_"
#define RT_AUTH_HOLDER_MAX 128 /* an approver id */

/* Roles are bits so that a route can list the roles it admits. */
typedef enum rt_role {
    RT_ROLE_ADMIN = 1,
    RT_ROLE_OPERATOR = 2,
    RT_ROLE_AGENT = 4,
    RT_ROLE_VIEWER = 8,
} rt_role;

#define RT_ROLES_ALL (RT_ROLE_ADMIN | RT_ROLE_OPERATOR | RT_ROLE_AGENT | RT_ROLE_VIEWER)

/* "admin", "operator", "agent", "viewer". */
const char *rt_role_name(rt_role r);
/* The reverse; RT_ERR_INVALID naming the four roles otherwise. */
rt_status rt_role_parse(const char *s, rt_role *out, rt_error *err);

/* Who made a request. `label` names the token in logs and as an actor id without saying
 * anything about the token itself: "token:" and the first 12 hex digits of its hash. */
typedef struct rt_identity {
    rt_role role;
    char entity_id[RT_AUTH_ENTITY_MAX + 1]; /* "" when the token has none */
    char label[24];
    /* The approver id of the person holding the token ("" when the tokens file declares
     * none): approvers and token holders share one namespace, so that the engine can tell
     * that the person who started a run is the one approving it (approval.c). */
    char holder[RT_AUTH_HOLDER_MAX + 1];
    bool authenticated; /* a token was presented and known (false: serving without tokens) */
} rt_identity;

/* Who a token speaks for in the events and runs it starts (their actor.id): its holder
 * when declared, else its label. */
const char *rt_identity_actor_id(const rt_identity *who);

typedef struct rt_tokens rt_tokens;

/* Reads a tokens file. Blank lines and lines starting with '#' are skipped. Every other
 * line is `hash role [entity_id] [holder=ID]` (whitespace separated): hash 64 hex digits
 * (SHA-256 of the token), role one of the four, entity_id required for agents and refused
 * for the other roles, holder the approver id of the token's holder (optional). The message of a bad line names file and line number, never a hash. */
rt_status rt_tokens_load(const char *path, rt_tokens **out, rt_error *err);
/* The same from text (file names the source in messages). */
rt_status rt_tokens_parse(const char *text, size_t len, const char *file, rt_tokens **out, rt_error *err);
size_t rt_tokens_count(const rt_tokens *t);
void rt_tokens_free(rt_tokens *t);

/* Looks up a presented token (len bytes): hashes it and compares the hash with every
 * entry in constant time. true and *who filled when it is known. */
bool rt_tokens_lookup(const rt_tokens *t, const char *token, size_t len, rt_identity *who);

/* A new random token (RT_AUTH_TOKEN_PREFIX and 43 base64url characters: 256 bits) and the
 * SHA-256 hex of it. token >= 48 bytes, hash_hex >= 65. */
rt_status rt_token_generate(char *token, size_t token_len, char *hash_hex, rt_error *err);

/* Every refused API request ends here: 401 (no or unknown token: who is NULL) and 403 (a
 * role or entity boundary, also an agent's read of another entity's run, answered 404).
 * st is the calling thread's database connection (NULL when there is none), outside any
 * transaction. Logs one warning line and, for a known caller, appends "agent.refused" or
 * "api.refused" to the audit log (DESIGN §6: every refusal is an audited event; 401s are
 * only logged). Never given the token itself. */
struct rt_store;
void rt_auth_refused(struct rt_store *st, const rt_identity *who, const char *method, const char *path, int status,
                     const char *reason);

/* An entity id as tokens files and events accept it: 1..RT_AUTH_ENTITY_MAX printable ASCII
 * characters without spaces. */
bool rt_entity_id_valid(const char *s);

#endif
