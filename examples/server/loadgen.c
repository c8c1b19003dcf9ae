/*
 * Load generator for the example server: keeps several connections busy with
 * normal requests and counts what came back right, so that a live patch can
 * be shown not to drop or corrupt a single request.
 *
 *   loadgen --port N [--connections C] [--per-connection R] [--pause-us U]
 *
 * Each of C threads connects, sends R requests one after the other (ECHO with
 * a text of its own, every tenth a PING), checks each reply byte for byte,
 * then reconnects; U microseconds between requests keep it from taking
 * whole cores. Every 200 ms it prints `progress ok=N failed=M`. On SIGINT,
 * SIGTERM or end of file on stdin it stops, and prints
 * `done ok=N failed=M p50_us=.. p99_us=.. max_us=..` (latencies of the
 * successful requests, from send to the last byte of the reply) and, if any
 * request failed, `first_error=...`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int port, per_connection = 50, pause_us = 1000;
static atomic_int stop;
static atomic_ulong ok_count, failed_count;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[200];

struct worker {
  pthread_t thread;
  int id;
  uint32_t *lat; /* microseconds, one per successful request */
  size_t n, cap;
};

static void fail(const char *what, int id, unsigned long seq) {
  atomic_fetch_add(&failed_count, 1);
  pthread_mutex_lock(&error_lock);
  if (!first_error[0]) snprintf(first_error, sizeof first_error, "worker %d request %lu: %s", id, seq, what);
  pthread_mutex_unlock(&error_lock);
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 5}; /* a hung server shows as failures, not as a hung generator */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (errno == EINTR) continue;
    close(fd);
    return -1;
  }
  return fd;
}

/* Receive exactly `want` bytes. */
static int recv_exact(int fd, char *buf, size_t want) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = recv(fd, buf + got, want - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

/* One request and its reply; 0 if the reply is exactly `expect`. */
static int exchange(int fd, const char *req, const char *expect, const char **why) {
  size_t rlen = strlen(req);
  if (send(fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) return *why = "send failed", -1;
  char buf[512];
  size_t elen = strlen(expect);
  if (recv_exact(fd, buf, elen) < 0) return *why = "connection closed or timed out", -1;
  if (memcmp(buf, expect, elen) != 0) return *why = "wrong reply", -1;
  return 0;
}

static void *run(void *arg) {
  struct worker *w = arg;
  unsigned long seq = 0;
  while (!atomic_load(&stop)) {
    int fd = connect_server();
    if (fd < 0) {
      fail("connect failed", w->id, seq++);
      usleep(10000);
      continue;
    }
    for (int i = 0; i < per_connection && !atomic_load(&stop); i++, seq++) {
      char req[128], expect[160];
      if (seq % 10 == 9) {
        snprintf(req, sizeof req, "PING\n");
        snprintf(expect, sizeof expect, "PONG\n");
      } else {
        char text[64];
        int tl = snprintf(text, sizeof text, "w%d-%lu", w->id, seq);
        snprintf(req, sizeof req, "ECHO %d %s\n", tl, text);
        snprintf(expect, sizeof expect, "OK %d\n%s", tl, text);
      }
      const char *why = NULL;
      uint64_t t0 = now_us();
      if (exchange(fd, req, expect, &why) < 0) {
        fail(why, w->id, seq);
        break;
      }
      uint64_t dt = now_us() - t0;
      if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
      }
      w->lat[w->n++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
      atomic_fetch_add(&ok_count, 1);
      if (pause_us) usleep((useconds_t)pause_us);
    }
    close(fd);
  }
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&stop, 1);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int connections = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--connections") == 0) connections = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--per-connection") == 0) per_connection = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--pause-us") == 0) pause_us = atoi(argv[i + 1]);
  }
  if (port <= 0 || connections <= 0 || per_connection <= 0) {
    fprintf(stderr, "usage: %s --port N [--connections C] [--per-connection R] [--pause-us U]\n", argv[0]);
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  struct worker *ws = calloc((size_t)connections, sizeof *ws);
  for (int i = 0; i < connections; i++) {
    ws[i].id = i;
    pthread_create(&ws[i].thread, NULL, run, &ws[i]);
  }
  printf("started connections=%d\n", connections);
  fflush(stdout);
  while (!atomic_load(&stop)) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 200) > 0) {
      char buf[64];
      if (read(0, buf, sizeof buf) <= 0) atomic_store(&stop, 1);
    }
    printf("progress ok=%lu failed=%lu\n", atomic_load(&ok_count), atomic_load(&failed_count));
    fflush(stdout);
  }

  size_t total = 0;
  for (int i = 0; i < connections; i++) {
    pthread_join(ws[i].thread, NULL);
    total += ws[i].n;
  }
  uint32_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < connections; i++) {
    if (ws[i].n) memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
    k += ws[i].n;
  }
  qsort(all, total, sizeof *all, cmp_u32);
  uint32_t p50 = total ? all[total / 2] : 0, p99 = total ? all[total * 99 / 100] : 0;
  uint32_t max = total ? all[total - 1] : 0;
  printf("done ok=%lu failed=%lu p50_us=%u p99_us=%u max_us=%u\n", atomic_load(&ok_count),
         atomic_load(&failed_count), p50, p99, max);
  if (first_error[0]) printf("first_error=%s\n", first_error);
  fflush(stdout);
  return 0;
}
