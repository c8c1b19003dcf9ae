/**
 * For child scripts that idle or loop until a test kills them (a tracer
 * fixture, a holder): if the test dies first, without its `finally`, nothing
 * else would end them. They end themselves once their parent is gone (they
 * are reparented), so a crashed test run leaves no tracer holding a process.
 */
const parent = process.ppid;

/** True once the process that started this one has gone. */
export function parentGone(): boolean {
  return process.ppid !== parent;
}

/** Idle until killed, or exit (status 1) once the parent has gone. */
export function idleUntilKilled(): void {
  setInterval(() => {
    if (parentGone()) process.exit(1);
  }, 100);
}
