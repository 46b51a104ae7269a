/**
 * capsa as a separate Deno project uses it (issue #15): the throwaway
 * project in tests/fixtures/user_project (its own deno.json mapping
 * `@capsa/capsa` to the package by path) is copied elsewhere, its paths
 * pointed at this repository, and type-checked and run in real processes:
 * the README's library example, then a rebuild with the maintenance API.
 * `deno info` of a program of that project importing `mod.ts` and the
 * localfs driver shows no `@aws-sdk` module.
 */

import assert from "node:assert/strict";
import { ROOT } from "./processes.ts";

const FIXTURE = `${ROOT}/tests/fixtures/user_project`;
const dec = new TextDecoder();

/** The fixture copied into a temporary directory, its import map made absolute. */
async function copyProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "capsa-user-project-" });
  const config = JSON.parse(await Deno.readTextFile(`${FIXTURE}/deno.json`)) as {
    imports: Record<string, string>;
  };
  for (const [name, path] of Object.entries(config.imports)) {
    config.imports[name] = new URL(path, `file://${FIXTURE}/`).href;
  }
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(config, null, 2));
  await Deno.copyFile(`${FIXTURE}/main.ts`, `${dir}/main.ts`);
  return dir;
}

async function deno(dir: string, args: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

Deno.test("a separate project type-checks and runs the README's library example and a rebuild", async () => {
  const dir = await copyProject();
  try {
    // The README's example is in the fixture word for word.
    const readme = await Deno.readTextFile(`${ROOT}/README.md`);
    const example =
      /```ts\n(import assert[^\n]*\nimport { initStore } from "@capsa\/capsa";[\s\S]*?)\n```\n/
        .exec(readme)?.[1];
    assert.ok(example, "the README's library example");
    const main = await Deno.readTextFile(`${dir}/main.ts`);
    for (const line of example.split("\n").filter((l) => l.trim() !== "")) {
      if (line.startsWith("await Deno.remove(dir")) continue; // moved to the end
      assert.ok(main.includes(line), `main.ts holds the README's line: ${line}`);
    }
    const check = await deno(dir, ["check", "--config", `${dir}/deno.json`, "main.ts"]);
    assert.equal(check.code, 0, check.stderr);
    const run = await deno(dir, [
      "run",
      "--no-prompt",
      "--config",
      `${dir}/deno.json`,
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "main.ts",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "user project: ok\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno info of the project's import of mod.ts + drivers/localfs shows no @aws-sdk module", async () => {
  const dir = await copyProject();
  try {
    await Deno.writeTextFile(
      `${dir}/local.ts`,
      `import { openStore } from "@capsa/capsa";\n` +
        `import { openLocalFs } from "@capsa/capsa/drivers/localfs";\n` +
        `console.log(typeof openStore, typeof openLocalFs);\n`,
    );
    const info = await deno(dir, ["info", "--json", "--config", `${dir}/deno.json`, "local.ts"]);
    assert.equal(info.code, 0, info.stderr);
    const graph = JSON.parse(info.stdout) as {
      modules: Array<{ specifier: string; dependencies?: Array<{ specifier: string }> }>;
      npmPackages?: Record<string, unknown>;
    };
    const specifiers = graph.modules.flatMap((m) => [
      m.specifier,
      ...(m.dependencies ?? []).map((d) => d.specifier),
    ]);
    assert.ok(specifiers.some((s) => s.endsWith("/drivers/localfs/mod.ts")), "the graph is real");
    assert.deepEqual(specifiers.filter((s) => s.includes("@aws-sdk")), []);
    assert.deepEqual(
      Object.keys(graph.npmPackages ?? {}).filter((p) => p.includes("@aws-sdk")),
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
