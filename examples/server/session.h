/*
 * The per-connection state of the example server (server.c), shared with the
 * fix (fix.c): a replacement function must see the same structure layout as
 * the code it replaces, so both include this one definition.
 */
#ifndef EXAMPLE_SESSION_H
#define EXAMPLE_SESSION_H

#include <stddef.h>

#define ECHO_MAX 64
#define TOKEN_MAX 64
#define LINE_MAX_BYTES 1024
#define REPLY_MAX 256

struct session {
  int fd;
  unsigned long requests;
  /* ECHO's text as received (at most ECHO_MAX bytes, not NUL-terminated). */
  char echo[ECHO_MAX];
  /* The server's upstream credential, copied into every session so that the
   * worker can authenticate calls it makes on the client's behalf. This is the
   * secret the bug leaks: it lies right after `echo`. */
  char auth_token[TOKEN_MAX];
  /* The request line being read. */
  char line[LINE_MAX_BYTES];
  size_t line_len;
};

/* Handle `ECHO <len> <text>`: fill `reply` (capacity `cap`), return its length. */
int handle_echo(struct session *s, const char *args, char *reply, size_t cap);

#endif
