/**
 * The format-independent model of a payload (SPEC §1): what `readPayload`
 * makes of a native `.xsplice.*` payload or of a Xen `.livepatch.*` v2 one.
 * Everything here comes from the file alone; nothing depends on a process.
 */
import type { ElfFile, ElfSymbol } from "../elf/index.ts";
import type { SignatureInfo } from "./signature.ts";

/** Which section naming and entry layout the payload uses (SPEC §1 compatibility). */
export type PayloadFormat = "xsplice" | "livepatch";

/** A pointer field filled by a relocation: the symbol and addend of that relocation. */
export interface SymbolRef {
  symbol: ElfSymbol;
  addend: bigint;
}

/** A hook: a function pointer in a hook section, given by its relocation (SPEC §7). */
export type HookRef = SymbolRef;

/** One entry of `.xsplice.funcs` (64 bytes) or `.livepatch.funcs` (104 bytes). */
export interface PatchFunc {
  /** Position in the funcs array. */
  index: number;
  /**
   * Name of the old function ("file.c#sym" for a static), read through the
   * relocation at the entry's `name` field; "" when the field is NULL (then
   * `oldAddr` is non-zero).
   */
  name: string;
  /** Link-time address in the target object; 0 = look `name` up at load. */
  oldAddr: bigint;
  /** Size of the old function (never 0). */
  oldSize: number;
  /** Size of the replacement, or the number of bytes to NOP out. */
  newSize: number;
  /** The replacement, from the relocation at `new_addr`; absent for a NOP entry. */
  newSymbol?: SymbolRef;
  /** True when `new_addr` is 0 with no relocation: NOP out `newSize` bytes (SPEC §3). */
  nop: boolean;
  /** Livepatch v2 expectation: the bytes `old_addr` must hold before APPLY (SPEC §1). */
  expect?: Uint8Array;
  /** Offset of the entry in its section, so the loader can fill `new_addr` or use `pad`. */
  entryOffset: number;
}

/** The hook sections (SPEC §1, §7); arrays are empty and single hooks absent when not present. */
export interface Hooks {
  load: HookRef[];
  unload: HookRef[];
  preapply?: HookRef;
  postapply?: HookRef;
  prerevert?: HookRef;
  postrevert?: HookRef;
  apply?: HookRef;
  revert?: HookRef;
}

/** The names of the single-pointer hooks, in the order `inspect` lists them. */
export const SINGLE_HOOKS = ["preapply", "postapply", "prerevert", "postrevert", "apply", "revert"] as const;

/** One of the single-pointer hooks. */
export type SingleHook = (typeof SINGLE_HOOKS)[number];

/** A link-time address in the target object of a symbol the payload's code refers to (SPEC §1). */
export interface TargetSymbol {
  name: string;
  addr: bigint;
}

/** A payload as read from its file, checked as far as possible without a process (SPEC §2). */
export interface Payload {
  format: PayloadFormat;
  /** `e_machine`: 62 (x86-64) or 183 (arm64). */
  machine: number;
  /** The ELF payload (without any signature trailer). */
  elf: ElfFile;
  /** The payload's own build-id (`.note.gnu.build-id`). */
  buildId: Uint8Array;
  /** Build-id of the target object (`.xsplice.target` / `.livepatch.xen_depends`). */
  target: Uint8Array;
  /** Build-id this payload stacks on (`.xsplice.depends` / `.livepatch.depends`). */
  depends: Uint8Array;
  funcs: PatchFunc[];
  hooks: Hooks;
  /**
   * `.modinfo` as key → value, in file order. A key given more than once keeps
   * its first position and gets the values joined by "\n"; an entry without
   * `=` is a key with an empty value.
   */
  metadata: Record<string, string>;
  /** Link-time addresses of target symbols, from `.xsplice.symbols` (empty when absent). */
  targetSymbols: TargetSymbol[];
  /** True when a signature trailer is appended (SPEC §9); not verified here. */
  signed: boolean;
  /** The parsed trailer, when signed. */
  signature?: SignatureInfo;
  /**
   * True when the payload has non-empty writable data of its own (SPEC §5): it
   * cannot be re-applied after a revert.
   */
  hasOwnWritableData: boolean;
}
