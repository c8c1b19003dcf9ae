#!/usr/bin/env node
// Builds dist/ from src/: `dist/cli.cjs`, the command line as one script, and
// `dist/index.js` + `dist/types/` (declarations), the library. Run by `npm ci`
// (the `prepare` script), by `npm test` before the tests and by `npm run build`.
// One bundle so that a start reads and compiles one file instead of resolving
// a hundred; koffi stays outside it (a native addon, loaded only on first use).
// The command line is a CommonJS script rather than an ES module because Node 20
// can keep V8's compiled code of a script (bin/xsplice.js, `vm.Script` cachedData)
// and has no such cache for modules; `import.meta.url` is its file's URL there too.
// `--no-types` skips the declarations (the tests, the demo and the CLI do not need
// them), so that a run after an edit of src/ never meets a stale bundle.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const types = !process.argv.includes("--no-types");

// Node builtins whose loading is most of what a start costs beyond `node -e 0` (crypto
// brings OpenSSL's bindings, child_process brings net and streams): the bundle binds them
// on first call. Every value the sources import from them is a function, so a forwarding
// function per export keeps `import { createHash } from "node:crypto"` as written.
const LAZY_BUILTINS = ["node:crypto", "node:zlib", "node:child_process"];
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    const filter = new RegExp(`^(${LAZY_BUILTINS.join("|")})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === "lazy-builtin"
        ? { path: args.path, external: true }
        : { path: args.path, namespace: "lazy-builtin" },
    );
    b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, async (args) => {
      const real = await import(args.path);
      const names = Object.keys(real).filter((k) => k !== "default" && typeof real[k] === "function");
      const lines = [
        'import { createRequire } from "node:module";',
        "let m;",
        `const get = () => (m ??= createRequire(import.meta.url)(${JSON.stringify(args.path)}));`,
        ...names.map((n) => `export function ${n}(...a) { return get().${n}(...a); }`),
      ];
      return { contents: lines.join("\n"), loader: "js", resolveDir: root };
    });
  },
};
const common = {
  plugins: [lazyBuiltins],
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["koffi"],
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
};
await Promise.all([
  build({
    ...common,
    entryPoints: { cli: "src/cli/main.ts" },
    outdir: dist,
    outExtension: { ".js": ".cjs" },
    format: "cjs",
    define: {
      "import.meta.url": "__xsplice_import_meta_url",
      "import.meta.resolve": "__xsplice_import_meta_resolve",
    },
    banner: {
      js: [
        '"use strict";', // first, so that the script is strict as the ES modules it was made of
        'var __xsplice_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
        'var __xsplice_import_meta_resolve = (s) => require("node:url").pathToFileURL(require.resolve(s)).href;',
      ].join("\n"),
    },
  }),
  build({
    ...common,
    // The agent's child processes (src/agent/child-entry.ts) start from bundles of their own.
    entryPoints: {
      "agent-worker": "src/agent/_worker.ts",
      "agent-gate": "src/agent/_gate-main.ts",
    },
    outdir: dist,
  }),
  build({ ...common, entryPoints: { index: "src/index.ts" }, outdir: dist }),
]);
// Compiled code bin/xsplice.js kept for the previous bundle (V8 would reject it anyway).
rmSync(join(root, "node_modules", ".cache", "xsplice"), { recursive: true, force: true });
rmSync(join(dist, "cli.js"), { force: true });
rmSync(join(dist, "cli.js.map"), { force: true });
if (types) {
  rmSync(join(dist, "types"), { recursive: true, force: true });
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
