/**
 * The registry's JSON checked before anything uses it. The registry lives in
 * the target, so the target can write anything there (issue #11 item 8): a
 * root `xsplice list` must get either a `RegistryState` of the shape
 * `records.ts` declares, with every string and list bounded (unknown fields
 * are tolerated, bounded, for a newer xsplice's records), or one `EINVAL`
 * naming the first offending field — never a `TypeError` from `null.name`, a
 * `SyntaxError` from `BigInt("0xzz")` or a terminal escape in a name.
 *
 * The bounds are far above what any xsplice writes (a 500-function payload,
 * symbol names of C++ length) and far below what would cost memory or time.
 */
import { XspliceError } from "../../errors.ts";
import type { RegistryState } from "./records.ts";

/** Most payloads one registry may list. */
export const MAX_PAYLOADS = 4096;
/** Most functions (and journal writes) of one payload or operation. */
export const MAX_FUNCS = 100_000;
/** Longest symbol name, metadata value, path or build-id text. */
export const MAX_TEXT = 4096;
/** Longest hex byte string (patch, undo, expectation, journal bytes): 64 KiB of bytes. */
export const MAX_HEX = 2 * 65536;
/** Most regions, hooks, metadata entries or exports of one payload. */
const MAX_SMALL_LIST = 4096;
const MAX_EXPORTS = MAX_FUNCS;

type Check = (v: unknown, at: string) => void;

function fail(at: string, problem: string): never {
  throw new XspliceError("EINVAL", `registry: ${at} ${problem}`);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? "a string" : typeof v;
}

/** Printable ASCII only: what the registry holds is shown on root's terminal. */
const PRINTABLE = /^[\x20-\x7e]*$/;
const ADDRESS = /^0x[0-9a-f]{1,16}$/;
const HEX_BYTES = /^(?:[0-9a-f]{2})*$/;

function text(max = MAX_TEXT, pattern: RegExp = PRINTABLE, min = 0): Check {
  return (v, at) => {
    if (typeof v !== "string") fail(at, `is ${describe(v)}, not a string`);
    if (v.length < min || v.length > max) fail(at, `has length ${v.length}, not ${min}..${max}`);
    if (!pattern.test(v)) fail(at, `${JSON.stringify(v.slice(0, 40))} does not match ${pattern.source}`);
  };
}

/** Metadata values are free text from the payload (SPEC §1): any Unicode but no control characters. */
function freeText(max = MAX_TEXT): Check {
  return (v, at) => {
    if (typeof v !== "string") fail(at, `is ${describe(v)}, not a string`);
    if (v.length > max) fail(at, `has length ${v.length}, above ${max}`);
  };
}

const address = text(18, ADDRESS, 3);
/** An address, or "" where a field may be unset (payloadStruct, undo-less entries). */
const addressOrEmpty: Check = (v, at) => (v === "" ? undefined : address(v, at));
const hexBytes = text(MAX_HEX, HEX_BYTES);

function int(min: number, max: number): Check {
  return (v, at) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
      fail(at, `is ${typeof v === "number" ? v : describe(v)}, not an integer in ${min}..${max}`);
  };
}

const bool: Check = (v, at) => {
  if (typeof v !== "boolean") fail(at, `is ${describe(v)}, not true or false`);
};

function oneOf(...values: string[]): Check {
  return (v, at) => {
    if (typeof v !== "string" || !values.includes(v))
      fail(
        at,
        `is ${typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : describe(v)}, not one of ${values.join("|")}`,
      );
  };
}

function list(item: Check, max: number): Check {
  return (v, at) => {
    if (!Array.isArray(v)) fail(at, `is ${describe(v)}, not a list`);
    if (v.length > max) fail(at, `has ${v.length} entries, above ${max}`);
    for (const [i, x] of v.entries()) item(x, `${at}[${i}]`);
  };
}

/** Most fields an object may carry beyond those this xsplice knows. */
const MAX_EXTRA_FIELDS = 16;

/**
 * An object with these fields (those in `optional` may be missing). Fields
 * this xsplice does not know are kept but never read — a newer xsplice may
 * have written them — and bounded in number.
 */
function record(required: Record<string, Check>, optional: Record<string, Check> = {}): Check {
  return (v, at) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(at, `is ${describe(v)}, not an object`);
    const o = v as Record<string, unknown>;
    for (const [k, check] of Object.entries(required)) {
      if (!Object.hasOwn(o, k)) fail(at, `lacks field '${k}'`);
      check(o[k], `${at}.${k}`);
    }
    for (const [k, check] of Object.entries(optional)) if (Object.hasOwn(o, k)) check(o[k], `${at}.${k}`);
    const extra = Object.keys(o).filter((k) => !Object.hasOwn(required, k) && !Object.hasOwn(optional, k));
    if (extra.length > MAX_EXTRA_FIELDS)
      fail(
        at,
        `has ${extra.length} unknown fields (${JSON.stringify(extra[0]!.slice(0, 40))}, ...), above ${MAX_EXTRA_FIELDS}`,
      );
  };
}

/** A string → string map with bounded keys and values. */
function dict(key: Check, value: Check, max: number): Check {
  return (v, at) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(at, `is ${describe(v)}, not an object`);
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length > max) fail(at, `has ${entries.length} entries, above ${max}`);
    for (const [k, x] of entries) {
      key(k, `${at} key`);
      value(x, `${at}[${JSON.stringify(k)}]`);
    }
  };
}

const regionKind = oneOf("rx", "rw", "r");
const size = int(0, 2 ** 40);
const digest = text(64, /^[0-9a-f]{64}$/);

const region = record({ kind: regionKind, addr: address, size }, { digest });

const func = record(
  {
    name: text(),
    oldAddr: address,
    oldSize: size,
    newAddr: address,
    newSize: size,
    patchAddr: address,
    patch: hexBytes,
    undo: hexBytes,
  },
  { expect: hexBytes },
);

const hooks = record(
  { load: list(address, MAX_SMALL_LIST), unload: list(address, MAX_SMALL_LIST) },
  {
    preapply: address,
    postapply: address,
    prerevert: address,
    postrevert: address,
    apply: address,
    revert: address,
  },
);

/** SPEC §2 name rule, as `load/validate.ts` enforces it at upload. */
const payloadName = text(127, PRINTABLE, 1);

const payload = record({
  name: payloadName,
  state: oneOf("CHECKED", "APPLIED"),
  rc: int(-4095, 0),
  format: oneOf("xsplice", "livepatch"),
  buildId: text(),
  target: text(),
  depends: text(),
  object: record({ path: freeText(), buildId: text(), bias: text(19, /^-?0x[0-9a-f]{1,16}$/, 3) }),
  regions: list(region, MAX_SMALL_LIST),
  exports: dict(text(), address, MAX_EXPORTS),
  funcs: list(func, MAX_FUNCS),
  hooks,
  metadata: dict(text(256), freeText(), MAX_SMALL_LIST),
  hasOwnWritableData: bool,
  reverted: bool,
  appliedSeq: int(0, Number.MAX_SAFE_INTEGER),
  payloadStruct: addressOrEmpty,
});

const journalWrite = record(
  { addr: address, before: hexBytes, after: hexBytes },
  { guardStart: address, guardEnd: address },
);

const journalHook = record(
  {
    payload: payloadName,
    kind: oneOf("load", "unload", "apply", "revert"),
    addr: address,
    phase: oneOf("running", "done", "failed", "paired"),
  },
  { undo: bool },
);

const journal = record(
  {
    cmd: oneOf("APPLY", "REVERT", "REPLACE", "UNLOAD", "UPLOAD"),
    name: payloadName,
    by: int(0, 2 ** 31),
    writes: list(journalWrite, MAX_FUNCS),
    outcome: list(payload, MAX_PAYLOADS),
  },
  { hooks: list(journalHook, MAX_SMALL_LIST), regions: list(region, MAX_SMALL_LIST) },
);

const state = record(
  {
    version: int(0, Number.MAX_SAFE_INTEGER),
    payloads: list(payload, MAX_PAYLOADS),
    nextSeq: int(0, Number.MAX_SAFE_INTEGER),
  },
  { journal },
);

/**
 * `doc` (parsed registry JSON) as a `RegistryState`, or `EINVAL` naming the
 * first field that is missing, of the wrong type or out of bounds.
 * Two payloads of one name are refused too: every operation finds a payload
 * by name.
 */
export function checkRegistryState(doc: unknown): RegistryState {
  state(doc, "state");
  const s = doc as RegistryState;
  const seen = new Set<string>();
  for (const p of s.payloads) {
    if (seen.has(p.name)) fail("state.payloads", `holds '${p.name}' twice`);
    seen.add(p.name);
  }
  return s;
}
