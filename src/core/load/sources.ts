/**
 * Where the undefined symbols of a payload come from, in SPEC §2 order:
 * (1) the target object, (2) the exports of loaded payloads in upload order,
 * (3) the dynamic symbols of the other mapped objects in load order.
 * An `STT_GNU_IFUNC` symbol of (1) or (3) binds to its implementation in the
 * process, not to its resolver (see `ifunc.ts`); payload exports are never IFUNCs.
 */

import { STT } from "../../elf/defs.ts";
import type { Payload } from "../../payload/index.ts";
import type { MappedObject, ObjectSymbol } from "../../process/objects.ts";
import type { ResolvedSymbol, SymbolSource } from "../link/index.ts";
import type { RegistryState } from "../registry/records.ts";
import type { IfuncResolver } from "./ifunc.ts";

/**
 * What a symbol of `obj` binds to. An IFUNC gets its implementation; until
 * that is known, the resolver's address stands in (the resolver records it as
 * pending, and the loader links again once it has called the resolver).
 * Its `st_size` is the resolver's, so none is given.
 */
function bindObjectSymbol(obj: MappedObject, sym: ObjectSymbol, ifuncs: IfuncResolver): ResolvedSymbol {
  if (sym.type === STT.GNU_IFUNC) return { address: ifuncs.implementation(obj, sym) ?? sym.address };
  return {
    address: sym.address,
    size: sym.size,
    ...(sym.tpoff === undefined ? {} : { tls: { tpoff: sym.tpoff } }),
  };
}

/**
 * The target object as a symbol source. The payload's own `.xsplice.symbols`
 * come first (link-time address + the object's bias): that is how a payload
 * built against the unstripped binary patches the stripped one with the same
 * build-id (SPEC §1). When the object's symbol table agrees on the address, its
 * facts (size, thread-pointer offset) are used.
 */
export function targetSource(payload: Payload, obj: MappedObject, ifuncs: IfuncResolver): SymbolSource {
  const recorded = new Map(payload.targetSymbols.map((s) => [s.name, s.addr]));
  return {
    describe: `target ${obj.path}`,
    lookup(name) {
      const sym = obj.lookup(name);
      const linkAddr = recorded.get(name);
      if (linkAddr !== undefined && (sym === undefined || sym.value !== linkAddr)) {
        return { address: obj.bias + linkAddr };
      }
      return sym && bindObjectSymbol(obj, sym, ifuncs);
    },
  };
}

/** Exports of loaded payloads, in upload order. */
export function payloadsSource(reg: RegistryState): SymbolSource {
  return {
    describe: "loaded payloads",
    lookup(name) {
      for (const p of reg.payloads) {
        const a = p.exports[name];
        if (a !== undefined) return { address: BigInt(a) };
      }
      return undefined;
    },
  };
}

/** Dynamic symbols of every object but the target, in load order, as the dynamic linker binds. */
export function dynamicSource(
  objects: readonly MappedObject[],
  target: MappedObject,
  ifuncs: IfuncResolver,
): SymbolSource {
  const others = objects.filter((o) => o !== target && o.kind !== "vdso");
  return {
    describe: "dynamic symbols of the other objects",
    lookup(name) {
      for (const o of others) {
        const sym = o.dynamicLookup(name);
        if (sym) return bindObjectSymbol(o, sym, ifuncs);
      }
      return undefined;
    },
  };
}

/** The three sources in SPEC §2 order. */
export function symbolSources(
  payload: Payload,
  target: MappedObject,
  objects: readonly MappedObject[],
  reg: RegistryState,
  ifuncs: IfuncResolver,
): SymbolSource[] {
  return [targetSource(payload, target, ifuncs), payloadsSource(reg), dynamicSource(objects, target, ifuncs)];
}
