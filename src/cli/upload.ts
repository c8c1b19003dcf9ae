/** `xsplice upload PID NAME FILE` (SPEC §2, §10): load and check a payload in a live process. */
import { readFileSync } from "node:fs";
import { checkPid, upload } from "../core/api.ts";
import { XspliceError } from "../errors.ts";
import { DEFAULT_MAX_PAYLOAD_SIZE, keyIdOf, type TrustedKey } from "../payload/index.ts";
import type { Command, CommandInput } from "./command.ts";
import { readPayloadFile } from "./inspect.ts";

/** SPEC §10 error lines name the operation, the payload and the process: `upload fix-1 in 4242`. */
function describeOp(op: string, pid: string | undefined, name: string | undefined): string {
  return [op, name, pid === undefined ? undefined : `in ${pid}`].filter((x) => x !== undefined).join(" ");
}

function trustedKeys(input: CommandInput): TrustedKey[] {
  const v = input.values["trusted-key"];
  const files = v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
  return files.map((file) => {
    let pem: string;
    try {
      pem = readFileSync(file, "utf8");
    } catch (err) {
      throw new XspliceError("ENOENT", `cannot read trusted key ${file}`, {}, { cause: err });
    }
    try {
      return { keyId: keyIdOf(pem), key: pem };
    } catch (err) {
      throw new XspliceError("EINVAL", `trusted key ${file} is not a PEM key`, {}, { cause: err });
    }
  });
}

function maxSize(input: CommandInput): number {
  const v = input.values["max-size"];
  if (typeof v !== "string") return DEFAULT_MAX_PAYLOAD_SIZE;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new XspliceError("EINVAL", `--max-size ${v} is not a positive integer`);
  return n;
}

/** `xsplice upload`. */
export const uploadCommand: Command = {
  name: "upload",
  usage: "upload PID NAME FILE [--require-signature] [--trusted-key PEM]...",
  summary: "load and check a payload in a process (state CHECKED)",
  options: {
    "require-signature": { type: "boolean" },
    "trusted-key": { type: "string", multiple: true },
    "max-size": { type: "string" },
  },
  positionals: [3, 3],
  describe: (p) => describeOp("upload", p[0], p[1]),
  async run(input) {
    const [pidText, name, file] = input.positionals as [string, string, string];
    const pid = checkPid(pidText);
    const limit = maxSize(input);
    const bytes = readPayloadFile(file, limit);
    const rec = await upload(pid, name, bytes, {
      maxSize: limit,
      requireSignature: input.values["require-signature"] === true,
      trustedKeys: trustedKeys(input),
    });
    const json = {
      pid,
      name: rec.name,
      state: rec.state,
      rc: rec.rc,
      buildId: rec.buildId,
      object: rec.object.path,
      regions: rec.regions,
      funcs: rec.funcs.map((f) => ({ name: f.name, oldAddr: f.oldAddr, newAddr: f.newAddr })),
    };
    const regions = rec.regions.map((r) => `${r.kind} ${r.addr}+${r.size}`).join(", ");
    return {
      json,
      text: `uploaded ${rec.name} into ${pid}: ${rec.funcs.length} function(s) for ${rec.object.path}; ${regions}; state ${rec.state}`,
    };
  },
};
