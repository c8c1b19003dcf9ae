/**
 * Linux facts of x86-64 that the code driving a live process needs: system
 * call numbers (<asm/unistd_64.h>) and the `mmap` flags whose values differ
 * between architectures.
 */

/** x86-64 system call numbers used by xsplice. */
export const SYS = {
  close: 3,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  rt_sigprocmask: 14,
  select: 23,
  getpid: 39,
  prctl: 157,
  ftruncate: 77,
  gettid: 186,
  restart_syscall: 219,
  memfd_create: 319,
} as const;

/** `MAP_*` flags (x86-64). */
export const MAP = {
  SHARED: 0x01,
  PRIVATE: 0x02,
  FIXED: 0x10,
  ANONYMOUS: 0x20,
  /** Fail with EEXIST instead of replacing an existing mapping (Linux ≥ 4.17). */
  FIXED_NOREPLACE: 0x100000,
} as const;
