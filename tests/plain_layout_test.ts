/**
 * A store on `localfs` is readable to an operator: every file under the
 * Location is at a plain path (its key, `docs/FORMAT.md` §1), and the paths
 * the format names are there.
 */

import assert from "node:assert/strict";
import { initStore, openStore } from "../mod.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import {
  CONFIG_CURRENT_KEY,
  configVersionKey,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  HOST_DESCRIPTOR_KEY,
  looseBlobKey,
  PACK_FANOUT_CHARS,
  parsePackKey,
  SNAPSHOT_PREFIX,
} from "../layout.ts";
import { isUlid } from "../format/ulid.ts";
import { body } from "./data.ts";

const PLAIN_PATH = /^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/;

/** Every regular file below `dir`, as `/`-separated paths relative to it (symlinks fail the test). */
async function files(dir: string, base = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = base === "" ? entry.name : `${base}/${entry.name}`;
    assert.ok(!entry.isSymlink, `${path} is a symlink`);
    if (entry.isDirectory) out.push(...await files(`${dir}/${entry.name}`, path));
    else out.push(path);
  }
  return out.sort();
}

Deno.test("a store on localfs is plain files at plain paths: packs/<prefix>/<id>, system.config/current, store.json", async () => {
  const parent = await Deno.makeTempDir({ prefix: "capsa-plain-" });
  try {
    const location = await openLocalFs(`${parent}/store`, { create: true });
    const host = await openLocalFs(`${parent}/host`, { create: true });
    const { store } = await initStore(location, {
      hostStorage: host,
      chunking: { min: 16 * 1024, avg: 32 * 1024, max: 64 * 1024 },
      config: { inlineThreshold: 64, chunkThreshold: 200 * 1024, packTargetSize: 64 * 1024 },
    });
    const artifacts = new Map<string, Uint8Array>([
      ["inline.txt", body(1, 10)], // inside its manifest
      ["small.bin", body(2, 1000)], // one blob in a pack
      ["loose.bin", body(3, 150 * 1024)], // one blob larger than a pack: loose
      ["large.bin", body(4, 1024 * 1024)], // chunked, over several packs
    ]);
    const infos = new Map<string, { digest: string }>();
    for (const [key, bytes] of artifacts) infos.set(key, await store.put("docs", key, bytes));
    const snapshotKey = await store.snapshotIndex();
    await store.close();
    await location.close();
    await host.close();

    const onLocation = await files(`${parent}/store`);
    for (const path of onLocation) assert.match(path, PLAIN_PATH, path);
    for (
      const key of [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, CONFIG_CURRENT_KEY, configVersionKey(1)]
    ) {
      assert.ok(onLocation.includes(key), `${key} is there`);
    }
    assert.deepEqual(
      [DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, CONFIG_CURRENT_KEY, configVersionKey(1)],
      [
        "store.json",
        "system.state/descriptor/store.json",
        "system.config/current",
        "system.config/0000000001.json",
      ],
    );

    const packs = onLocation.filter((p) => p.startsWith("packs/"));
    assert.ok(packs.length >= 2, `${packs.length} packs`);
    for (const path of packs) {
      const m = /^packs\/([0-9a-z]+)\/([0-9a-z]+)$/.exec(path);
      assert.ok(m, `${path} is packs/<prefix>/<id>`);
      assert.equal(m[1]!.length, PACK_FANOUT_CHARS);
      assert.ok(isUlid(m[2]) && m[2]!.startsWith(m[1]!), path);
      assert.equal(parsePackKey(path), m[2]);
    }

    const loose = looseBlobKey(infos.get("loose.bin")!.digest);
    assert.match(loose, /^blobs\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    assert.ok(onLocation.includes(loose), `${loose} is there`);

    assert.match(snapshotKey, new RegExp(`^${SNAPSHOT_PREFIX}[0-9a-z]{26}$`));
    assert.ok(isUlid(snapshotKey.slice(SNAPSHOT_PREFIX.length)));
    assert.ok(onLocation.includes(snapshotKey), `${snapshotKey} is there`);
    assert.ok(onLocation.every((p) => !p.includes(",tmp.")), "no temporary file is left");

    const onHost = await files(`${parent}/host`);
    for (const path of onHost) assert.match(path, PLAIN_PATH, path);
    assert.ok(
      onHost.includes(HOST_DESCRIPTOR_KEY) && onHost.includes(HOST_CACHE_KEY),
      onHost.join(),
    );

    // The plain files are the store: a fresh open reads every artifact back.
    const again = await openStore(await openLocalFs(`${parent}/store`));
    for (const [key, bytes] of artifacts) assert.deepEqual(await again.get("docs", key), bytes);
    await again.close();
    await again.driver.close();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
