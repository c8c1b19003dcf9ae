/** Entry point of the agent's exec gate process (`gate.ts`); argv: the mounts to gate, or none for all. */
import { runGate } from "./gate.ts";

const mounts = process.argv.slice(2);
runGate(mounts.length > 0 ? mounts : undefined);
