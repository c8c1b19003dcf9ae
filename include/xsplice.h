/*
 * xsplice.h: write an xsplice payload by hand, in C (SPEC §1, §7, §11).
 *
 * A payload source includes this header, defines replacement functions and
 * declares, with the macros below, what they replace. `xsplice build` compiles
 * it (`-O2 -fPIC -ffunction-sections -fdata-sections`, this directory on the
 * include path), fills in what only the target knows (old_addr, old_size,
 * new_size), adds the build-id notes and links the payload.
 *
 *   #include <xsplice.h>
 *   static int fixed_parse(const char *s) { ... }
 *   XSPLICE_REPLACE(parse_header, fixed_parse);
 *   XSPLICE_NOP(debug_trap, 5);
 *   XSPLICE_METADATA("cve=CVE-2026-0001");
 *
 * Every entry the macros emit is `used` (kept by the compiler even when
 * nothing refers to it), lives in a section named explicitly (so
 * -fdata-sections does not rename it and `ld -r` concatenates the entries of
 * several files into one array), and is 8-byte aligned (so that array has no
 * holes). Works with gcc -std=gnu11 and later, and with g++ (C++11 and later).
 */
#ifndef XSPLICE_H
#define XSPLICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define XSPLICE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define XSPLICE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/*
 * One patched function (SPEC §1): 64 bytes, the seed's field order, padding
 * to a cache line. `xsplice build` fills new_size, old_addr and old_size by
 * file offset; name and new_addr are relocations the loader resolves.
 */
struct xsplice_patch_func {
  unsigned long new_addr; /* 0:  replacement; 0 = NOP out new_size bytes at old_addr */
  unsigned long new_size; /* 8:  size of the replacement (or bytes to NOP) */
  unsigned long old_addr; /* 16: 0 = look `name` up at load; else link-time address in the target */
  unsigned long old_size; /* 24: size of the old function; must not be 0 */
  const char *name;       /* 32: symbol name of the old function ("file.c#sym" for a static) */
  uint8_t pad[24];        /* 40: zero in the file; the loader may use it */
};

XSPLICE_STATIC_ASSERT(sizeof(struct xsplice_patch_func) == 64, "xsplice_patch_func is 64 bytes");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, new_addr) == 0, "new_addr at 0");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, new_size) == 8, "new_size at 8");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, old_addr) == 16, "old_addr at 16");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, old_size) == 24, "old_size at 24");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, name) == 32, "name at 32");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_patch_func, pad) == 40, "pad at 40");

/*
 * One entry of `.xsplice.symbols`, written by `xsplice build` (SPEC §1): the
 * link-time address in the target object of a symbol the payload refers to,
 * so that the payload also loads into a stripped copy of the target with the
 * same build-id. `name` is a relocation to the symbol's name
 * ("file.c#sym" for a static).
 */
struct xsplice_symbol {
  unsigned long addr; /* 0: st_value in the target object (before the load bias) */
  const char *name;   /* 8: the undefined symbol of the payload it resolves */
};

XSPLICE_STATIC_ASSERT(sizeof(struct xsplice_symbol) == 16, "xsplice_symbol is 16 bytes");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_symbol, addr) == 0, "addr at 0");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_symbol, name) == 8, "name at 8");

/*
 * What the pre-, post- and action hooks receive (SPEC §7), in the target
 * process's memory, owned by xsplice: hooks read it and must not keep the
 * pointer after they return. 64 bytes, every field 8 bytes, so the layout is
 * the same for every compiler and the loader writes it without a C compiler.
 */
struct xsplice_payload {
  const char *name;                  /* 0:  the payload's name as uploaded, NUL-terminated */
  long rc;                           /* 8:  0 before the action; for postapply/postrevert the
                                        outcome: 0 or a negative errno (SPEC §5 rc) */
  struct xsplice_patch_func *funcs;  /* 16: the payload's entries, relocated (old_addr with the
                                        load bias applied) */
  unsigned long count;               /* 24: number of entries in funcs */
  unsigned long reserved[4];         /* 32: zero; room to grow without moving fields */
};

XSPLICE_STATIC_ASSERT(sizeof(struct xsplice_payload) == 64, "xsplice_payload is 64 bytes");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_payload, name) == 0, "name at 0");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_payload, rc) == 8, "rc at 8");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_payload, funcs) == 16, "funcs at 16");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_payload, count) == 24, "count at 24");
XSPLICE_STATIC_ASSERT(offsetof(struct xsplice_payload, reserved) == 32, "reserved at 32");

/*
 * Hook signatures (SPEC §7; the decision is recorded in docs/payload-format.md):
 * - load/unload run while every thread is stopped: no argument, no result.
 * - preapply/prerevert: a non-zero return vetoes the action and becomes its rc.
 * - postapply/postrevert: run after the action; payload->rc is its outcome;
 *   nothing to return.
 * - apply/revert replace the built-in patching step: 0 on success, else a
 *   negative errno that fails the action.
 */
typedef void (*xsplice_load_hook_t)(void);
typedef void (*xsplice_unload_hook_t)(void);
typedef int (*xsplice_pre_hook_t)(struct xsplice_payload *);
typedef void (*xsplice_post_hook_t)(struct xsplice_payload *);
typedef int (*xsplice_action_hook_t)(struct xsplice_payload *);

#define XSPLICE_CAT_(a, b) a##b
#define XSPLICE_CAT(a, b) XSPLICE_CAT_(a, b)
#define XSPLICE_UNIQUE(prefix) XSPLICE_CAT(prefix, __COUNTER__)

/* Keep the variable, put it in `sec`, align it to a pointer. */
#define XSPLICE_ENTRY(sec) __attribute__((used, section(sec), aligned(8)))

/*
 * Reject a hook of the wrong type at compile time. Plain C only warns about
 * an incompatible pointer assignment; C++ already makes it an error.
 */
#ifdef __cplusplus
#define XSPLICE_CHECK_HOOK(fn, type)
#else
#define XSPLICE_CHECK_HOOK(fn, type)                                                            \
  XSPLICE_STATIC_ASSERT(__builtin_types_compatible_p(__typeof__(&(fn)), type),                 \
                        #fn " does not have the signature of " #type)
#endif

/*
 * Replace the target's function `old` (an identifier, looked up by name in
 * the target; a static by its bare name when that is unique) with `repl`.
 * `xsplice build` fills old_addr, old_size and new_size.
 */
#define XSPLICE_REPLACE(old, repl) XSPLICE_REPLACE_NAME(#old, repl)

/*
 * Like XSPLICE_REPLACE, with the old function's name as a string: use it for
 * a static that is not unique, "file.c#name", or a clone ("f.constprop.0").
 */
#define XSPLICE_REPLACE_NAME(oldname, repl)                                                      \
  static struct xsplice_patch_func XSPLICE_ENTRY(".xsplice.funcs")                              \
      XSPLICE_UNIQUE(xsplice_func_) = {(unsigned long)&(repl), 0, 0, 0, oldname, {0}}

/* Overwrite the first `bytes` bytes of the target's function `old` with NOPs (at most 31). */
#define XSPLICE_NOP(old, bytes) XSPLICE_NOP_NAME(#old, bytes)

/* Like XSPLICE_NOP, with the old function's name as a string. */
#define XSPLICE_NOP_NAME(oldname, bytes)                                                        \
  static struct xsplice_patch_func XSPLICE_ENTRY(".xsplice.funcs")                              \
      XSPLICE_UNIQUE(xsplice_func_) = {0, (bytes), 0, 0, oldname, {0}}

/* Hooks that may appear any number of times: arrays of 8-byte pointers (SPEC §1). */
#define XSPLICE_LOAD_HOOK(fn)                                                                   \
  XSPLICE_CHECK_HOOK(fn, xsplice_load_hook_t);                                                  \
  static xsplice_load_hook_t XSPLICE_ENTRY(".xsplice.hooks.load") XSPLICE_UNIQUE(xsplice_load_) = (fn)
#define XSPLICE_UNLOAD_HOOK(fn)                                                                 \
  XSPLICE_CHECK_HOOK(fn, xsplice_unload_hook_t);                                                \
  static xsplice_unload_hook_t XSPLICE_ENTRY(".xsplice.hooks.unload")                           \
      XSPLICE_UNIQUE(xsplice_unload_) = (fn)

/*
 * Hooks of which a payload has exactly one: the variable's name is fixed, so
 * a second one in the same file fails to compile; one in each of two files
 * makes the section 16 bytes, which `xsplice build` rejects.
 */
#define XSPLICE_SINGLE_HOOK_(kind, type, fn)                                                    \
  XSPLICE_CHECK_HOOK(fn, type);                                                                 \
  static type XSPLICE_ENTRY(".xsplice.hooks." #kind) xsplice_hook_##kind = (fn)
#define XSPLICE_PREAPPLY_HOOK(fn) XSPLICE_SINGLE_HOOK_(preapply, xsplice_pre_hook_t, fn)
#define XSPLICE_POSTAPPLY_HOOK(fn) XSPLICE_SINGLE_HOOK_(postapply, xsplice_post_hook_t, fn)
#define XSPLICE_PREREVERT_HOOK(fn) XSPLICE_SINGLE_HOOK_(prerevert, xsplice_pre_hook_t, fn)
#define XSPLICE_POSTREVERT_HOOK(fn) XSPLICE_SINGLE_HOOK_(postrevert, xsplice_post_hook_t, fn)
#define XSPLICE_APPLY_HOOK(fn) XSPLICE_SINGLE_HOOK_(apply, xsplice_action_hook_t, fn)
#define XSPLICE_REVERT_HOOK(fn) XSPLICE_SINGLE_HOOK_(revert, xsplice_action_hook_t, fn)

/* One `key=value` string of metadata, NUL-terminated, in `.modinfo` (SPEC §1). */
#define XSPLICE_METADATA(kv)                                                                    \
  static const char __attribute__((used, section(".modinfo"), aligned(1)))                     \
      XSPLICE_UNIQUE(xsplice_modinfo_)[] = kv

/*
 * Refer to a static symbol of the target: the declaration's assembler name
 * becomes "file#name", which the loader and `xsplice build` resolve among the
 * locals that follow the target's STT_FILE symbol `file` (SPEC §2, §11).
 *   extern int hits XSPLICE_SYMBOL("counter.c", hits);
 *   extern int helper(int) XSPLICE_SYMBOL("util.c", helper);
 */
#define XSPLICE_SYMBOL(file, name) __asm__("\"" file "#" #name "\"")

#ifdef __cplusplus
}
#endif

#endif /* XSPLICE_H */
