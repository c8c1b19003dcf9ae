/**
 * The byte layout of the registry mapping (SPEC §8), over any memory the
 * caller can read and write — in production the target's, through
 * `/proc/PID/mem`; in unit tests a plain buffer.
 *
 * Layout: a 4 KiB header page, then two slots of `slotSize` bytes. The state
 * is one JSON document in one slot. A commit writes the new document into the
 * slot that is *not* active, then flips `activeSlot` with a single aligned
 * 4-byte write. So a reader never sees a half-written state (it reads whole
 * slots and checks their hash), and an xsplice run killed mid-commit leaves
 * the previous state active.
 *
 * header (little-endian):
 *   0  magic "XSPLREG1"          8  u32 layout version (1)   12 u32 activeSlot (0|1)
 *   16 u64 slotSize              24 u64 reserved
 *   32 slot[0] descriptor        64 slot[1] descriptor
 * slot descriptor: 0 u64 length, 8 u64 generation, 16 sha256(data)[0..16]
 */
import { createHash } from "node:crypto";
import { XspliceError } from "../../errors.ts";
import type { RegistryState } from "./records.ts";
import { checkRegistryState } from "./schema.ts";

/** Memory the registry lives in. */
export interface RegistryMemory {
  read(addr: bigint, len: number): Uint8Array;
  write(addr: bigint, bytes: Uint8Array): void;
}

/** The name the mapping carries in `/proc/PID/maps` (a memfd of this name). */
export const REGISTRY_NAME = "xsplice-registry";
const MAGIC = "XSPLREG1";
const LAYOUT_VERSION = 1;
/** Size of the header page; slots start after it. */
export const HEADER_SIZE = 4096;
const DESC_OFFSET = 32;
const DESC_SIZE = 32;
const HEADER_USED = DESC_OFFSET + 2 * DESC_SIZE;
/** Default slot size: room for thousands of payloads; untouched pages cost the target nothing. */
export const DEFAULT_SLOT_SIZE = 4 * 1024 * 1024;
/**
 * Largest slot size a reader accepts (SPEC §8). The header comes from the
 * target, which may claim anything: a reader refuses a larger slot, or a slot
 * length above it, before it allocates a byte for it (issue #11 item 8).
 */
export const MAX_SLOT_SIZE = 64 * 1024 * 1024;
/** How many times a reader retries when a writer replaced the slot under it. */
const READ_RETRIES = 50;

/** Total bytes to map for a registry with slots of `slotSize`. */
export function registrySize(slotSize = DEFAULT_SLOT_SIZE): number {
  return HEADER_SIZE + 2 * slotSize;
}

interface Header {
  activeSlot: 0 | 1;
  slotSize: number;
  slots: { length: number; generation: bigint; hash: Uint8Array }[];
}

function hash16(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest().subarray(0, 16));
}

function readHeader(mem: RegistryMemory, base: bigint, mapped?: bigint): Header {
  const b = mem.read(base, HEADER_USED);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = new TextDecoder().decode(b.subarray(0, 8));
  if (magic !== MAGIC) {
    throw new XspliceError(
      "EINVAL",
      `no xsplice registry at 0x${base.toString(16)} (magic ${JSON.stringify(magic)})`,
    );
  }
  const version = dv.getUint32(8, true);
  if (version !== LAYOUT_VERSION) {
    throw new XspliceError(
      "EOPNOTSUPP",
      `registry layout version ${version} is not supported (this xsplice reads ${LAYOUT_VERSION})`,
    );
  }
  const active = dv.getUint32(12, true);
  if (active !== 0 && active !== 1)
    throw new XspliceError("EINVAL", `registry header: active slot ${active} is not 0 or 1`);
  const rawSlotSize = dv.getBigUint64(16, true);
  if (rawSlotSize === 0n || rawSlotSize > BigInt(MAX_SLOT_SIZE))
    throw new XspliceError(
      "EINVAL",
      `registry header at 0x${base.toString(16)}: slot size ${rawSlotSize} is not 1..${MAX_SLOT_SIZE}`,
    );
  const slotSize = Number(rawSlotSize);
  if (mapped !== undefined && BigInt(registrySize(slotSize)) > mapped)
    throw new XspliceError(
      "EINVAL",
      `registry header at 0x${base.toString(16)}: slots of ${slotSize} bytes do not fit its ${mapped}-byte mapping`,
    );
  const slots = [0, 1].map((i) => {
    const o = DESC_OFFSET + i * DESC_SIZE;
    const length = dv.getBigUint64(o, true);
    if (length > rawSlotSize)
      throw new XspliceError(
        "EINVAL",
        `registry header at 0x${base.toString(16)}: slot ${i} length ${length} exceeds the slot size ${slotSize}`,
      );
    return {
      length: Number(length),
      generation: dv.getBigUint64(o + 8, true),
      hash: b.slice(o + 16, o + 32),
    };
  });
  return { activeSlot: active, slotSize, slots };
}

function slotAddr(base: bigint, slotSize: number, slot: number): bigint {
  return base + BigInt(HEADER_SIZE + slot * slotSize);
}

function encodeState(state: RegistryState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}

/**
 * Write a fresh registry holding `state` into zeroed memory at `base`. The
 * magic is written last, so a half-initialised mapping is never taken for a
 * registry.
 */
export function initRegistry(
  mem: RegistryMemory,
  base: bigint,
  state: RegistryState,
  slotSize = DEFAULT_SLOT_SIZE,
): void {
  const data = encodeState(state);
  if (data.length > slotSize)
    throw new XspliceError(
      "ENOSPC",
      `registry state of ${data.length} bytes exceeds the slot size ${slotSize}`,
    );
  mem.write(slotAddr(base, slotSize, 0), data);
  const h = new Uint8Array(HEADER_USED);
  const dv = new DataView(h.buffer);
  dv.setUint32(8, LAYOUT_VERSION, true);
  dv.setUint32(12, 0, true);
  dv.setBigUint64(16, BigInt(slotSize), true);
  dv.setBigUint64(DESC_OFFSET, BigInt(data.length), true);
  dv.setBigUint64(DESC_OFFSET + 8, 1n, true);
  h.set(hash16(data), DESC_OFFSET + 16);
  mem.write(base + 8n, h.subarray(8));
  mem.write(base, new TextEncoder().encode(MAGIC));
}

/**
 * True while the mapping at `base` is not a registry *yet*: `initRegistry`
 * writes the magic last, so a creator that has mapped the memory but not
 * finished (or was killed before it did) leaves the first 8 bytes zero.
 */
export function isUninitialised(mem: RegistryMemory, base: bigint): boolean {
  return mem.read(base, 8).every((b) => b === 0);
}

/** A state read from the registry, with the generation it was committed as. */
export interface RegistrySnapshot {
  state: RegistryState;
  generation: bigint;
}

/**
 * Read the current state. Retries while a concurrent writer is replacing the
 * slot being read; a slot that never verifies is `EIO`. `mapped`, when given,
 * is how many bytes are mapped from `base`: slots beyond it are `EINVAL`
 * before anything is read. The state is checked against the schema
 * (`schema.ts`): the target may have written anything there.
 */
export function readRegistry(mem: RegistryMemory, base: bigint, mapped?: bigint): RegistrySnapshot {
  for (let attempt = 0; attempt < READ_RETRIES; attempt++) {
    const h = readHeader(mem, base, mapped);
    const desc = h.slots[h.activeSlot]!;
    const data = mem.read(slotAddr(base, h.slotSize, h.activeSlot), desc.length);
    const ok = Buffer.from(hash16(data)).equals(Buffer.from(desc.hash));
    const again = readHeader(mem, base, mapped);
    if (!ok || again.activeSlot !== h.activeSlot || again.slots[h.activeSlot]!.generation !== desc.generation)
      continue;
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(data));
    } catch (err) {
      throw new XspliceError(
        "EINVAL",
        `registry slot ${h.activeSlot} does not hold valid JSON: ${(err as Error).message}`,
      );
    }
    return { state: checkRegistryState(doc), generation: desc.generation };
  }
  throw new XspliceError(
    "EIO",
    `registry at 0x${base.toString(16)} kept changing or failed its checksum after ${READ_RETRIES} reads`,
  );
}

/**
 * Commit `state` as the new current state: write it into the inactive slot,
 * then flip the active slot. Returns the new generation. Callers must hold the
 * target exclusively (xsplice holds it seized), so there is one writer.
 */
export function commitRegistry(mem: RegistryMemory, base: bigint, state: RegistryState): bigint {
  const h = readHeader(mem, base);
  const data = encodeState(state);
  if (data.length > h.slotSize) {
    throw new XspliceError(
      "ENOSPC",
      `registry state of ${data.length} bytes exceeds the slot size ${h.slotSize}`,
    );
  }
  const next = h.activeSlot === 0 ? 1 : 0;
  const generation = h.slots[h.activeSlot]!.generation + 1n;
  mem.write(slotAddr(base, h.slotSize, next), data);
  const desc = new Uint8Array(DESC_SIZE);
  const dv = new DataView(desc.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setBigUint64(8, generation, true);
  desc.set(hash16(data), 16);
  mem.write(base + BigInt(DESC_OFFSET + next * DESC_SIZE), desc);
  const flip = new Uint8Array(4);
  new DataView(flip.buffer).setUint32(0, next, true);
  mem.write(base + 12n, flip);
  return generation;
}
