/* cli_token.h — `ratchet token create --role R [--entity E]`: makes an API token, prints it
 * once with the line to append to the tokens file (RATCHET_TOKENS). */
#ifndef RT_CLI_TOKEN_H
#define RT_CLI_TOKEN_H

/* argv[pos..] are the arguments after "token". Returns the exit code: 0 ok, 1 failure,
 * 2 usage error. Needs no database. */
int rt_cli_token(int argc, char **argv, int pos);

#endif
