/**
 * The SPEC §2 "functions" checks that need the process, and what APPLY will
 * write for each entry (SPEC §3): computed at upload, before anything is
 * written, and kept in the registry record.
 */

import type { Arch } from "../../arch/index.ts";
import { XspliceError } from "../../errors.ts";
import { hex, hexBytes } from "../../hex.ts";
import type { PatchFunc, Payload } from "../../payload/index.ts";
import { ambiguousName } from "../../payload/target-symbols.ts";
import type { MappedObject } from "../../process/objects.ts";
import { checkPatchSite, type LinkedImage } from "../link/index.ts";
import type { FuncRecord } from "../registry/records.ts";

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

/**
 * One `FuncRecord` per entry: old and new addresses, the patch site and the
 * bytes APPLY writes. `readCode(addr, len)` reads the old function's first
 * bytes from the target. Errors: old function not found `ENOENT`; too small
 * (with `endbr64` counted) or a NOP longer than `old_size` `EINVAL`; the same
 * old function twice `EINVAL`; replacement out of reach `EOVERFLOW`.
 */
export function patchRecords(
  payload: Payload,
  arch: Arch,
  obj: MappedObject,
  linked: LinkedImage,
  readCode: (addr: bigint, len: number) => Uint8Array,
): FuncRecord[] {
  const seen = new Map<bigint, string>();
  const out: FuncRecord[] = [];
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
