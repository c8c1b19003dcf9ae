/**
 * `layoutSections`: where each allocated payload section goes (SPEC §2
 * "layout"). Three regions by flags — executable (RX), writable (RW), else
 * read-only (R) — so that each can be mapped with the least permission.
 * Stubs for out-of-reach branches go at the end of RX; GOT slots at the end
 * of R (the loader writes them through /proc/PID/mem before the target runs
 * any payload code, so they never need to be writable in the target).
 */
import type { Arch } from "../../arch/index.ts";
import type { ElfFile, SectionIndex } from "../../elf/index.ts";
import { SHF } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";
import { indirectionKeys, isPlaced } from "./_indirect.ts";

/** The three memory regions of a payload. */
export type Region = "rx" | "rw" | "r";

/** Every region, in the order they are laid out. */
export const REGIONS: readonly Region[] = ["rx", "rw", "r"];

/** Where one section goes. */
export interface Placement {
  region: Region;
  /** Byte offset from the region's base. */
  offset: number;
  size: number;
}

/** An area of stubs or GOT slots inside a region. */
export interface Reserved {
  region: Region;
  offset: number;
  /** How many entries were reserved. */
  count: number;
  /** Bytes from one entry to the next. */
  pitch: number;
}

/** The result of {@link layoutSections}: offsets only, no addresses (those come with the bases). */
export interface Layout {
  sections: Map<SectionIndex, Placement>;
  /** Region sizes, rounded up to `pageSize`; 0 for an empty region. */
  sizes: Record<Region, number>;
  /** The alignment each region's base must have: the page size or a larger section alignment. */
  align: Record<Region, number>;
  /** Stub area (in RX). */
  stubs: Reserved;
  /** GOT slot area (in R), 8-byte slots. */
  got: Reserved;
  pageSize: number;
  /** Keys of the stubs and slots reserved (shared with relocation). */
  keys: { stubs: Set<string>; slots: Set<string> };
}

const GOT_SLOT = 8;

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Which region a section's flags put it in; a writable and executable section is refused (SPEC §2). */
function regionOf(flags: bigint, name: string): Region {
  const w = (flags & SHF.WRITE) !== 0n;
  const x = (flags & SHF.EXECINSTR) !== 0n;
  if (w && x)
    throw new XspliceError("EOPNOTSUPP", `section ${name} is both writable and executable`, {
      section: name,
    });
  if (x) return "rx";
  return w ? "rw" : "r";
}

/**
 * Lay out every `SHF_ALLOC` section of the payload, in section order, each at
 * its alignment; reserve stubs and GOT slots for the relocations that may
 * need them. TLS sections are `EOPNOTSUPP` (no new thread-locals in a live
 * process, SPEC §2); an alignment that is not a power of two `EOPNOTSUPP`.
 */
export function layoutSections(elf: ElfFile, arch: Arch, pageSize = 4096): Layout {
  const used: Record<Region, number> = { rx: 0, rw: 0, r: 0 };
  const align: Record<Region, number> = { rx: pageSize, rw: pageSize, r: pageSize };
  const sections = new Map<SectionIndex, Placement>();
  for (const s of elf.sections) {
    if (!isPlaced(s)) continue;
    if ((s.flags & SHF.TLS) !== 0n) {
      throw new XspliceError(
        "EOPNOTSUPP",
        `TLS section ${s.name}: a live process cannot get new thread-locals`,
        {
          section: s.name,
        },
      );
    }
    const a = s.addralign === 0n ? 1n : s.addralign;
    if ((a & (a - 1n)) !== 0n || a > 1n << 30n) {
      throw new XspliceError(
        "EOPNOTSUPP",
        `section ${s.name} alignment ${a} is not a power of two up to 1 GiB`,
        {
          section: s.name,
        },
      );
    }
    const region = regionOf(s.flags, s.name);
    const offset = alignUp(used[region], Number(a));
    sections.set(s.index, { region, offset, size: s.size });
    used[region] = offset + s.size;
    align[region] = Math.max(align[region], Number(a));
  }
  const keys = indirectionKeys(elf, arch);
  const stubPitch = alignUp(arch.stubSize, 8);
  const stubs: Reserved = {
    region: "rx",
    offset: alignUp(used.rx, 16),
    count: keys.stubs.size,
    pitch: stubPitch,
  };
  if (stubs.count > 0) used.rx = stubs.offset + stubs.count * stubPitch;
  const got: Reserved = {
    region: "r",
    offset: alignUp(used.r, GOT_SLOT),
    count: keys.slots.size,
    pitch: GOT_SLOT,
  };
  if (got.count > 0) used.r = got.offset + got.count * GOT_SLOT;
  const sizes = {
    rx: alignUp(used.rx, pageSize),
    rw: alignUp(used.rw, pageSize),
    r: alignUp(used.r, pageSize),
  };
  return { sections, sizes, align, stubs, got, pageSize, keys };
}
