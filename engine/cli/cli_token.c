/* cli_token.c — the `token` command. The token itself goes to stdout once and is never
 * stored: the tokens file keeps its SHA-256 only. */
#include "cli_token.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "approval.h"
#include "args.h"
#include "auth.h"

#define EXIT_USAGE 2

static const rt_arg_opt token_opts[] = {
    {"--role", "admin|operator|agent|viewer", "what the token may do (required)"},
    {"--entity", "ENTITY", "the one entity an agent token acts for (agent tokens only, required for them)"},
    {"--holder", "APPROVER_ID", "the approver who holds it"},
    {NULL, NULL, NULL},
};
static const rt_arg_cmd token_cmd = {"ratchet token", "create", 1,
                                     "a new API token (printed once) and its line for RATCHET_TOKENS", token_opts,
                                     false};

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ratchet token: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see ratchet token --help\n");
    return EXIT_USAGE;
}

int rt_cli_token(int argc, char **argv, int pos)
{
    rt_args args;
    int rc;
    if (!rt_args_take(&token_cmd, NULL, argc, argv, pos, &args, &rc))
        return rc;
    const char *verb = args.n_pos ? args.pos[0] : NULL;
    const char *role_s = rt_args_value(&args, "--role"), *entity = rt_args_value(&args, "--entity");
    const char *holder = rt_args_value(&args, "--holder");
    if (!verb)
        return usage("%s", "expected a subcommand");
    if (strcmp(verb, "create") != 0)
        return usage("unknown subcommand \"%s\"", verb);
    if (!role_s)
        return usage("%s", "--role is required");
    rt_role role;
    rt_error err;
    if (rt_role_parse(role_s, &role, &err) != RT_OK)
        return usage("--role: %s", err.msg);
    if (role == RT_ROLE_AGENT && !entity)
        return usage("%s", "an agent token needs --entity: agents act for one entity only");
    if (role != RT_ROLE_AGENT && entity)
        return usage("%s", "--entity is for agent tokens only");
    if (entity && !rt_entity_id_valid(entity))
        return usage("--entity \"%.60s\": expected 1..200 printable ASCII characters without spaces", entity);
    if (holder && !rt_approver_id_valid(holder))
        return usage("--holder \"%.60s\": expected an approver id (^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$)", holder);
    char token[64], hash[65];
    if (rt_token_generate(token, sizeof token, hash, &err) != RT_OK) {
        fprintf(stderr, "ratchet token: %s\n", err.msg);
        return 1;
    }
    printf("%s\n%s %s%s%s%s%s\n", token, hash, role_s, entity ? " " : "", entity ? entity : "",
           holder ? " holder=" : "", holder ? holder : "");
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof token);
    fprintf(stderr,
            "The first line is the token: it is shown only this once, so store it now (send it as\n"
            "\"Authorization: Bearer <token>\"). Append the second line to the tokens file named by\n"
            "RATCHET_TOKENS; serve reads it at start.\n");
    return 0;
}
