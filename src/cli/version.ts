/** The version `xsplice --version` prints: the package's own (SPEC §10). */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The `version` of the nearest package.json named `xsplice` above this module, read only
 * when asked: this module runs from `src/cli/` or bundled in `dist/` (scripts/build.mjs),
 * and an installed copy keeps its package.json beside `dist/`.
 */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "xsplice" && typeof pkg.version === "string") return pkg.version;
    } catch {}
    const up = dirname(dir);
    if (up === dir) return "unknown";
    dir = up;
  }
}
