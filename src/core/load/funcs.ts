/**
 * The SPEC §2 "functions" checks that need the process, and what APPLY will
 * write for each entry (SPEC §3): computed at upload, before anything is
 * written, and kept in the registry record.
 */

import type { Arch } from "../../arch/index.ts";
import { STT } from "../../elf/defs.ts";
import { XspliceError } from "../../errors.ts";
import { hex, hexBytes } from "../../hex.ts";
import type { PatchFunc, Payload } from "../../payload/index.ts";
import { ambiguousName } from "../../payload/target-symbols.ts";
import type { MappedObject } from "../../process/objects.ts";
import { checkPatchSite, type LinkedImage } from "../link/index.ts";
import type { FuncRecord, PayloadRecord } from "../registry/records.ts";

function label(f: PatchFunc): string {
  return f.name || `entry ${f.index} (old_addr ${hex(f.oldAddr)})`;
}

/** Run-time address of an entry's old function: bias + old_addr, else its name in the target object. */
export function oldAddressOf(f: PatchFunc, obj: MappedObject): bigint {
  if (f.oldAddr !== 0n) return obj.bias + f.oldAddr;
  const r = obj.resolve(f.name);
  if (r.kind === "found") return r.symbol.address;
  if (r.kind === "ambiguous")
    throw ambiguousName(
      "old function",
      f.name,
      obj.path,
      r.candidates.map((c) => c.file ?? "?"),
    );
  throw new XspliceError("ENOENT", `old function '${f.name}' not found in ${obj.path}`, { symbol: f.name });
}

/** Run-time address of a symbol reference of the payload (relocation target + addend). */
export function payloadRefAddress(
  linked: LinkedImage,
  ref: { symbol: { index: number; name: string }; addend: bigint },
): bigint {
  const a = linked.symbolAddress(ref.symbol.index as Parameters<LinkedImage["symbolAddress"]>[0]);
  if (a === undefined)
    throw new XspliceError("EINVAL", `'${ref.symbol.name}' is not defined by the payload`, {
      symbol: ref.symbol.name,
    });
  return a + ref.addend;
}

/** A patch site: the bytes `[start, end)` APPLY overwrites, and whose they are. */
interface Site {
  start: bigint;
  end: bigint;
  owner: string;
}

/**
 * SPEC §2 (issue #11 item 9): the bytes an entry will overwrite lie in one
 * executable mapping of the target object and, where the object has a symbol
 * table, inside one function. A payload can name any address: without this
 * a trampoline could be written into a data array.
 */
function checkSiteInCode(f: PatchFunc, obj: MappedObject, start: bigint, end: bigint): void {
  const where = { symbol: f.name, address: start };
  const m = obj.mappings.find((x) => start >= x.start && start < x.end);
  if (!m?.perms.exec || end > m.end)
    throw new XspliceError(
      "EINVAL",
      `${label(f)}: patch site ${hex(start)}..${hex(end)} is not inside executable code of ${obj.path}${
        m
          ? ` (mapping ${hex(m.start)}-${hex(m.end)} ${m.perms.exec ? "ends first" : "is not executable"})`
          : ""
      }`,
      where,
    );
  const hit = obj.symbolAt(start);
  const fn =
    hit && (hit.symbol.type === STT.FUNC || hit.symbol.type === STT.GNU_IFUNC) ? hit.symbol : undefined;
  if (hit && !fn)
    throw new XspliceError(
      "EINVAL",
      `${label(f)}: patch site ${hex(start)} is inside '${hit.symbol.name}', which is not a function`,
      where,
    );
  if (fn) {
    if (fn.size > 0n && end > fn.address + fn.size)
      throw new XspliceError(
        "EINVAL",
        `${label(f)}: patch site ${hex(start)}..${hex(end)} runs past the end of function '${fn.name}' (${hex(fn.address)}..${hex(fn.address + fn.size)})`,
        where,
      );
    return;
  }
  // No symbol covers the address: refused where the object's full symbol table would name every function.
  if (obj.elf.symbolTable() || obj.debugElf)
    throw new XspliceError(
      "EINVAL",
      `${label(f)}: patch site ${hex(start)} is not inside any function of ${obj.path}`,
      where,
    );
}

/** Every patch site of the payloads already loaded (their records), for the overlap check. */
function loadedSites(loaded: readonly PayloadRecord[]): Site[] {
  return loaded.flatMap((p) =>
    p.funcs.map((r) => {
      const start = BigInt(r.patchAddr);
      return {
        start,
        end: start + BigInt(r.patch.length / 2),
        owner: `${r.name || r.oldAddr} of '${p.name}'`,
      };
    }),
  );
}

/**
 * SPEC §2 (issue #11 item 9): no two patch sites may overlap, in this payload
 * or with a loaded one — overlapping writes can never both be reverted. The
 * one exception is stacking: the same site of the same function, patched
 * again by a later payload.
 */
/**
 * The payload's own sites so far: in entry order (an overlap names the first one it meets, as
 * before), and sorted by start, then end, for the test. They never overlap each other, so the
 * last one starting below a new site's end also ends last of those: only it can reach into the
 * new site. A binary search per entry instead of a scan of all earlier ones (125,000
 * comparisons for 500 functions).
 */
class OwnSites {
  readonly inOrder: Site[] = [];
  readonly #byStart: Site[] = [];

  /** Some site overlaps `site`. */
  clashes(site: Site): boolean {
    const list = this.#byStart;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.start < site.end) lo = mid + 1;
      else hi = mid;
    }
    const below = list[lo - 1];
    return below !== undefined && below.end > site.start;
  }

  add(site: Site): void {
    const list = this.#byStart;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = list[mid]!;
      if (m.start < site.start || (m.start === site.start && m.end < site.end)) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, site);
    this.inOrder.push(site);
  }
}

function checkNoOverlap(f: PatchFunc, site: Site, own: OwnSites, loaded: readonly Site[]): void {
  const clash = (o: Site) => o.start < site.end && site.start < o.end;
  const mine = own.clashes(site) ? own.inOrder.find(clash) : undefined;
  const theirs = loaded.find((o) => clash(o) && o.start !== site.start);
  const other = mine ?? theirs;
  if (other)
    throw new XspliceError(
      "EINVAL",
      `${label(f)}: patch site ${hex(site.start)}..${hex(site.end)} overlaps ${other.owner} at ${hex(other.start)}..${hex(other.end)}${mine ? " in this payload" : ""}`,
      { symbol: f.name, address: site.start },
    );
}

/**
 * One `FuncRecord` per entry: old and new addresses, the patch site and the
 * bytes APPLY writes. `readCode(addr, len)` reads the old function's first
 * bytes from the target. Errors: old function not found `ENOENT`; too small
 * (with `endbr64` counted) or a NOP longer than `old_size` `EINVAL`; the same
 * old function twice `EINVAL`; a site outside the object's code or overlapping
 * another (`loaded`: the payloads in the registry) `EINVAL`; replacement out
 * of reach `EOVERFLOW`.
 */
export function patchRecords(
  payload: Payload,
  arch: Arch,
  obj: MappedObject,
  linked: LinkedImage,
  readCode: (addr: bigint, len: number) => Uint8Array,
  loaded: readonly PayloadRecord[] = [],
): FuncRecord[] {
  const seen = new Map<bigint, string>();
  const out: FuncRecord[] = [];
  const own = new OwnSites();
  const others = loadedSites(loaded);
  const check = (f: PatchFunc, start: bigint, len: number) => {
    const site = { start, end: start + BigInt(len), owner: label(f) };
    checkSiteInCode(f, obj, start, site.end);
    checkNoOverlap(f, site, own, others);
    own.add(site);
  };
  for (const f of payload.funcs) {
    const oldAddr = oldAddressOf(f, obj);
    const prev = seen.get(oldAddr);
    if (prev !== undefined)
      throw new XspliceError(
        "EINVAL",
        `${label(f)}: the function at ${hex(oldAddr)} is already patched by ${prev} in this payload`,
        {
          symbol: f.name,
          address: oldAddr,
        },
      );
    seen.set(oldAddr, label(f));
    // Before reading: an address outside the object's code is refused by name, not read.
    if (f.nop) check(f, oldAddr, f.newSize);
    else checkSiteInCode(f, obj, oldAddr, oldAddr + 1n);
    const code = readCode(oldAddr, Math.min(f.oldSize, 32));
    if (f.nop) {
      if (f.newSize > f.oldSize)
        throw new XspliceError(
          "EINVAL",
          `${label(f)}: NOP of ${f.newSize} bytes is longer than old_size ${f.oldSize}`,
          {
            symbol: f.name,
          },
        );
      out.push({
        name: f.name,
        oldAddr: hex(oldAddr),
        oldSize: f.oldSize,
        newAddr: "0x0",
        newSize: f.newSize,
        patchAddr: hex(oldAddr),
        patch: hexBytes(arch.nops(f.newSize)),
        undo: "",
        // SPEC §1 expectation (livepatch format), checked by the executor before APPLY.
        ...(f.expect ? { expect: hexBytes(f.expect) } : {}),
      });
      continue;
    }
    const newAddr = payloadRefAddress(linked, f.newSymbol!);
    const site = checkPatchSite(arch, code, f.oldSize, oldAddr, newAddr, label(f));
    check(f, site.at, site.bytes.length);
    out.push({
      name: f.name,
      oldAddr: hex(oldAddr),
      oldSize: f.oldSize,
      newAddr: hex(newAddr),
      newSize: f.newSize,
      patchAddr: hex(site.at),
      patch: hexBytes(site.bytes),
      undo: "",
      ...(f.expect ? { expect: hexBytes(f.expect) } : {}),
    });
  }
  return out;
}
