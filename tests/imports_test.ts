/**
 * Keeps the layers of docs/DESIGN.md §2 one-way: every production module may
 * import only from its own layer or a lower one.
 *
 *   errors.ts, layout.ts, pool.ts  ←  format/  ←  drivers/  ←  index/  ←  store/
 *     ←  maintenance/  ←  cli/, http/
 *
 * The test reads the import and export specifiers of every non-test `.ts`
 * file (static `import … from`, `export … from`, and `import("…")`), resolves
 * the relative ones, and fails naming each arrow that points upwards. JSDoc
 * examples are not code and are not read (comments are stripped first).
 */

import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/** The layers, lowest first; a module may import from its layer or any lower one. */
const LAYERS: readonly (readonly string[])[] = [
  ["errors.ts", "layout.ts", "pool.ts"],
  ["format/"],
  ["drivers/"],
  ["index/"],
  ["store/"],
  ["maintenance/"],
  ["cli/", "http/", "mod.ts", "cli.ts"],
];

/** Folders that are not part of the library (tests, benchmarks, tools). */
const OUTSIDE = ["tests/", "bench/", "tools/", "dist/", "node_modules/", "docs/", ".ci/"];

function layerOf(path: string): number | undefined {
  const i = LAYERS.findIndex((names) =>
    names.some((n) => n.endsWith("/") ? path.startsWith(n) : path === n)
  );
  return i < 0 ? undefined : i;
}

function stripComments(src: string): string {
  // Block comments (JSDoc included), then line comments not inside a string on that line.
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

function specifiers(src: string): string[] {
  const code = stripComments(src);
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^"';]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

async function productionFiles(dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(join(ROOT, dir))) {
    const rel = dir === "" ? e.name : `${dir}/${e.name}`;
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory) {
      if (OUTSIDE.includes(`${rel}/`)) continue;
      files.push(...await productionFiles(rel));
    } else if (
      e.isFile && rel.endsWith(".ts") && !rel.endsWith("_test.ts") && !rel.endsWith(".d.ts")
    ) {
      files.push(rel);
    }
  }
  return files.sort();
}

Deno.test("every production module imports only from its own layer or a lower one", async () => {
  const files = await productionFiles();
  assert.ok(files.length > 40, `found only ${files.length} production files`);
  const upward: string[] = [];
  const unplaced: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    if (from === undefined) {
      unplaced.push(file);
      continue;
    }
    for (const spec of specifiers(await Deno.readTextFile(join(ROOT, file)))) {
      if (!spec.startsWith(".")) continue; // npm:, node:, bare names from the import map
      const target = relative(ROOT, normalize(join(ROOT, dirname(file), spec)));
      if (OUTSIDE.some((o) => target.startsWith(o))) {
        upward.push(`${file} imports ${target} (outside the library)`);
        continue;
      }
      const to = layerOf(target);
      if (to === undefined) unplaced.push(`${target} (imported by ${file})`);
      else if (to > from) upward.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(unplaced, [], "modules outside every layer");
  assert.deepEqual(upward, [], "imports that point upwards");
});

Deno.test("the import reader sees static, re-export and dynamic imports but not JSDoc", () => {
  const src = [
    `/** @example import { x } from "../store/store.ts"; */`,
    `import { a } from "./a.ts";`,
    `import type { B } from "../b.ts";`,
    `export { c } from "./c.ts";`,
    `export * from "./d.ts";`,
    `const { e } = await import("./e.ts");`,
    `import "./side.ts";`,
    `import {`,
    `  f,`,
    `  g,`,
    `} from "./fg.ts";`,
  ].join("\n");
  assert.deepEqual(
    specifiers(src).sort(),
    ["../b.ts", "./a.ts", "./c.ts", "./d.ts", "./e.ts", "./fg.ts", "./side.ts"],
  );
});
