/*
 * The fix for server.c's handle_echo, as an xsplice payload (SPEC §11):
 *
 *   xsplice build examples/server/fix.c --target server -o fix.xsplice
 *   xsplice load PID fix.xsplice
 *
 * The replacement is the same parser with the missing check: a client may
 * only ask for as many bytes as it sent. It is built against the same
 * `struct session` (session.h) as the function it replaces, and calls the C
 * library as the old one does; the loader resolves those calls against the
 * libraries mapped in the running server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xsplice.h>

#include "session.h"

static int handle_echo_fixed(struct session *s, const char *args, char *reply, size_t cap) {
  char *end;
  unsigned long len = strtoul(args, &end, 10);
  if (end == args || *end != ' ') return snprintf(reply, cap, "ERR bad length\n");
  const char *text = end + 1;
  size_t have = strlen(text);
  if (have > sizeof s->echo) have = sizeof s->echo;
  memcpy(s->echo, text, have);
  /* The check the old code lacked: never echo more than was received. */
  if (len > have) return snprintf(reply, cap, "ERR length %lu exceeds the %zu bytes sent\n", len, have);
  int head = snprintf(reply, cap, "OK %lu\n", len);
  if (len > cap - (size_t)head) return snprintf(reply, cap, "ERR too long\n");
  memcpy(reply + head, s->echo, len);
  return head + (int)len;
}

XSPLICE_REPLACE(handle_echo, handle_echo_fixed);
XSPLICE_METADATA("cve=CVE-2026-0001");
XSPLICE_METADATA("summary=ECHO: bound the echoed length by the bytes received");
