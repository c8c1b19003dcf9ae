/*
 * Example target for xsplice: a small multi-threaded TCP service with a
 * Heartbleed-style bug in its request parser, to be fixed live by fix.c.
 *
 *   server [--port N] [--exit-on-eof]
 *
 * Listens on 127.0.0.1 (port 0 = any free port), prints
 * `ready pid=P port=N` once it accepts connections, and serves each
 * connection on a thread of its own. The secret it keeps comes from the
 * environment variable SERVER_SECRET (else a fixed string). With
 * --exit-on-eof it exits when its stdin reaches end of file, so that it
 * cannot outlive the program that started it.
 *
 * Protocol: one request per line, one reply per request, many requests per
 * connection.
 *   PING               -> "PONG\n"
 *   ECHO <len> <text>  -> "OK <len>\n" then exactly <len> bytes: <text> echoed
 *   STATS              -> "OK served=<requests served so far>\n"
 *   anything else      -> "ERR unknown request\n"
 *
 * The bug (in handle_echo): <len> is checked against the size of the reply
 * buffer, not against the text the client sent, so `ECHO 200 hi` answers
 * with 200 bytes starting at the 2 bytes received: the rest of the echo
 * buffer and then the session's auth_token, the server's secret.
 *
 * Built the way a live-patchable service should be (see README.md, "Building
 * targets for live patching"):
 *   gcc -O2 -g -fPIE -pie -Wl,--build-id -flive-patching=inline-clone \
 *       -fno-omit-frame-pointer -pthread -o server server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"

static char server_secret[TOKEN_MAX];
static atomic_ulong served;

/*
 * The vulnerable parser. `noinline`: -flive-patching=inline-clone still lets
 * gcc inline a function into its callers, and a fix to an inlined function
 * must then replace every caller too. Keeping the request handlers out of
 * line keeps each one a patch unit of its own, so the fix replaces just this.
 */
__attribute__((noinline)) int handle_echo(struct session *s, const char *args, char *reply, size_t cap) {
  char *end;
  unsigned long len = strtoul(args, &end, 10);
  if (end == args || *end != ' ') return snprintf(reply, cap, "ERR bad length\n");
  const char *text = end + 1;
  size_t have = strlen(text);
  if (have > sizeof s->echo) have = sizeof s->echo;
  memcpy(s->echo, text, have);
  int head = snprintf(reply, cap, "OK %lu\n", len);
  /* BUG: checks that the reply fits, but not that the client sent `len` bytes. */
  if (len > cap - (size_t)head) return snprintf(reply, cap, "ERR too long\n");
  memcpy(reply + head, s->echo, len);
  return head + (int)len;
}

__attribute__((noinline)) static int handle_request(struct session *s, char *line, char *reply, size_t cap) {
  s->requests++;
  atomic_fetch_add(&served, 1);
  if (strcmp(line, "PING") == 0) return snprintf(reply, cap, "PONG\n");
  if (strncmp(line, "ECHO ", 5) == 0) return handle_echo(s, line + 5, reply, cap);
  if (strcmp(line, "STATS") == 0) return snprintf(reply, cap, "OK served=%lu\n", atomic_load(&served));
  return snprintf(reply, cap, "ERR unknown request\n");
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Read until a full line is buffered; returns its length (without the '\n'), or -1 at EOF/error. */
static ssize_t read_line(struct session *s) {
  for (;;) {
    char *nl = memchr(s->line, '\n', s->line_len);
    if (nl) {
      *nl = '\0';
      if (nl > s->line && nl[-1] == '\r') nl[-1] = '\0';
      return nl - s->line;
    }
    if (s->line_len >= sizeof s->line - 1) return -1; /* line too long: drop the client */
    ssize_t n = recv(s->fd, s->line + s->line_len, sizeof s->line - 1 - s->line_len, 0);
    if (n < 0 && errno == EINTR) continue; /* a ptrace stop may interrupt the wait */
    if (n <= 0) return -1;
    s->line_len += (size_t)n;
  }
}

static void *serve_connection(void *arg) {
  struct session *s = arg;
  char reply[REPLY_MAX];
  for (;;) {
    ssize_t len = read_line(s);
    if (len < 0) break;
    int n = handle_request(s, s->line, reply, sizeof reply);
    if (n < 0) break;
    if ((size_t)n >= sizeof reply) n = sizeof reply - 1; /* snprintf truncated */
    /* Drop the line just handled, keep what followed it. */
    size_t used = (size_t)len + 1;
    memmove(s->line, s->line + used, s->line_len - used);
    s->line_len -= used;
    if (send_all(s->fd, reply, (size_t)n) < 0) break;
  }
  close(s->fd);
  free(s);
  return NULL;
}

static void *watch_stdin(void *arg) {
  (void)arg;
  char buf[256];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR)) _exit(0);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int port = 0, exit_on_eof = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--exit-on-eof") == 0) exit_on_eof = 1;
    else {
      fprintf(stderr, "usage: %s [--port N] [--exit-on-eof]\n", argv[0]);
      return 2;
    }
  }
  const char *secret = getenv("SERVER_SECRET");
  snprintf(server_secret, sizeof server_secret, "%s", secret ? secret : "tok-3f9a0c1d-do-not-leak");

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
    perror("server: listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &alen);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  if (exit_on_eof) pthread_create(&tid, &attr, watch_stdin, NULL);

  printf("ready pid=%d port=%d\n", getpid(), ntohs(addr.sin_port));
  fflush(stdout);

  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("server: accept");
      return 1;
    }
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
      close(fd);
      continue;
    }
    s->fd = fd;
    memcpy(s->auth_token, server_secret, sizeof s->auth_token);
    if (pthread_create(&tid, &attr, serve_connection, s) != 0) {
      close(fd);
      free(s);
    }
  }
}
