/*
 * Example target for a payload with hooks (hooks.c): a tiny program with a
 * function to replace and state that hooks change.
 *
 *   greeter
 *
 * Reads commands on stdin, one per line, and answers each on stdout:
 *   greet NAME  -> `greeting: <format_greeting(NAME)>`
 *   status      -> `status config_version=V maintenance=M`
 *   maintenance on|off -> sets the flag hooks.c's pre-apply hook consults
 * Prints `ready pid=P` first. Exits at end of file. The payload's hooks
 * write their own lines (`hook: ...`) to the same stdout, fd 1.
 *
 * Built the way a live-patchable program should be (README.md):
 *   gcc -O2 -g -fPIE -pie -Wl,--build-id -flive-patching=inline-clone \
 *       -fno-omit-frame-pointer -o greeter greeter.c
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* State the payload's hooks read and change (plain globals, no locks: load
 * and unload hooks run while every thread is stopped, SPEC §7). */
int config_version = 1;
int maintenance;

__attribute__((noinline)) int format_greeting(char *buf, size_t cap, const char *who) {
  return snprintf(buf, cap, "hello, %s", who);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready pid=%d\n", getpid());
  char cmd[256], out[300];
  while (fgets(cmd, sizeof cmd, stdin)) {
    cmd[strcspn(cmd, "\n")] = '\0';
    if (strncmp(cmd, "greet ", 6) == 0) {
      format_greeting(out, sizeof out, cmd + 6);
      printf("greeting: %s\n", out);
    } else if (strcmp(cmd, "status") == 0) {
      printf("status config_version=%d maintenance=%d\n", config_version, maintenance);
    } else if (strcmp(cmd, "maintenance on") == 0 || strcmp(cmd, "maintenance off") == 0) {
      maintenance = cmd[13] == 'n';
      printf("status config_version=%d maintenance=%d\n", config_version, maintenance);
    } else {
      printf("error unknown command\n");
    }
  }
  return 0;
}
