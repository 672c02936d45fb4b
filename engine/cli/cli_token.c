/* cli_token.c — the `token` command. The token itself goes to stdout once and is never
 * stored: the tokens file keeps its SHA-256 only. */
#include "cli_token.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "approval.h"
#include "auth.h"

#define EXIT_USAGE 2

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ratchet token: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (usage: ratchet token create --role admin|operator|agent|viewer [--entity ENTITY] [--holder APPROVER_ID])\n");
    return EXIT_USAGE;
}

int rt_cli_token(int argc, char **argv, int pos)
{
    const char *verb = NULL, *role_s = NULL, *entity = NULL, *holder = NULL;
    for (int i = pos; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        const char *value = NULL;
        if (!strncmp(a, "--role", 6) && (a[6] == '\0' || a[6] == '='))
            dst = &role_s, value = a[6] == '=' ? a + 7 : NULL;
        else if (!strncmp(a, "--entity", 8) && (a[8] == '\0' || a[8] == '='))
            dst = &entity, value = a[8] == '=' ? a + 9 : NULL;
        else if (!strncmp(a, "--holder", 8) && (a[8] == '\0' || a[8] == '='))
            dst = &holder, value = a[8] == '=' ? a + 9 : NULL;
        else if (a[0] == '-')
            return usage("unknown option \"%s\"", a);
        else if (verb)
            return usage("unexpected argument \"%s\"", a);
        else
            verb = a;
        if (!dst)
            continue;
        if (!value) {
            if (i + 1 >= argc)
                return usage("%s needs a value", a);
            value = argv[++i];
        }
        *dst = value;
    }
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
