/*
 * Example target for an xsplice NOP entry: a worker that a debug build left
 * with a breakpoint in its hot path.
 *
 *   worker
 *
 * Reads commands on stdin, one per line, and answers each on stdout:
 *   work   -> process one item: `item N result=R traps=T`
 *   status -> `status items=N traps=T`
 * Prints `ready pid=P` first. Exits at end of file.
 *
 * debug_break() is a developer's `int3`, kept in the release build by
 * mistake. The debug build's SIGTRAP handler turns each trap into a log line
 * (`debug trap #T`), so the program survives, but every item costs a signal
 * round trip through the kernel and a line in the log; without the handler
 * the first item would kill the process. nop.c removes the trap live: one
 * XSPLICE_NOP entry overwrites the `int3` with a NOP, leaving the `ret`.
 *
 * Built the way a live-patchable program should be (README.md):
 *   gcc -O2 -g -fPIE -pie -Wl,--build-id -flive-patching=inline-clone \
 *       -fno-omit-frame-pointer -o worker worker.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t traps;

static void on_trap(int sig) {
  (void)sig;
  traps++;
  char line[64];
  int n = snprintf(line, sizeof line, "debug trap #%d\n", (int)traps);
  if (n > 0) (void)!write(1, line, (size_t)n);
}

/*
 * The leftover breakpoint. `naked`: the function is exactly `int3; ret`, with
 * no frame set-up around it, so a 1-byte NOP at its first byte leaves a
 * function that just returns.
 */
__attribute__((naked, noinline)) void debug_break(void) {
  __asm__("int3\n\tret\n");
}

__attribute__((noinline)) long process_item(long n) {
  debug_break();
  long r = 0;
  for (long i = 1; i <= n % 1000 + 1; i++) r += i * i;
  return r;
}

int main(void) {
  struct sigaction sa = {.sa_handler = on_trap};
  sigaction(SIGTRAP, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready pid=%d\n", getpid());
  char cmd[128];
  long items = 0;
  while (fgets(cmd, sizeof cmd, stdin)) {
    if (strncmp(cmd, "work", 4) == 0) {
      long r = process_item(++items);
      printf("item %ld result=%ld traps=%d\n", items, r, (int)traps);
    } else if (strncmp(cmd, "status", 6) == 0) {
      printf("status items=%ld traps=%d\n", items, (int)traps);
    } else {
      printf("error unknown command\n");
    }
  }
  return 0;
}
