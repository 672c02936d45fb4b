/* expr.h — the expression language of DESIGN §3 and the ${{ }} templates built on it.
 * Pure and bounded: no loops, no I/O (except reading RATCHET_SECRET_* for `secrets`). */
#ifndef RT_EXPR_H
#define RT_EXPR_H

#include <jansson.h>
#include <stdbool.h>

#include "status.h"

/* Limits that keep evaluation bounded whatever the input. */
#define RT_EXPR_MAX_LEN 4096   /* characters in one expression */
#define RT_EXPR_MAX_DEPTH 64   /* nesting of parentheses / operators */
#define RT_EXPR_MAX_STRING (1 << 20) /* bytes in a string built by + or a function */

/* Checks the syntax of one expression (no context needed). On error err->msg names
 * the column: "expression `a +`: column 4: expected a value". */
rt_status rt_expr_check(const char *src, rt_error *err);

/* Evaluates one expression against ctx, a JSON object whose top-level keys are the
 * roots (`event`, `steps`, `run`, `schedule`, `item`, `index`, `async`, ...). ctx is
 * borrowed. The root `secrets.NAME` reads the environment variable RATCHET_SECRET_NAME
 * and is never part of ctx. An unknown path gives null; a type error (e.g. "a" - 1),
 * division by zero or too deep nesting is an error. *out is a new reference. */
rt_status rt_expr_eval(const char *src, json_t *ctx, json_t **out, rt_error *err);

/* Truthiness used by `if`: false, null, 0, "" , [] and {} are false. */
bool rt_expr_truthy(const json_t *v);

/* Evaluates a condition (`if`): a string that is a bare expression or one
 * "${{ expr }}" template. */
rt_status rt_expr_condition(const char *src, json_t *ctx, bool *out, rt_error *err);

/* True when s holds at least one "${{". */
bool rt_template_present(const char *s);

/* Renders a JSON value: every string holding ${{ expr }} is evaluated. A string that is
 * exactly one template keeps the expression's JSON type; otherwise results are
 * interpolated as text (strings raw, other values as compact JSON, null as "").
 * Objects and arrays are rendered recursively. value and ctx are borrowed; *out is a
 * new reference. */
rt_status rt_template_render(json_t *value, json_t *ctx, json_t **out, rt_error *err);

/* Checks every template inside value for syntax, without evaluating. err->msg names
 * the JSON path relative to value, e.g. "with.params[1]: column 3: ...". path_prefix
 * is prepended to paths (may be ""). */
rt_status rt_template_check(json_t *value, const char *path_prefix, rt_error *err);

#endif
