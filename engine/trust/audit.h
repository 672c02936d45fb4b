/* audit.h — the tamper-evident audit log (DESIGN §6): every control action (manual run,
 * cancel, replay, pause, resume, approval request and decision, refused action) becomes a
 * record in one hash chain, appended inside the acting transaction.
 *
 * A record is {seq, at, actor, action, subject, details}; its hash is
 *     sha256_hex(prev_hash || canonical(record))
 * where prev_hash is the previous record's hash (64 zeros for seq 1), || is byte
 * concatenation of the 64 hex digits and the canonical JSON (rt_json_canonical: compact,
 * keys sorted) of the object {"action", "actor", "at", "details", "seq", "subject"}, `at`
 * being RFC 3339 UTC with milliseconds and details as stored (jsonb-normalized). */
#ifndef RT_AUDIT_H
#define RT_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"
#include "store_audit.h"


/* The same in a transaction of its own (for actions whose own transaction is not ours). */
rt_status rt_audit_record(rt_store *st, const char *actor, const char *action, const char *subject,
                          const json_t *details, rt_error *err);

/* The CLI's identity as an audit actor: "cli:$USER" ("cli:unknown" without USER). */
const char *rt_audit_cli_actor(char *buf, size_t len);

/* One-line hooks for CLI commands: details is stolen (may be NULL). rt_audit_append_cli
 * appends inside the caller's transaction; rt_audit_cli records in its own and only logs a
 * warning when that fails (the action itself already committed). */
rt_status rt_audit_append_cli(rt_store *st, const char *action, const char *subject, json_t *details, rt_error *err);
void rt_audit_cli(rt_store *st, const char *action, const char *subject, json_t *details);

/* Creates one run (rt_run_create_tx) and its audit record (actor "cli:$USER",
 * subject the new run) in one transaction, so neither exists without the other. details is
 * stolen (may be NULL); nothing is audited when admission created no run. */
rt_status rt_audit_create_run_cli(rt_store *st, rt_run_request *req, const char *action, json_t *details,
                                  rt_error *err);

/* `ratchet audit verify`: walks the whole chain in seq order and checks every link and
 * every checkpoint. */
typedef struct rt_audit_verdict {
    bool ok;
    int64_t records;
    char head[72];        /* hash of the last record (RT_AUDIT_GENESIS when empty) */
    int64_t broken_seq;   /* the first broken record (0 when ok) */
    char why[512];        /* what is wrong with it */
} rt_audit_verdict;
rt_status rt_audit_verify(rt_store *st, rt_audit_verdict *out, rt_error *err);

#endif
