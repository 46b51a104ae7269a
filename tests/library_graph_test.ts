/**
 * What a library user's program loads: importing `mod.ts` and the localfs
 * driver must not bring the AWS SDK into the module graph (40 MB a user of
 * local stores would download and bundle for nothing); importing the S3
 * entry point does, and then registries open `s3://` Locations.
 */

import assert from "node:assert/strict";
import { ROOT } from "./processes.ts";

/** Every specifier of the module graph of a program made of `source`. */
async function graphOf(source: string): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "capsa-graph-" });
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, source);
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${ROOT}/deno.json`, `${dir}/main.ts`],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const info = JSON.parse(new TextDecoder().decode(r.stdout)) as {
      modules: Array<{ specifier: string; dependencies?: Array<{ specifier: string }> }>;
    };
    const out = new Set<string>();
    for (const m of info.modules) {
      out.add(m.specifier);
      for (const d of m.dependencies ?? []) out.add(d.specifier);
    }
    return [...out];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const aws = (specifiers: string[]) =>
  specifiers.filter((s) => /^npm:\/?@aws-sdk\/|^@aws-sdk\/|\/drivers\/s3\//.test(s));

Deno.test("deno info of a program importing mod.ts and drivers/localfs shows no @aws-sdk", async () => {
  const graph = await graphOf(
    `import { createLocationRegistry, openStore } from "${ROOT}/mod.ts";\n` +
      `import { openLocalFs } from "${ROOT}/drivers/localfs/mod.ts";\n` +
      `console.log(typeof createLocationRegistry, typeof openStore, typeof openLocalFs);\n`,
  );
  assert.ok(graph.some((s) => s.endsWith("/mod.ts")), graph.join("\n"));
  assert.deepEqual(aws(graph), []);
  // The S3 entry point is where the SDK comes from.
  const s3 = await graphOf(`import "${ROOT}/drivers/s3/mod.ts";\n`);
  assert.ok(aws(s3).some((s) => s.includes("@aws-sdk/client-s3")), s3.join("\n"));
});

Deno.test("an s3:// Location opens once the S3 entry point is imported, and says so before", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-graph-" });
  try {
    const program = (withS3: boolean) =>
      (withS3 ? `import "${ROOT}/drivers/s3/mod.ts";\n` : "") +
      `import { createLocationRegistry } from "${ROOT}/mod.ts";\n` +
      `try {\n` +
      `  const d = await createLocationRegistry().open("s3://bucket/p?endpoint=http://127.0.0.1:9");\n` +
      `  console.log("opened", d.location);\n` +
      `  await d.close();\n` +
      `} catch (e) { console.log("refused", (e as { code?: string }).code, (e as Error).message); }\n`;
    const run = async (withS3: boolean) => {
      await Deno.writeTextFile(`${dir}/main.ts`, program(withS3));
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--config", `${ROOT}/deno.json`, "-A", `${dir}/main.ts`],
        env: { NO_COLOR: "1", AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
      return new TextDecoder().decode(r.stdout);
    };
    assert.match(
      await run(false),
      /^refused invalid_argument s3: Locations need the S3 driver, which is not loaded: import "@capsa\/capsa\/drivers\/s3"/,
    );
    // With the driver loaded, the S3 driver itself answers (no server listens on port 9).
    assert.match(await run(true), /^refused transient S3 put of .*ECONNREFUSED/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
