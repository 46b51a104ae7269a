/**
 * The store round trips, the rebuild and the verify scenarios, run on a real
 * S3-compatible server (s3rver on loopback, started here), with and without
 * create-only puts. The bodies are the same as for memory and localfs.
 */

import assert from "node:assert/strict";
import { openS3 } from "../drivers/s3/mod.ts";
import { type LocationKind, testLocation } from "./locations.ts";
import { registerRebuildScenarios } from "./rebuild_scenarios.ts";
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from "./s3_server.ts";
import { registerStoreScenarios } from "./store_scenarios.ts";
import { registerVerifyScenarios } from "./verify_scenarios.ts";
import { randomIndexSnapshot } from "./index_fixtures.ts";
import { SNAPSHOT_PREFIX } from "../layout.ts";
import { loadNewestIndex, snapshotReading } from "../store/persistence.ts";

let started: Promise<S3Server> | undefined;
function server(): Promise<S3Server> {
  if (started === undefined) {
    Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
    started = startS3Server({ createOnly: true });
  }
  return started;
}

let buckets = 0;
function s3Locations(createOnly: boolean): LocationKind {
  return {
    name: `s3 (${createOnly ? "create-only" : "no create-only"})`,
    async create() {
      const s = await server();
      const bucket = `scn-${Date.now().toString(36)}-${buckets++}`;
      await s.createBucket(bucket, { createOnly });
      const url = `s3://${bucket}/store?endpoint=${s.endpoint}&create-only=${createOnly}`;
      return testLocation(() => openS3(url), () => s.deleteBucket(bucket));
    },
  };
}

for (const createOnly of [true, false]) {
  registerStoreScenarios(s3Locations(createOnly));
  registerRebuildScenarios(s3Locations(createOnly));
}
registerVerifyScenarios(s3Locations(true));

Deno.test("s3: a snapshot is read in ranges, several at once, into a working copy", async () => {
  const location = await s3Locations(true).create();
  const dir = await Deno.makeTempDir({ prefix: "capsa-s3-ranged-" });
  const saved = { ...snapshotReading };
  Object.assign(snapshotReading, { rangedFrom: 0, range: 16 * 1024 });
  try {
    const { bytes, values } = await randomIndexSnapshot("S", 2000);
    assert.ok(bytes.length > 8 * 16 * 1024, `${bytes.length} bytes: several ranges`);
    await location.raw.put(`${SNAPSHOT_PREFIX}01a`, bytes);
    const found = await loadNewestIndex(await location.open(), "S", dir);
    assert.equal(found.key, `${SNAPSHOT_PREFIX}01a`);
    assert.deepEqual(found.rejected, []);
    assert.equal(found.index?.meta("m1999"), values[1999]);
    assert.ok(found.index?.file?.startsWith(dir));
    found.index?.close();
  } finally {
    Object.assign(snapshotReading, saved);
    await Deno.remove(dir, { recursive: true });
    await location.dispose();
  }
});

Deno.test("the S3 test server stops (last test of this file)", async () => {
  if (started === undefined) return;
  const s = await started;
  started = undefined;
  await s.stop();
  await assert.rejects(Deno.stat(s.dir), Deno.errors.NotFound);
});
