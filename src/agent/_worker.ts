/**
 * A fan-out worker process (`fanout.ts`): takes jobs over the IPC channel one
 * at a time and runs each synchronously on its main thread, where ptrace
 * must stay (SPEC §12). It names itself `xsplice`, so that another xsplice
 * run that finds a target held by it waits instead of failing (`session.ts`).
 * It exits when its parent closes the channel, so a killed parent leaves no
 * worker behind.
 */
import { whenParentGone } from "./child-entry.ts";
import { type Job, runJob } from "./jobs.ts";

process.title = "xsplice";
process.on("message", (msg: { id: number; job: Job }) => {
  void runJob(msg.job).then((outcome) => process.send?.({ id: msg.id, outcome }));
});
whenParentGone(() => process.exit(0));
