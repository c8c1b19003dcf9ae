/**
 * SIGKILL of xsplice at seeded random moments (issue #11, SPEC §8): victims
 * (library users, victim.ts) run random uploads, applies, reverts, replaces
 * and unloads of three payloads — one with load/unload and pre/post hooks —
 * on one long-lived target, and are killed either after a random delay or at
 * a random pause point (`XSPLICE_TEST_PAUSE_AT=@K`: the K-th point the loop
 * passes, so in whatever state the random operations reached). Every tenth
 * round uses a fresh process, so that the kills also land in a first upload
 * (registry creation and the inject page's bootstrap). After each kill a
 * fresh run recovers and `verifyTarget` checks the target: wholly applied or
 * wholly not against the ELF bytes, hooks' state exactly once, no stopped or
 * traced thread, no leaked mapping or descriptor, the target's results.
 *
 * XSPLICE_CRASH_KILLS sets the rounds (default 860; with crash-phases' ~120
 * and crash-exec's, over 1,000 kills a suite run); XSPLICE_TEST_SEED replays
 * a run (the seed is printed).
 */
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { payloadFiles } from "../../fixtures/hardening/drive.ts";
import {
  hardeningTarget,
  payloadSet,
  type Rig,
  startRig,
  VictimPool,
  verifyTarget,
} from "../../fixtures/hardening/rig.ts";
import { nodeCommand } from "../../helpers/bundle.ts";
import { prng } from "../../helpers/prng.ts";

const victim = fileURLToPath(new URL("../../fixtures/hardening/victim.ts", import.meta.url));
const ROUNDS = Number(process.env["XSPLICE_CRASH_KILLS"] ?? 860);
const SEED = Number(process.env["XSPLICE_TEST_SEED"] ?? Date.now() % 1_000_000);

describe("xsplice SIGKILLed at random moments of random operations", { timeout: 900_000 }, () => {
  const exe = hardeningTarget();
  const payloads = payloadSet(exe);
  let pool: VictimPool;
  let rig: Rig | undefined;

  before(async () => {
    pool = new VictimPool(await nodeCommand(victim));
  });
  after(async () => {
    await pool?.close();
    await rig?.t.kill();
  });

  it(`${ROUNDS} kills, by seeded delay or at a seeded pause point`, async () => {
    console.log(`# seed ${SEED} (XSPLICE_TEST_SEED=${SEED} replays the kill points)`);
    const rand = prng(SEED);
    const t0 = performance.now();
    const seen = new Map<string, number>();
    const points = new Map<string, number>();
    let recovered = 0;
    let fresh = 0;
    const spent = { take: 0, run: 0, check: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const freshRound = round % 10 === 9;
      if (freshRound || !rig) {
        await rig?.t.kill();
        rig = await startRig(exe, payloads);
        if (freshRound) fresh++;
      }
      const ta = performance.now();
      const v = await pool.take();
      const tb = performance.now();
      spent.take += tb - ta;
      const byPoint = rand() < 0.5;
      // A first upload is some 30 points long; an operation passes 5-10.
      const k = 1 + Math.floor(rand() * (freshRound ? 40 : 30));
      const delay = rand() * 25;
      const label = `round ${round} (seed ${SEED}) ${byPoint ? `at @${k}` : `after ${delay.toFixed(1)} ms`}`;
      try {
        v.send({
          op: "loop",
          pid: rig.t.pid,
          files: payloadFiles(payloads),
          seed: Math.floor(rand() * 2 ** 31),
          pause: byPoint ? `@${k}` : undefined,
        });
        if (byPoint) {
          let r = await v.next();
          while (r.kind === "out" && r.line === "go") r = await v.next();
          if (r.kind !== "pause") throw new Error(`${label}: victim said ${r.line}`);
          const point = r.line.split(" ")[1]!;
          points.set(point, (points.get(point) ?? 0) + 1);
        } else {
          const r = await v.next();
          if (r.line !== "go") throw new Error(`${label}: victim said ${r.line}`);
          const end = performance.now() + delay;
          while (performance.now() < end) {
            // busy-wait: timers are coarser than the operations
          }
        }
      } catch (err) {
        throw new Error(`${label}: ${(err as Error).message}`, { cause: err });
      } finally {
        await v.kill();
      }
      const tc = performance.now();
      spent.run += tc - tb;
      const verdict = await verifyTarget(rig, label);
      spent.check += performance.now() - tc;
      if (verdict.opened.recovered) recovered++;
      seen.set(verdict.key, (seen.get(verdict.key) ?? 0) + 1);
    }
    const ms = Math.round(performance.now() - t0);
    console.log(
      `# crash-random: ${ROUNDS} kills (${fresh} on fresh processes) in ${ms} ms, ${(ms / ROUNDS).toFixed(0)} ms a kill; journals recovered ${recovered}`,
    );
    console.log(
      `# time: waiting for a victim ${Math.round(spent.take)} ms, running until the kill ${Math.round(spent.run)} ms, checking ${Math.round(spent.check)} ms`,
    );
    console.log(`# applied stacks seen: ${[...seen].map(([k, n]) => `${k} ${n}`).join(", ")}`);
    console.log(`# pause points killed at: ${[...points].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  });
});
