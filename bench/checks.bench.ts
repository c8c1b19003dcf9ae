/**
 * Figures the tests no longer assert (a test's verdict may not depend on the
 * machine's speed): how long the stack walk of a sleeping thread takes
 * (test/process-describe/stack.test.ts checks what it finds), and how soon an
 * APPLY refuses with EBUSY when a thread is parked inside the function
 * (test/core/actions/executor.test.ts checks the refusal), against its
 * `timeoutMs` of 30 — the time the check keeps retrying before it gives up.
 */
import { runAction } from "../src/core/execute.ts";
import { openTarget } from "../src/core/session.ts";
import { XspliceError } from "../src/errors.ts";
import { readMaps } from "../src/process/maps.ts";
import { readMemory } from "../src/process/memory.ts";
import { mappedObjects, objectAt } from "../src/process/objects.ts";
import { stackFacts } from "../src/process/stack.ts";
import { Tracee } from "../src/process/threads.ts";
import { actionsTarget, addRecord, handFunc, handRecord } from "../test/core/actions/_hand.ts";
import { startTarget } from "../test/helpers/target.ts";
import { buildDescribe, startDescribe } from "../test/process-describe/_fixture.ts";
import { type Bench, type BenchRow, sample, stats } from "./lib.ts";

const TIMEOUT_MS = 30;

async function stackWalk(): Promise<BenchRow> {
  const run = await startDescribe(buildDescribe("O2").exe);
  try {
    const maps = readMaps(run.pid);
    const objects = mappedObjects(run.pid, { maps });
    const tracee = Tracee.seize(run.pid);
    try {
      const regs = tracee.regs(run.pid);
      const walk = () =>
        stackFacts({
          regs,
          read: (addr, len) => readMemory(run.pid, addr, len),
          maps,
          objectAt: (pc) => objectAt(objects, pc),
        });
      const frames = walk().returnAddresses.length;
      return {
        name: "stack walk of a thread asleep in a -> b -> c",
        stats: stats(await sample(walk, 200, 10)),
        note: `eh_frame, ${frames} return addresses, /proc/PID/mem reads`,
      };
    } finally {
      tracee.detach();
    }
  } finally {
    await run.kill();
  }
}

async function ebusyParked(): Promise<BenchRow> {
  const exe = actionsTarget(true);
  const t = await startTarget(exe, ["2"]);
  try {
    const from = t.lines.length;
    t.send("park");
    await t.waitFor(/^parked$/, { from });
    const s = openTarget(t.pid, { recover: false });
    try {
      addRecord(s, handRecord(exe, "park-fix", [handFunc(t.pid, exe, "parked_fn", "new_fn")]));
      const refuse = () => {
        try {
          runAction(s, "park-fix", "APPLY", { timeoutMs: TIMEOUT_MS });
        } catch (err) {
          if (err instanceof XspliceError && err.errno === "EBUSY") return;
          throw err;
        }
        throw new Error("APPLY of a function a thread is parked in was not refused");
      };
      return {
        name: `EBUSY for a parked thread, timeoutMs ${TIMEOUT_MS}`,
        stats: stats(await sample(refuse, 30, 2)),
        note: "from the call to the refusal, session held",
      };
    } finally {
      s.close();
    }
  } finally {
    await t.kill();
  }
}

const bench: Bench = async () => [await stackWalk(), await ebusyParked()];

export default bench;
