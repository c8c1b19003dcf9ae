/*
 * A payload with hooks (SPEC §7), for greeter.c: it replaces
 * format_greeting and uses every kind of hook a fix usually needs.
 *
 * - load / unload run while every thread of the target is stopped, right
 *   before patching and right after unpatching: they migrate state, here by
 *   moving config_version to 100 + its value and back. No locks, no stdio.
 * - preapply runs before the stop and may veto: it refuses while the target
 *   is in maintenance (the action then fails with -EBUSY as its rc; not
 *   -EAGAIN, which GET reserves for an action in progress, SPEC §5).
 * - postapply / prerevert / postrevert report what happened on the target's
 *   fd 1 with write(2), so the target's own output shows the sequence.
 *
 *   xsplice build examples/hooks/hooks.c --target greeter -o hooks.xsplice
 *   xsplice load PID hooks.xsplice
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xsplice.h>

extern int config_version;
extern int maintenance;

static int format_greeting_v2(char *buf, size_t cap, const char *who) {
  return snprintf(buf, cap, "hello, %s (config v%d)", who, config_version);
}

static void say(const char *what, struct xsplice_payload *p) {
  char line[160];
  int n = snprintf(line, sizeof line, "hook: %s %s rc=%ld funcs=%lu\n", what, p->name, p->rc, p->count);
  if (n > 0) (void)!write(1, line, (size_t)n);
}

static void on_load(void) {
  config_version += 100;
}

static void on_unload(void) {
  config_version -= 100;
}

static int pre_apply(struct xsplice_payload *p) {
  if (maintenance) {
    say("preapply refused (maintenance)", p);
    return -EBUSY;
  }
  say("preapply", p);
  return 0;
}

static void post_apply(struct xsplice_payload *p) {
  say("postapply", p);
}

static int pre_revert(struct xsplice_payload *p) {
  say("prerevert", p);
  return 0;
}

static void post_revert(struct xsplice_payload *p) {
  say("postrevert", p);
}

XSPLICE_REPLACE(format_greeting, format_greeting_v2);
XSPLICE_LOAD_HOOK(on_load);
XSPLICE_UNLOAD_HOOK(on_unload);
XSPLICE_PREAPPLY_HOOK(pre_apply);
XSPLICE_POSTAPPLY_HOOK(post_apply);
XSPLICE_PREREVERT_HOOK(pre_revert);
XSPLICE_POSTREVERT_HOOK(post_revert);
XSPLICE_METADATA("summary=greeting v2 with state migration hooks");
