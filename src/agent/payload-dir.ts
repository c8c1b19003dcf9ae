/**
 * A directory of payloads, as `xsplice run --payloads DIR` and the agent
 * keep them (SPEC §14): every regular file whose name ends in `.xsplice` is
 * a payload, named by its base name without the extension (as `load` names
 * one). Each is read under the upload policy (SPEC §9: size, signature)
 * before any process is touched; one that fails is reported by file.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { checkName, checkSignature, checkSize } from "../core/load/validate.ts";
import { XspliceError } from "../errors.ts";
import { hexBytes } from "../hex.ts";
import { readPayloadFile } from "../payload/file.ts";
import { readPayload } from "../payload/index.ts";
import type { JobPolicy } from "./jobs.ts";

/** The extension of payload files in a payload directory. */
export const PAYLOAD_EXT = ".xsplice";

/** A payload file of the directory, read and checked. */
export interface DirPayload {
  file: string;
  name: string;
  bytes: Uint8Array;
  /** Build-id of the object it patches (hex). */
  target: string;
  /** The name the agent gives it in a process's registry: `NAME@ID12` (`registryName`). */
  regName: string;
  /** The file's identity when read, to notice a replacement (`dev:ino:mtime:size`). */
  stamp: string;
  /** Where a library target may be found on disk (`.modinfo` `target-file=`, `target-soname=`). */
  libraryFile?: string;
  librarySoname?: string;
}

/**
 * The registry name of payload `name` with build-id `id` as the agent loads
 * it: `NAME@` and the first 12 hex digits of the id. The name says which
 * file it came from and which content, so the registry of each process alone
 * tells a restarted agent what it did (SPEC §14): an entry of this form whose
 * file is gone or changed is the agent's to revert, replace or unload.
 */
export function registryName(name: string, id: string): string {
  return `${name}@${id.slice(0, 12).padEnd(12, "0")}`;
}

/** The file name part of an agent-managed registry name, or undefined for a name the agent does not own. */
export function managedBase(regName: string): string | undefined {
  return /^(.+)@[0-9a-f]{12}$/.exec(regName)?.[1];
}

/** A file of the directory that is not an acceptable payload, and why. */
export interface DirRejection {
  file: string;
  error: XspliceError;
}

/** The payload files of `dir`, by name order (not read). */
export function payloadFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new XspliceError(
      code === "ENOENT" ? "ENOENT" : "EACCES",
      `cannot read payload directory ${dir}: ${code}`,
    );
  }
  return names
    .filter((n) => n.endsWith(PAYLOAD_EXT) && !n.startsWith("."))
    .sort()
    .map((n) => join(dir, n));
}

/** The identity of a file now, or undefined when it is gone or not a regular file. */
export function fileStamp(file: string): string | undefined {
  try {
    const st = statSync(file, { bigint: true });
    return st.isFile() ? `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}` : undefined;
  } catch {
    return undefined;
  }
}

/** Read and check one payload file under `policy`; an unacceptable one throws a one-line `XspliceError`. */
export function readDirPayload(file: string, policy: JobPolicy): DirPayload {
  const name = basename(file, extname(file));
  const stamp = fileStamp(file);
  if (stamp === undefined) throw new XspliceError("ENOENT", `${file}: not a regular file`);
  checkName(name);
  const bytes = readPayloadFile(file, policy.maxSize);
  checkSize(bytes, policy.maxSize);
  checkSignature(bytes, policy);
  const payload = readPayload(bytes, { maxSize: policy.maxSize });
  const target = hexBytes(payload.target);
  return {
    file,
    name,
    bytes,
    target,
    stamp,
    regName: registryName(name, hexBytes(payload.buildId)),
    libraryFile: payload.metadata["target-file"],
    librarySoname: payload.metadata["target-soname"],
  };
}

/** Every payload of `dir`, and the files refused (each with its error). */
export function readPayloadDir(
  dir: string,
  policy: JobPolicy,
): { payloads: DirPayload[]; rejected: DirRejection[] } {
  const payloads: DirPayload[] = [];
  const rejected: DirRejection[] = [];
  for (const file of payloadFiles(dir)) {
    try {
      payloads.push(readDirPayload(file, policy));
    } catch (err) {
      if (!(err instanceof XspliceError)) throw err;
      rejected.push({ file, error: new XspliceError(err.errno, `${file}: ${err.message}`, err.where) });
    }
  }
  return { payloads, rejected };
}
