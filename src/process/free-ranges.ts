/**
 * Where payload memory can go in a target process (SPEC §2 "layout"): a free,
 * page-aligned address range close enough to the target object that a rel32
 * (x86-64, ±2 GiB) or a branch (arm64, ±128 MiB) from any byte of the object
 * reaches any byte of the range, and back.
 *
 * This is a pure function over parsed maps. The range is free at the time the
 * maps were read; the caller maps it with `MAP_FIXED_NOREPLACE` so that a
 * thread mapping something in between makes the mmap fail instead of clobbering.
 */
import { readFileSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import type { Mapping } from "./maps.ts";

/** A half-open address range `[start, end)`. */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

/** Options of `findFreeRange`. */
export interface FreeRangeOptions {
  /** Largest distance between any byte of the object and any byte of the range. Default 2 GiB (rel32). */
  reach?: bigint;
  /** Alignment of the start, a power of two ≥ 4096. Default 4096. */
  align?: bigint;
  /** Lowest address that may be mapped (`vm.mmap_min_addr`). Default 64 KiB, the kernel's usual default. */
  minAddr?: bigint;
  /** One past the highest user address. Default 2^47 − 4096 (x86-64 4-level paging `TASK_SIZE`). */
  maxAddr?: bigint;
  /** Unmapped bytes left between the range and any neighbouring mapping. Default 64 KiB. */
  guard?: bigint;
  /**
   * Bytes kept free below `[stack]` and above `[heap]`, so the main stack and
   * `brk` can still grow. Default 8 MiB (the usual stack rlimit) and 64 MiB.
   * If nothing fits with these kept, the search runs again keeping only `guard`.
   */
  stackReserve?: bigint;
  heapReserve?: bigint;
}

/** 2 GiB: the reach of a signed 32-bit displacement. */
export const REL32_REACH = 1n << 31n;
/** The default end of user space on x86-64 with 4-level page tables. */
export const USER_ADDR_END = (1n << 47n) - 4096n;

/**
 * Find a free range of `size` bytes (rounded up to whole pages) for a target
 * object occupying `near` (its whole address range, or a single address). The
 * result lies, with every byte, in `[near.end − reach, near.start + reach)`,
 * so that a signed displacement of `reach` bits reaches both ways; among the
 * candidates the closest to the object wins. No room gives `ENOMEM` (SPEC §2).
 */
export function findFreeRange(
  maps: readonly Mapping[],
  near: bigint | AddressRange,
  size: bigint | number,
  options: FreeRangeOptions = {},
): AddressRange {
  const target: AddressRange = typeof near === "bigint" ? { start: near, end: near + 1n } : near;
  const want = BigInt(size);
  const align = options.align ?? 4096n;
  if (want <= 0n) throw new XspliceError("EINVAL", `free range of ${want} bytes requested`);
  if (align < 4096n || (align & (align - 1n)) !== 0n)
    throw new XspliceError("EINVAL", `alignment 0x${align.toString(16)} is not a power of two ≥ 4096`);
  const len = roundUp(want, 4096n);
  const strict = search(maps, target, len, align, options, true);
  const found = strict ?? search(maps, target, len, align, options, false);
  if (found) return found;
  const reach = options.reach ?? REL32_REACH;
  throw new XspliceError(
    "ENOMEM",
    `no free 0x${len.toString(16)} bytes within ±0x${reach.toString(16)} of ${hex(target.start)}-${hex(target.end)}`,
    { address: target.start },
  );
}

function search(
  maps: readonly Mapping[],
  target: AddressRange,
  len: bigint,
  align: bigint,
  o: FreeRangeOptions,
  reserves: boolean,
): AddressRange | undefined {
  const reach = o.reach ?? REL32_REACH;
  const minAddr = roundUp(o.minAddr ?? 0x10000n, 4096n);
  const maxAddr = o.maxAddr ?? USER_ADDR_END;
  const guard = o.guard ?? 0x10000n;
  const stackReserve = reserves ? (o.stackReserve ?? 8n << 20n) : 0n;
  const heapReserve = reserves ? (o.heapReserve ?? 64n << 20n) : 0n;
  // Every byte b of the range must satisfy target.end − reach ≤ b and b < target.start + reach.
  const lo = max(minAddr, target.end - reach);
  const hi = min(maxAddr, target.start + reach);
  if (hi <= lo) return undefined;

  // Occupied intervals, each widened by the space its neighbour must keep free.
  const busy: AddressRange[] = maps
    .filter((m) => m.start < maxAddr)
    .map((m) => ({
      start: m.start - guard - (m.path === "[stack]" ? stackReserve : 0n),
      end: m.end + guard + (m.path === "[heap]" ? heapReserve : 0n),
    }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));

  let best: AddressRange | undefined;
  let bestDistance = 0n;
  let cursor = lo;
  const consider = (gapStart: bigint, gapEnd: bigint) => {
    const s = max(gapStart, lo);
    const e = min(gapEnd, hi);
    if (e - s < len) return;
    // Place at the end of the gap nearest to the object.
    let start: bigint;
    if (e <= target.start) start = alignDown(e - len, align);
    else if (s >= target.end) start = roundUp(s, align);
    else start = roundUp(s, align); // a gap overlapping the object's span (holes inside it): lowest fits
    if (start < s || start + len > e) return;
    const end = start + len;
    const distance = end <= target.start ? target.start - end : start >= target.end ? start - target.end : 0n;
    if (!best || distance < bestDistance) {
      best = { start, end };
      bestDistance = distance;
    }
  };
  for (const b of busy) {
    if (b.start > cursor) consider(cursor, b.start);
    if (b.end > cursor) cursor = b.end;
    if (cursor >= hi) break;
  }
  if (cursor < hi) consider(cursor, hi);
  return best;
}

/** `vm.mmap_min_addr` of this machine (the lowest address a process may map), 64 KiB if unreadable. */
export function mmapMinAddr(): bigint {
  try {
    return BigInt(readFileSync("/proc/sys/vm/mmap_min_addr", "utf8").trim());
  } catch {
    return 0x10000n;
  }
}

function roundUp(v: bigint, a: bigint): bigint {
  return (v + a - 1n) & ~(a - 1n);
}
function alignDown(v: bigint, a: bigint): bigint {
  return v & ~(a - 1n);
}
function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
