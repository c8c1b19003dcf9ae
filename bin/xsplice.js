#!/usr/bin/env node
// Entry point of the `xsplice` command. The sources are TypeScript run through
// tsx's loader, so a fresh clone needs only `npm ci`, no build step.
import { register } from "tsx/esm/api";

// Other xsplice runs recognise the holder of a seized target by this name
// (the tracer's comm) and wait for it instead of failing (src/core/session.ts).
process.title = "xsplice";
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
