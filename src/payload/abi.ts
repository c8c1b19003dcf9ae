/**
 * The binary layouts of the xsplice payload ABI (SPEC §1, §7, §11;
 * include/xsplice.h), in one table: field offsets and sizes of every
 * structure a payload file or a hook exchanges with xsplice. The reader, the
 * builders and the loader all take them from here, so a layout is written
 * once (include/xsplice.h's `_Static_assert`s check the C side against the
 * same numbers, test/build/header.test.ts).
 */

/** `struct xsplice_patch_func`, the native 64-byte entry (SPEC §1). */
export const XSPLICE_FUNC = {
  size: 64,
  newAddr: 0,
  newSize: 8,
  oldAddr: 16,
  oldSize: 24,
  name: 32,
  /** 24 bytes of padding the loader may use; zero in a file. */
  pad: 40,
} as const;

/** Xen's `struct livepatch_func` version 2, 104 bytes (SPEC §1 compatibility). */
export const LIVEPATCH_FUNC = {
  size: 104,
  name: 0,
  newAddr: 8,
  oldAddr: 16,
  /** u32 */
  newSize: 24,
  /** u32 */
  oldSize: 28,
  /** u8, must be 2 */
  version: 32,
  /** opaque, applied and padding: the hypervisor's scratch space, zero in a file. */
  opaque: 33,
  /** u8: bit 0 enabled, bits 1–5 length, bits 6–7 reserved. */
  expectCtl: 72,
  /** Up to 31 expected bytes. */
  expectBytes: 73,
} as const;

/** `struct xsplice_symbol { unsigned long addr; const char *name; }` of `.xsplice.symbols`. */
export const XSPLICE_SYMBOL = { size: 16, addr: 0, name: 8 } as const;

/**
 * `struct xsplice_payload`, what hooks receive (SPEC §7): the loader builds it
 * in the payload's RW region, the payload's name string right after it.
 */
export const XSPLICE_PAYLOAD = { size: 64, name: 0, rc: 8, funcs: 16, count: 24 } as const;

/** Where `old_addr` is in both entry layouts: the loader fills it in either (SPEC §1 `old_addr` = 0). */
export const OLD_ADDR_FIELD = XSPLICE_FUNC.oldAddr;
