/* store_audit.h — the SQL of the audit log (ratchet.audit_log, ratchet.audit_checkpoints):
 * the append lock, the chain head, inserts, pages for listing and verifying. audit.c
 * computes the hashes; nothing here knows how. Same rules as store.h. */
#ifndef RT_STORE_AUDIT_H
#define RT_STORE_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* The head as the next record sees it, read under the append lock. */
typedef struct rt_audit_head {
    int64_t seq;       /* of the last record, 0 when the log is empty */
    char hash[65];     /* its hash, or RT_AUDIT_GENESIS */
    char at[40];       /* the new record's time: RFC 3339 UTC with milliseconds */
    char *details;     /* the new record's details as jsonb prints them (caller frees) */
} rt_audit_head;

/* Inside the caller's transaction (READ COMMITTED): takes the transaction-scoped append
 * lock, then — in a statement of its own, so its snapshot sees the previous holder's
 * commit — reads the head, the clock and details (borrowed, NULL = {}) normalized through
 * jsonb. The lock is held until the transaction ends. */
rt_status rt_store_audit_lock_head(rt_store *st, const json_t *details, rt_audit_head *out, rt_error *err);

/* Inserts one record (details: jsonb text from rt_store_audit_lock_head). */
rt_status rt_store_audit_insert(rt_store *st, int64_t seq, const char *at, const char *actor, const char *action,
                                const char *subject, const char *details, const char *prev_hash, const char *hash,
                                rt_error *err);

/* One row as stored; details is jsonb text (what verify hashes). */
typedef struct rt_audit_row {
    int64_t seq;
    char at[40];
    char *actor, *action, *subject, *details;
    char prev_hash[72], hash[72]; /* room for a tampered value that is too long */
} rt_audit_row;
void rt_audit_rows_free(rt_audit_row *rows, size_t n);

/* Up to limit rows with seq > after_seq, in seq order. */
rt_status rt_store_audit_page(rt_store *st, int64_t after_seq, int limit, rt_audit_row **rows, size_t *n,
                              rt_error *err);
/* For listing: rows at or after since_ms (0 = any), oldest first; when since_ms is 0,
 * the newest limit rows, still oldest first. */
rt_status rt_store_audit_list(rt_store *st, int64_t since_ms, int limit, rt_audit_row **rows, size_t *n,
                              rt_error *err);

/* Every checkpoint, by seq: [{seq, head, at}]. *out new reference. */
rt_status rt_store_audit_checkpoints(rt_store *st, json_t **out, rt_error *err);

#define RT_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Appends one record inside the caller's transaction (rt_store_begin ... commit; READ
 * COMMITTED). Concurrent writers serialize on a transaction-scoped advisory lock, held
 * from here to the end of the caller's transaction: append last, then commit.
 * actor: "user:alice", "agent:agent-7", "cli:root", "approver:ops-lead", "system:ratchet";
 * action: "run.manual", "run.cancel", "approval.approved", ...; subject: what it acted on
 * (a run id, a workflow id), may be NULL; details: borrowed, may be NULL ({}). */
rt_status rt_store_audit_append(rt_store *st, const char *actor, const char *action, const char *subject,
                                const json_t *details, rt_error *err);

/* The hash of a record (hex >= 65 bytes). details_json is the details' JSON text (any
 * spacing: it is parsed and canonicalized; text that does not parse is hashed as is). */
void rt_audit_hash(const char *prev_hash, int64_t seq, const char *at, const char *actor, const char *action,
                   const char *subject, const char *details_json, char *hex);

#endif
