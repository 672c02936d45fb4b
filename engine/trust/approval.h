/* approval.h — approval gates (DESIGN §6): which runs wait for a person and the signed
 * decisions that release or end them (Ed25519 through OpenSSL EVP; the engine holds
 * approvers' public keys only). What an agent may never do is engine/run/refusal.h.
 *
 * A decision is the `data` of an event named ratchet.approval.decided:
 *   {"run_id", "decision": "approve"|"reject", "approver", "comment"?, "ts" (unix ms),
 *    "nonce", "action_hash", "step_id"? (an approval step; absent for the run's own gate),
 *    "sig"}
 * and the signed bytes are RT_APPROVAL_SIG_PREFIX followed by the canonical JSON (compact,
 * keys sorted, UTF-8 unescaped) of that object without "sig" — exactly the keys present.
 * `sig` is the standard base64 of the 64-byte signature; approvers' public keys are the
 * standard base64 of the 32 raw bytes. docs/approvals-and-security.md has a worked example.
 *
 * action_hash (what will run, so an approval never moves to another payload) is
 *   run gate:  sha256_hex(workflow_hash "\n" canonical(trigger event))
 *   step gate: sha256_hex(workflow_hash "\n" canonical(trigger event) "\n" step_id "\n"
 *                         canonical(the step's rendered `with`))
 * with the event as the run stored it. */
#ifndef RT_APPROVAL_H
#define RT_APPROVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "status.h"
#include "store.h"
#include "workflow.h"

#define RT_APPROVAL_SIG_PREFIX "ratchet.approval.v1\n"
#define RT_APPROVAL_SKEW_DEFAULT_MS (5 * 60 * 1000)

/* ---- settings -------------------------------------------------------------------------- */

/* The process's approvers file (RATCHET_APPROVERS) and clock-skew allowance
 * (RATCHET_APPROVAL_SKEW), set once at start by `serve` and the CLI; until then the
 * environment is read. The file is re-read for every decision, so a key added or removed
 * takes effect without a restart. approvers_file may be NULL (no approvers: every decision
 * is refused as from an unknown approver). A file that is given must read and parse now:
 * RT_ERR_INVALID with one line naming file and line otherwise (the settings still apply). */
rt_status rt_approval_configure(const char *approvers_file, int64_t skew_ms, rt_error *err);

/* ---- approvers and keys ---------------------------------------------------------------- */

typedef struct rt_approvers rt_approvers;

/* Parses an approvers file: lines `id public-key` (base64 of the 32 raw Ed25519 bytes);
 * blank lines and lines starting with '#' are skipped. Messages name file and line. */
rt_status rt_approvers_parse(const char *text, size_t len, const char *file, rt_approvers **out, rt_error *err);
rt_status rt_approvers_load(const char *path, rt_approvers **out, rt_error *err);
/* An approver id: ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$. Token holders (auth.h) use the
 * same namespace. */
bool rt_approver_id_valid(const char *s);
/* The raw public key of id, or false. */
bool rt_approvers_find(const rt_approvers *a, const char *id, unsigned char pub[32]);
size_t rt_approvers_count(const rt_approvers *a);
void rt_approvers_free(rt_approvers *a);

/* `ratchet keygen`: a new Ed25519 key pair: dir/id.key (PKCS#8 PEM, mode 0600, never
 * overwritten) and dir/id.pub (the approvers-file line). line gets "id <base64 public key>"
 * (>= 256 bytes). */
rt_status rt_approval_keygen(const char *dir, const char *id, char *line, size_t len, rt_error *err);

/* Signs msg with the private key in a PEM file; sig_b64 >= 89 bytes. */
rt_status rt_approval_sign_file(const char *key_path, const void *msg, size_t len, char *sig_b64, rt_error *err);
/* The same with a raw 32-byte private key (seed); pub_b64 (may be NULL, >= 45 bytes) gets
 * its public key. For tests and the worked example in docs/approvals-and-security.md. */
rt_status rt_approval_sign_raw(const unsigned char seed[32], const void *msg, size_t len, char *sig_b64,
                               char *pub_b64, rt_error *err);
/* Verifies an Ed25519 signature (base64) over msg. */
bool rt_approval_verify(const unsigned char pub[32], const void *msg, size_t len, const char *sig_b64);

/* ---- decisions ------------------------------------------------------------------------- */

/* Checks a decision's shape (keys, types, formats; no control characters in strings).
 * RT_ERR_INVALID names the key. */
rt_status rt_approval_decision_check(const json_t *decision, rt_error *err);
/* The exact bytes signed (NUL-terminated; *len without it). Caller frees. NULL when out of
 * memory. */
char *rt_approval_canonical(const json_t *decision, size_t *len);
/* action_hash; step_id and with are NULL for the run's own gate. hex >= 65. */
void rt_approval_action_hash(const char *workflow_hash, const json_t *event, const char *step_id,
                             const json_t *with, char *hex);

/* Why a decision was refused: stable names, used as the metric label and in the audit
 * record ("agent", "invalid", "unknown_approver", "bad_signature", "hash_mismatch",
 * "expired", "nonce_reused", "self_approval", "not_awaiting", "unknown_requester"). */
typedef enum rt_refusal {
    RT_REFUSAL_NONE = 0,
    RT_REFUSAL_AGENT,
    RT_REFUSAL_INVALID,
    RT_REFUSAL_UNKNOWN_APPROVER,
    RT_REFUSAL_BAD_SIGNATURE,
    RT_REFUSAL_HASH_MISMATCH,
    RT_REFUSAL_EXPIRED,
    RT_REFUSAL_NONCE_REUSED,
    RT_REFUSAL_SELF_APPROVAL,
    RT_REFUSAL_NOT_AWAITING,
    RT_REFUSAL_UNKNOWN_REQUESTER, /* the run's requester has no id: self-approval cannot be ruled out */
} rt_refusal;
const char *rt_refusal_name(rt_refusal r);

/* The checks a signed decision passes whatever it decides on (a run's gate here, a
 * workflow proposal in workflow_proposal.c): shape, an approver of the approvers file,
 * its signature, the clock skew (*skew_ms gets the allowance, for the nonce's lifetime).
 * *why is RT_REFUSAL_NONE when it passes, else msg says why. */
rt_status rt_approval_check_signed(const json_t *d, rt_refusal *why, char *msg, size_t len, int64_t *skew_ms,
                                   rt_error *err);

/* ---- hooks into the core (one call each) ----------------------------------------------- */

/* The gate as run/ calls it (gate.h): hold, decisions, register_steps, sweep below. */
extern const struct rt_run_gate rt_approval_gate;


/* The run-creation gate (run/create.h), after it created runs: those that rt_workflow_gates holds
 * become `awaiting_approval` — their queue items and unstarted step rows go, their
 * deadlines wait for the approval — and each gets its approval row, a stored
 * ratchet.approval.requested event and an audit record. Same transaction. */
rt_status rt_approval_hold_new_runs(rt_store *st, const rt_run_request *reqs, size_t n, rt_error *err);

/* executor finalize_run: approval steps of this batch that just suspended (rows: the
 * batch's step rows of run_id, state changed in place) get their approval row, requested
 * event (workflows of set may trigger on it) and audit record. */
rt_status rt_approval_register_steps(rt_store *st, const rt_workflow_set *set, const char *run_id,
                                     const rt_workflow *wf, json_t *event, json_t *rows, rt_error *err);

/* executor deadline sweep, in its transaction: closes the gates of the runs it ended
 * (ended: its [{id, ...}]) and ends the runs whose gate expired (`expired`), waking their
 * invoke parents and running their on_failure (set: the loaded workflows). */
rt_status rt_approval_sweep(rt_store *st, const rt_workflow_set *set, json_t *ended, rt_error *err);

/* ingest, for every fresh event: the ratchet.approval.decided ones are checked (in the
 * order of rt_refusal) and applied — approve releases the run (its ready steps are
 * queued, workers NOTIFYed) or the step, reject ends the run `rejected` (and runs its
 * on_failure from set, the loaded workflows). A refusal is
 * not an error: it is audited, counted, logged, and the event stays stored. Errors are
 * the database's only. */
rt_status rt_approval_ingest(rt_store *st, const rt_workflow_set *set, rt_event *const *fresh, size_t n, rt_error *err);

#endif
