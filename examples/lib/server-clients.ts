/**
 * The example server's clients as the demo and the tests drive them: one run
 * of the exploit, decoded, and the load generator's report lines, parsed.
 */
import { execFile } from "node:child_process";

/** One run of `exploit --port N --len L`. */
export interface ExploitResult {
  /** Exit status: 0 leaked, 3 refused, 1 connection problem. */
  status: number;
  /** The server's status line, e.g. `OK 200` or `ERR length 200 exceeds ...`. */
  reply: string;
  /** The bytes the server sent after `OK` (empty when it refused). */
  data: Buffer;
  /** The exploit's stdout as printed. */
  output: string;
}

/** Undo the exploit's `\xNN` escaping. */
function decodeEscapes(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "x") {
      bytes.push(Number.parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes);
}

/** Run the exploit once against 127.0.0.1:`port`. */
export function runExploit(exe: string, port: number, len = 200): Promise<ExploitResult> {
  return new Promise((resolve) => {
    execFile(exe, ["--port", String(port), "--len", String(len)], { timeout: 10_000 }, (err, stdout) => {
      const status = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      const reply = /^reply: (.*)$/m.exec(stdout)?.[1] ?? "";
      const data = decodeEscapes(/^data: (.*)$/m.exec(stdout)?.[1] ?? "");
      resolve({ status, reply, data, output: stdout });
    });
  });
}

/**
 * A short, readable rendering of leaked bytes: runs of NULs collapsed
 * (`\0×62`), other unprintable bytes as `\xNN`, cut at `max` characters.
 */
export function showBytes(data: Buffer, max = 120): string {
  let out = "";
  for (let i = 0; i < data.length; ) {
    const b = data[i]!;
    if (b === 0) {
      let j = i;
      while (j < data.length && data[j] === 0) j++;
      out += j - i > 1 ? `\\0×${j - i}` : "\\0";
      i = j;
      continue;
    }
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
    i++;
  }
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

/** The load generator's counters (`progress` and `done` lines). */
export interface LoadCounts {
  ok: number;
  failed: number;
}

/** The load generator's final report. */
export interface LoadReport extends LoadCounts {
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** The first failure, when there was one. */
  firstError?: string;
}

/** Parse a `progress ok=N failed=M` or `done ok=...` line; undefined for any other line. */
export function parseCounts(line: string): LoadCounts | undefined {
  const m = /^(?:progress|done) ok=(\d+) failed=(\d+)/.exec(line);
  return m ? { ok: Number(m[1]), failed: Number(m[2]) } : undefined;
}

/** Parse the `done ...` line (and a following `first_error=` line, if any) of the load generator. */
export function parseDone(lines: readonly string[]): LoadReport | undefined {
  const done = lines.find((l) => l.startsWith("done "));
  if (!done) return undefined;
  const num = (k: string) => Number(new RegExp(`\\b${k}=(\\d+)`).exec(done)?.[1] ?? Number.NaN);
  const report: LoadReport = {
    ok: num("ok"),
    failed: num("failed"),
    p50Us: num("p50_us"),
    p99Us: num("p99_us"),
    maxUs: num("max_us"),
  };
  const err = lines.find((l) => l.startsWith("first_error="));
  if (err) report.firstError = err.slice("first_error=".length);
  return report;
}
