/**
 * `_dlopen-inject.ts PID PATH`: put shared object PATH into process PID the
 * way libpulp loads its patches — seize it, call the target's own
 * `dlopen(PATH, RTLD_NOW)` in one of its threads, let go. The baseline of the
 * upload end-to-end benchmark (bench/upload-e2e.bench.ts), run bundled as one
 * fresh command per sample. Prints "ok HANDLE", or "error MESSAGE" and exits 1.
 */
import { writeMemory } from "../src/process/memory.ts";
import { mappedObjects } from "../src/process/objects.ts";
import { remoteCall } from "../src/process/remote-call.ts";
import { PROT, remoteMmap, remoteMunmap } from "../src/process/syscalls.ts";
import { Tracee } from "../src/process/threads.ts";

/** <dlfcn.h> */
const RTLD_NOW = 2n;

const pid = Number(process.argv[2]);
const path = process.argv[3] ?? "";
try {
  // glibc ≥ 2.34 has dlopen in libc itself; older ones in libdl.
  const dlopen = mappedObjects(pid)
    .map((o) => o.dynamicLookup("dlopen"))
    .find((s) => s !== undefined);
  if (!dlopen) throw new Error(`no dlopen in process ${pid}`);
  const tr = Tracee.seize(pid);
  try {
    const tid = tr.threads[0]!;
    const name = Buffer.from(`${path}\0`);
    const page = remoteMmap(tr, tid, { length: 4096, prot: PROT.READ | PROT.WRITE });
    try {
      writeMemory(pid, page, name);
      const handle = remoteCall(tr, tid, dlopen.address, [page, RTLD_NOW], { timeoutMs: 60_000 });
      if (handle === 0n) throw new Error(`dlopen(${path}) failed in process ${pid}`);
      process.stdout.write(`ok 0x${handle.toString(16)}\n`);
    } finally {
      remoteMunmap(tr, tid, page, 4096);
    }
  } finally {
    tr.detach();
  }
} catch (err) {
  process.stdout.write(`error ${(err as Error).message}\n`);
  process.exitCode = 1;
}
