/**
 * GNU indirect functions (`STT_GNU_IFUNC`, `nm` type `i`): glibc's `strlen`,
 * `memcpy`, `strchr`... The symbol's value is a *resolver*; the function a
 * call must reach is whatever that resolver returns in the process, chosen
 * from the CPU's features (ld.so does the same through `R_X86_64_IRELATIVE`
 * and `R_X86_64_JUMP_SLOT`). Binding a payload's reference to the resolver
 * itself makes the payload call the resolver and use its result (a code
 * address) as the function's result (SPEC §2 symbols).
 *
 * The resolver runs inside the target with `remoteCall`, first argument
 * `AT_HWCAP` from `/proc/PID/auxv` (glibc's x86-64 resolvers read the CPU
 * features ld.so recorded and ignore it; ld.so passes it on architectures
 * whose resolvers use it, so a user resolver may too). Results are cached per
 * (object build-id, symbol) as an offset from the object's load bias, keyed
 * also by the process's hardware capabilities and `GLIBC_TUNABLES` (which can
 * mask CPU features per process), so a second upload in this xsplice process
 * needs no call at all.
 */

import { readFileSync } from "node:fs";
import type { BoundedCache } from "../../bounded-cache.ts";
import { XspliceError } from "../../errors.ts";
import { hex } from "../../hex.ts";
import type { Mapping } from "../../process/maps.ts";
import type { MappedObject, ObjectSymbol } from "../../process/objects.ts";
import { remoteCall } from "../../process/remote-call.ts";
import type { Tracee } from "../../process/threads.ts";

/** An IFUNC a payload references: the object defining it and its (resolver) symbol. */
export interface IfuncRef {
  object: MappedObject;
  symbol: ObjectSymbol;
}

/** auxv tags (elf.h). */
const AT_HWCAP = 16n;
const AT_HWCAP2 = 26n;

/** AT_HWCAP and AT_HWCAP2 of process `pid` (0 when absent or unreadable). */
export function hardwareCaps(pid: number): { hwcap: bigint; hwcap2: bigint } {
  let hwcap = 0n;
  let hwcap2 = 0n;
  let auxv: Buffer;
  try {
    auxv = readFileSync(`/proc/${pid}/auxv`);
  } catch {
    return { hwcap, hwcap2 };
  }
  for (let off = 0; off + 16 <= auxv.length; off += 16) {
    const tag = auxv.readBigUInt64LE(off);
    if (tag === 0n) break;
    if (tag === AT_HWCAP) hwcap = auxv.readBigUInt64LE(off + 8);
    else if (tag === AT_HWCAP2) hwcap2 = auxv.readBigUInt64LE(off + 8);
  }
  return { hwcap, hwcap2 };
}

/** The `GLIBC_TUNABLES` a process started with ("" when none; undefined when unreadable). */
function tunables(pid: number): string | undefined {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    return env.find((e) => e.startsWith("GLIBC_TUNABLES="))?.slice(15) ?? "";
  } catch {
    return undefined;
  }
}

/**
 * The IFUNC implementations of one process, for one upload. Symbol sources
 * ask `implementation()`; what is not known yet is recorded as pending and
 * the source binds the resolver's address as a placeholder, so the link can
 * run (and fail early) before the process is touched. The loader then calls
 * `resolvePending()` in its stop and links once more.
 */
export class IfuncResolver {
  readonly pid: number;
  private readonly known = new Map<string, bigint>();
  private readonly waiting = new Map<string, IfuncRef>();
  private facts: { hwcap: bigint; fingerprint: string | undefined } | undefined;
  /** Resolver calls made, and the ms they took (for the loader's timings). */
  calls = 0;
  callMs = 0;

  /**
   * `cache` (a context's, shared across uploads) holds implementations by
   * object build-id, symbol and CPU features, as offsets from the object's bias.
   */
  constructor(
    pid: number,
    private readonly cache: BoundedCache<string, bigint>,
  ) {
    this.pid = pid;
  }

  /** The IFUNCs met whose implementation is not known yet. */
  get pending(): IfuncRef[] {
    return [...this.waiting.values()];
  }

  /**
   * The implementation's run-time address of IFUNC `symbol` of `object`, or
   * undefined (recorded as pending) until a resolver call has given it.
   */
  implementation(object: MappedObject, symbol: ObjectSymbol): bigint | undefined {
    const local = localKey(object, symbol);
    const got = this.known.get(local);
    if (got !== undefined) return got;
    const key = this.cacheKey(object, symbol);
    const offset = key === undefined ? undefined : this.cache.get(key);
    if (offset !== undefined) {
      this.known.set(local, object.bias + offset);
      return object.bias + offset;
    }
    this.waiting.set(local, { object, symbol });
    return undefined;
  }

  /**
   * Call each pending resolver in stopped thread `tid` (SysV: `AT_HWCAP` in
   * rdi) and remember the result. A result of 0 or outside every executable
   * mapping of `maps` is `ENOENT` naming the symbol: binding it would make the
   * payload jump to nothing.
   */
  resolvePending(tracee: Tracee, tid: number, maps: readonly Mapping[], timeoutMs = 1000): void {
    const { hwcap } = this.processFacts();
    for (const [local, ref] of this.waiting) {
      const t0 = performance.now();
      const impl = remoteCall(tracee, tid, ref.symbol.address, [hwcap], { timeoutMs });
      this.calls++;
      this.callMs += performance.now() - t0;
      const where = `IFUNC '${ref.symbol.name}' of ${ref.object.path}`;
      if (!maps.some((m) => m.perms.exec && impl >= m.start && impl < m.end))
        throw new XspliceError(
          "ENOENT",
          `${where}: resolver at ${hex(ref.symbol.address)} returned ${hex(impl)}, which is not code`,
          { symbol: ref.symbol.name, address: impl },
        );
      this.known.set(local, impl);
      const key = this.cacheKey(ref.object, ref.symbol);
      // Only an implementation inside the object itself moves with its bias in another process.
      if (key !== undefined && impl >= ref.object.start && impl < ref.object.end)
        this.cache.set(key, impl - ref.object.bias);
    }
    this.waiting.clear();
  }

  private processFacts(): { hwcap: bigint; fingerprint: string | undefined } {
    if (!this.facts) {
      const { hwcap, hwcap2 } = hardwareCaps(this.pid);
      const tun = tunables(this.pid);
      this.facts = {
        hwcap,
        fingerprint: tun === undefined ? undefined : `${hex(hwcap)}:${hex(hwcap2)}:${tun}`,
      };
    }
    return this.facts;
  }

  private cacheKey(object: MappedObject, symbol: ObjectSymbol): string | undefined {
    if (object.buildId === undefined) return undefined;
    const fp = this.processFacts().fingerprint;
    if (fp === undefined) return undefined;
    return `${object.buildId}|${symbol.name}|${hex(symbol.value)}|${fp}`;
  }
}

function localKey(object: MappedObject, symbol: ObjectSymbol): string {
  return `${hex(object.start)}|${hex(symbol.value)}`;
}
