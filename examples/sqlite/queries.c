/*
 * Target for the SQLite example (README.md beside this file): a
 * multi-threaded program linked with the SQLite amalgamation that runs
 * queries whose results it knows, and checks every one.
 *
 *   queries [THREADS]        (default 3 threads)
 *
 * Each thread opens its own in-memory database, fills a table
 * t(a INTEGER, b TEXT, c REAL) with the rows a = 1..ROWS, b = 'row' || a,
 * c = a / 4.0, and runs a fixed list of queries in a loop (aggregates, a
 * GROUP BY, an index lookup, string and math functions, abs() among them),
 * comparing each result with the value computed here in C. A wrong result,
 * a failed statement or an unexpected row count is a failed query.
 *
 * Commands on stdin, one per line, each answered with one line on stdout:
 *   counts -> `counts ok=N failed=M`
 *   probe  -> `probe error=MSG` or `probe real=V`: what abs(-9223372036854775808)
 *             gives (SQLite 3.53: "integer overflow"; the patch in
 *             abs.patch makes it the exact REAL 9223372036854775808)
 * Prints `ready pid=P threads=T sqlite=V` first; exits at end of file. The
 * first few failed queries are described on stderr.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqlite3.h"

#define ROWS 1000
#define MAX_THREADS 16

static atomic_ulong ok_count, failed_count;
static atomic_int failures_reported;

static void report_failure(int thread, const char *sql, const char *why) {
  atomic_fetch_add(&failed_count, 1);
  if (atomic_fetch_add(&failures_reported, 1) < 5) fprintf(stderr, "failed: thread %d: %s: %s\n", thread, sql, why);
}

static sqlite3 *open_filled(void) {
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return NULL;
  char sql[256];
  snprintf(sql, sizeof sql,
           "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);"
           "CREATE INDEX tb ON t(b);"
           "WITH RECURSIVE n(a) AS (SELECT 1 UNION ALL SELECT a + 1 FROM n WHERE a < %d)"
           " INSERT INTO t SELECT a, 'row' || a, a / 4.0 FROM n;",
           ROWS);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* One query and its one-row, one-column answer, as text. */
struct check {
  const char *sql;
  char want[64];
};

static struct check checks[8];
static int nchecks;

/* The answers, computed in C from the same rows. */
static void make_checks(void) {
  int64_t sum = 0, sumabs = 0, odd = 0, evens = 0;
  double sumc = 0;
  for (int a = 1; a <= ROWS; a++) {
    sum += a;
    sumabs += a - 500 < 0 ? 500 - a : a - 500;
    if (a % 2) odd += a;
    if (a % 2 == 0 && a > 900) evens++;
    sumc += a / 4.0;
  }
  struct check c[] = {
      {"SELECT count(*) FROM t", ""},
      {"SELECT sum(a) FROM t", ""},
      {"SELECT sum(abs(a - 500)) FROM t", ""},
      {"SELECT sum(a) FROM t WHERE a % 2 = 1", ""},
      {"SELECT count(*) FROM (SELECT a % 2 AS k, count(*) FROM t WHERE a > 900 GROUP BY k) WHERE k = 0", ""},
      {"SELECT a FROM t WHERE b = 'row777'", "777"},
      {"SELECT printf('%.2f', sum(c)) FROM t", ""},
      {"SELECT upper(b) || '/' || length(b) || '/' || abs(-a) FROM t WHERE a = 42", "ROW42/5/42"},
  };
  snprintf(c[0].want, sizeof c[0].want, "%d", ROWS);
  snprintf(c[1].want, sizeof c[1].want, "%" PRId64, sum);
  snprintf(c[2].want, sizeof c[2].want, "%" PRId64, sumabs);
  snprintf(c[3].want, sizeof c[3].want, "%" PRId64, odd);
  snprintf(c[4].want, sizeof c[4].want, "%d", evens > 0 ? 1 : 0);
  snprintf(c[6].want, sizeof c[6].want, "%.2f", sumc);
  nchecks = (int)(sizeof c / sizeof c[0]);
  memcpy(checks, c, sizeof c);
}

static void run_check(int thread, sqlite3 *db, const struct check *c) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, c->sql, -1, &st, NULL) != SQLITE_OK) return report_failure(thread, c->sql, sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    report_failure(thread, c->sql, sqlite3_errmsg(db));
  } else {
    const char *got = (const char *)sqlite3_column_text(st, 0);
    if (!got || strcmp(got, c->want) != 0) {
      char why[160];
      snprintf(why, sizeof why, "got %s, want %s", got ? got : "NULL", c->want);
      report_failure(thread, c->sql, why);
    } else if (sqlite3_step(st) != SQLITE_DONE) {
      report_failure(thread, c->sql, "more than one row");
    } else {
      atomic_fetch_add(&ok_count, 1);
    }
  }
  sqlite3_finalize(st);
}

static void *worker(void *arg) {
  int thread = (int)(intptr_t)arg;
  sqlite3 *db = open_filled();
  if (!db) {
    report_failure(thread, "open", "cannot open and fill the database");
    return NULL;
  }
  /* A query arrives every ~0.1 ms per thread (a server waits for its clients). */
  const struct timespec pause = {0, 100 * 1000};
  for (unsigned n = (unsigned)thread;; n++) {
    run_check(thread, db, &checks[n % (unsigned)nchecks]);
    nanosleep(&pause, NULL);
  }
  return NULL;
}

static void probe(sqlite3 *db) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT abs(?1)", -1, &st, NULL) != SQLITE_OK) {
    printf("probe error=%s\n", sqlite3_errmsg(db));
    return;
  }
  sqlite3_bind_int64(st, 1, INT64_MIN);
  if (sqlite3_step(st) != SQLITE_ROW)
    printf("probe error=%s\n", sqlite3_errmsg(db));
  else if (sqlite3_column_type(st, 0) == SQLITE_FLOAT)
    printf("probe real=%.17g\n", sqlite3_column_double(st, 0));
  else
    printf("probe text=%s\n", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 3;
  if (threads < 1 || threads > MAX_THREADS) {
    fprintf(stderr, "usage: queries [THREADS 1..%d]\n", MAX_THREADS);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  make_checks();
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  for (int t = 0; t < threads; t++) {
    pthread_t tid;
    if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)t) != 0) return 1;
  }
  printf("ready pid=%d threads=%d sqlite=%s\n", getpid(), threads, sqlite3_libversion());
  char cmd[64];
  while (fgets(cmd, sizeof cmd, stdin)) {
    cmd[strcspn(cmd, "\n")] = '\0';
    if (strcmp(cmd, "counts") == 0)
      printf("counts ok=%lu failed=%lu\n", atomic_load(&ok_count), atomic_load(&failed_count));
    else if (strcmp(cmd, "probe") == 0)
      probe(db);
    else
      printf("error unknown command\n");
  }
  return 0;
}
