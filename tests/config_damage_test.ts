/**
 * One damaged config file never bricks a store: every config version is kept
 * twice (`system.config/<seq>.json` and `system.state/config/<seq>.json`), a
 * writable open heals a damaged copy from the other, and a rebuild writes a
 * new version from the defaults when no copy survives (docs/FORMAT.md §6,
 * docs/OPERATIONS.md "A damaged config"). Real CLI processes, as an operator
 * would meet it.
 */

import assert from "node:assert/strict";
import { capsa, capsaOk } from "./processes.ts";

const PRIMARY = "system.config/0000000001.json";
const REPLICA = "system.state/config/0000000001.json";

async function sandbox() {
  const dir = await Deno.makeTempDir({ prefix: "capsa-config-damage-" });
  const store = `${dir}/store`;
  await capsaOk(["init", store, "--kit", `${dir}/kit.txt`, "--host-dir", `${dir}/h0`]);
  await capsaOk(["put", store, "ns", "a.txt", "--host-dir", `${dir}/h0`], {
    stdin: new TextEncoder().encode("survives"),
  });
  let hosts = 0;
  return {
    dir,
    store,
    /** A fresh host directory: nothing cached. */
    host: () => `${dir}/host-${++hosts}`,
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
}

async function flipByte(path: string, at: number): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[at]! ^= 0x20;
  await Deno.writeFile(path, bytes);
}

Deno.test("capsa on a store whose config file has a flipped bit: reads work, a writable open heals it", async () => {
  const s = await sandbox();
  try {
    const sound = await Deno.readFile(`${s.store}/${PRIMARY}`);
    await flipByte(`${s.store}/${PRIMARY}`, 40);
    const host = s.host();
    const read = await capsaOk(["get", s.store, "ns", "a.txt", "--host-dir", host]);
    assert.equal(read.stdout, "survives");
    // `get` opens read-only and writes nothing into the store; a writing command heals.
    await capsaOk(["snapshot", s.store, "--host-dir", host]);
    assert.deepEqual(
      await Deno.readFile(`${s.store}/${PRIMARY}`),
      sound,
      "healed from the replica",
    );
    const status = JSON.parse(
      (await capsaOk(["status", s.store, "--json", "--host-dir", host])).stdout,
    );
    assert.equal(status.state, "Ready", JSON.stringify(status.problems));
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa rebuild --source full-scan --force on a store whose config file was deleted restores it", async () => {
  const s = await sandbox();
  try {
    await Deno.remove(`${s.store}/${PRIMARY}`);
    const host = s.host();
    await capsaOk(["rebuild", s.store, "--source", "full-scan", "--force", "--host-dir", host]);
    assert.ok((await Deno.stat(`${s.store}/${PRIMARY}`)).isFile);
    assert.equal(
      (await capsaOk(["get", s.store, "ns", "a.txt", "--host-dir", host])).stdout,
      "survives",
    );
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa rebuild on a store where no copy of any config version survives writes one from the defaults", async () => {
  const s = await sandbox();
  try {
    await flipByte(`${s.store}/${PRIMARY}`, 40);
    await Deno.remove(`${s.store}/${REPLICA}`);
    const broken = await capsa(["get", s.store, "ns", "a.txt", "--host-dir", s.host()]);
    assert.equal(broken.code, 5, `a store without a config is corrupted: ${broken.stderr}`);
    assert.match(broken.stderr, /rebuild/);
    const host = s.host();
    const rebuilt = await capsaOk(["rebuild", s.store, "--host-dir", host]);
    assert.match(rebuilt.stderr + rebuilt.stdout, /config_restored|default settings/);
    assert.ok((await Deno.stat(`${s.store}/system.config/0000000002.json`)).isFile);
    assert.equal(
      (await capsaOk(["get", s.store, "ns", "a.txt", "--host-dir", host])).stdout,
      "survives",
    );
    const status = JSON.parse(
      (await capsaOk(["status", s.store, "--json", "--host-dir", s.host()])).stdout,
    );
    assert.equal(status.config.seq, 2);
  } finally {
    await s.dispose();
  }
});
