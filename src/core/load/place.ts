/**
 * Where a payload's three regions go in the target (SPEC §2 layout): one free
 * range for all of them, contiguous, so they reach each other, and within
 * ±2 GiB of every byte of the target object, so every rel32 reference to it
 * fits without a stub.
 */

import { XspliceError } from "../../errors.ts";
import { XSPLICE_PAYLOAD } from "../../payload/abi.ts";
import { findFreeRange, REL32_REACH } from "../../process/free-ranges.ts";
import type { Mapping } from "../../process/maps.ts";
import type { MappedObject } from "../../process/objects.ts";
import { type Layout, REGIONS, type Region, type RegionBases } from "../link/index.ts";

/** Bytes the loader adds to RW for the `struct xsplice_payload` hooks receive and its name. */
export const PAYLOAD_STRUCT_SIZE = XSPLICE_PAYLOAD.size;

/** The placement of a payload: region bases and the whole range they occupy. */
export interface Placement {
  bases: RegionBases;
  start: bigint;
  end: bigint;
}

function alignUp(n: bigint, a: bigint): bigint {
  return ((n + a - 1n) / a) * a;
}

/** End of the bytes the sections of `region` use (before page rounding). */
export function usedBytes(layout: Layout, region: Region): number {
  let end = 0;
  for (const p of layout.sections.values()) if (p.region === region) end = Math.max(end, p.offset + p.size);
  if (layout.stubs.region === region && layout.stubs.count > 0)
    end = Math.max(end, layout.stubs.offset + layout.stubs.count * layout.stubs.pitch);
  if (layout.got.region === region && layout.got.count > 0)
    end = Math.max(end, layout.got.offset + layout.got.count * layout.got.pitch);
  return end;
}

/**
 * `layout` with RW grown, if needed, by `extra` bytes after its sections
 * (16-byte aligned); returns the new layout and the offset of the extra room.
 */
export function reserveRw(layout: Layout, extra: number): { layout: Layout; offset: number } {
  const offset = Math.ceil(usedBytes(layout, "rw") / 16) * 16;
  const need = Math.ceil((offset + extra) / layout.pageSize) * layout.pageSize;
  if (need <= layout.sizes.rw) return { layout, offset };
  return { layout: { ...layout, sizes: { ...layout.sizes, rw: need } }, offset };
}

/** Total bytes of the contiguous placement when it starts at an address aligned to `layout`'s largest need. */
function offsets(layout: Layout): { at: Record<Region, bigint>; total: bigint; align: bigint } {
  let cursor = 0n;
  let align = BigInt(layout.pageSize);
  const at = { rx: 0n, rw: 0n, r: 0n };
  for (const r of REGIONS) {
    const a = BigInt(layout.align[r]);
    if (a > align) align = a;
    cursor = alignUp(cursor, a);
    at[r] = cursor;
    cursor += BigInt(layout.sizes[r]);
  }
  return { at, total: cursor, align };
}

/**
 * Choose one free range for the whole payload near `target`: `ENOMEM` when
 * nothing is free within reach (SPEC §2).
 */
export function placeRegions(layout: Layout, target: MappedObject, maps: readonly Mapping[]): Placement {
  const { at, total, align } = offsets(layout);
  if (total === 0n) throw new XspliceError("EINVAL", "payload has no allocated sections");
  const range = findFreeRange(maps, { start: target.start, end: target.end }, total, {
    reach: REL32_REACH,
    align,
  });
  const bases = { rx: range.start + at.rx, rw: range.start + at.rw, r: range.start + at.r };
  return { bases, start: range.start, end: range.start + total };
}

/** True when no mapping overlaps `[start, end)` (the placement is still free). */
export function stillFree(maps: readonly Mapping[], start: bigint, end: bigint): boolean {
  return !maps.some((m) => m.start < end && m.end > start);
}
