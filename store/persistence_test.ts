import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { NotFoundError } from "../drivers/driver.ts";
import { randomIndexSnapshot } from "../tests/index_fixtures.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { TransientError } from "../errors.ts";
import { decodeSnapshot, encodeSnapshot, SNAPSHOT_HEAD_BYTES } from "../format/snapshot.ts";
import { UlidGenerator } from "../format/ulid.ts";
import { StoreIndex } from "../index/store_index.ts";
import { SNAPSHOT_PREFIX } from "../layout.ts";
import {
  encodeIndexSnapshot,
  listSnapshots,
  loadNewestIndex,
  pruneSnapshots,
  snapshotReading,
  SnapshotSchedule,
  writeIndexSnapshot,
  zstdHandleInUse,
} from "./persistence.ts";

const header = { storeId: "S", schemaVersion: 1, highWaterMark: "P9", createdAt: 1 };
const db = new TextEncoder().encode("SQLite format 3\u0000 pretend database bytes");

async function realDb(storeId: string): Promise<Uint8Array> {
  const index = await StoreIndex.create(storeId);
  const bytes = index.export();
  index.close();
  return bytes;
}

Deno.test("loadNewestIndex() skips corrupt newer snapshots, damaged databases included", async () => {
  const d = new MemoryDriver();
  const good = await realDb("S");
  await d.put(`${SNAPSHOT_PREFIX}01a`, encodeSnapshot({ ...header, highWaterMark: "old" }, good));
  await d.put(`${SNAPSHOT_PREFIX}01b`, encodeSnapshot({ ...header, highWaterMark: "new" }, good));
  // A sound frame around a database that is not one.
  await d.put(`${SNAPSHOT_PREFIX}01c`, encodeSnapshot(header, db));
  await d.put(`${SNAPSHOT_PREFIX}01d`, crypto.getRandomValues(new Uint8Array(300)));
  const found = await loadNewestIndex(d, "S");
  assert.equal(found.key, `${SNAPSHOT_PREFIX}01b`);
  assert.deepEqual(found.rejected.map((r) => r.key), [
    `${SNAPSHOT_PREFIX}01d`,
    `${SNAPSHOT_PREFIX}01c`,
  ]);
  found.index?.close();
  const none = await loadNewestIndex(new MemoryDriver(), "S");
  assert.equal(none.key, undefined);
});

Deno.test("loadNewestIndex() throws on an I/O failure instead of reporting no snapshot", async () => {
  const d = new FaultyDriver(new MemoryDriver());
  await d.put(`${SNAPSHOT_PREFIX}01a`, encodeSnapshot(header, await realDb("S")));
  d.inject({ methods: ["get"], error: () => new TransientError("disk on fire") });
  await assert.rejects(loadNewestIndex(d, "S"), TransientError);
  d.clear();
  d.inject({ methods: ["list"], afterEntries: 0 });
  await assert.rejects(loadNewestIndex(d, "S"), TransientError);
});

Deno.test("a large snapshot is read in ranges into a working copy; one damaged, cut or deleted while read is skipped, leaving nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-ranged-" });
  const saved = { ...snapshotReading };
  // Every snapshot read in ranges, 4 KiB each (the body below takes some dozens).
  Object.assign(snapshotReading, { rangedFrom: 0, range: 4096 });
  try {
    // Random values: the compressed body is several times the 64 KiB read with the header.
    const { bytes: good, values } = await randomIndexSnapshot("S", 3000);
    const flipped = good.slice();
    flipped[flipped.length - 5000]! ^= 0x20;
    const d = new FaultyDriver(new MemoryDriver());
    const workCopies = async () =>
      (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.name.startsWith(",tmp.work-"));
    for (const direct of [true, false]) {
      snapshotReading.direct = direct;
      for await (const o of d.list(SNAPSHOT_PREFIX)) await d.delete(o.key);
      await d.put(`${SNAPSHOT_PREFIX}01a`, good);
      await d.put(`${SNAPSHOT_PREFIX}01b`, flipped);
      // Longer than its header says: the length check refuses it before any range is read.
      await d.put(`${SNAPSHOT_PREFIX}01c`, new Uint8Array([...good, 1, 2, 3]));
      // Deleted after its first ranges were read (a concurrent prune): skipped, not rejected.
      await d.put(`${SNAPSHOT_PREFIX}01d`, good);
      d.resetCounts();
      d.inject({
        methods: ["getRange"],
        key: `${SNAPSHOT_PREFIX}01d`,
        nth: 3,
        error: (_m, key) => new NotFoundError(key),
      });
      const found = await loadNewestIndex(d, "S", dir);
      d.clear();
      assert.equal(found.key, `${SNAPSHOT_PREFIX}01a`, `direct: ${direct}`);
      assert.deepEqual(found.rejected.map((r) => r.key), [
        `${SNAPSHOT_PREFIX}01c`,
        `${SNAPSHOT_PREFIX}01b`,
      ]);
      assert.match(found.rejected[0]!.reason, /length mismatch/);
      assert.match(found.rejected[1]!.reason, /damaged/);
      assert.equal(d.calls.get, 0, "never read whole");
      // The header's read, then the body's ranges of two whole snapshots and of the one deleted.
      const ranges = Math.ceil((good.length - SNAPSHOT_HEAD_BYTES) / 4096);
      assert.ok(ranges >= 10, `${good.length} bytes`);
      assert.ok(d.calls.getRange >= 2 * (ranges + 1) + 3, `${d.calls.getRange} ranges`);
      assert.equal(found.index?.meta("m2999"), values[2999]);
      assert.equal((await workCopies()).length, 1, "only the loaded index's working copy");
      found.index?.close();
      // A failed read is not "no snapshot": it fails the load, and no working copy is left.
      d.inject({ methods: ["getRange"], nth: 2, error: () => new TransientError("disk on fire") });
      await assert.rejects(loadNewestIndex(d, "S", dir), TransientError);
      d.clear();
      assert.deepEqual(await workCopies(), []);
    }
  } finally {
    Object.assign(snapshotReading, saved);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeIndexSnapshot() writes a decodable snapshot and keeps the newest snapshotsKept", async () => {
  const d = new MemoryDriver();
  const index = await StoreIndex.create("S");
  let now = 1_700_000_000_000;
  const clock = () => now;
  const ids = new UlidGenerator({ clock });
  try {
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) {
      now += 1000;
      const w = await writeIndexSnapshot(d, index, {
        storeId: "S",
        config: { snapshotsKept: 2 },
        clock,
        ids,
      });
      assert.ok(w.key.startsWith(SNAPSHOT_PREFIX));
      assert.equal(w.highWaterMark, index.highWaterMark());
      const { header: h } = decodeSnapshot(w.key, await d.get(w.key), "S");
      assert.equal(h.createdAt, now);
      keys.push(w.key);
    }
    assert.deepEqual(await listSnapshots(d), [keys[3], keys[2]]);
    // Without pruning, every snapshot stays.
    now += 1000;
    const extra = await writeIndexSnapshot(d, index, {
      storeId: "S",
      config: { snapshotsKept: 1 },
      clock,
      ids,
      prune: false,
    });
    assert.deepEqual(await listSnapshots(d), [extra.key, keys[3], keys[2]]);
  } finally {
    index.close();
  }
});

Deno.test("writeIndexSnapshot() never prunes the snapshot it just wrote, even when its clock is behind", async () => {
  const d = new MemoryDriver();
  const index = await StoreIndex.create("S");
  try {
    const late = await writeIndexSnapshot(d, index, {
      storeId: "S",
      config: { snapshotsKept: 1 },
      clock: () => 1_800_000_000_000,
    });
    const behind = await writeIndexSnapshot(d, index, {
      storeId: "S",
      config: { snapshotsKept: 1 },
      clock: () => 1_700_000_000_000,
    });
    assert.deepEqual(await listSnapshots(d), [late.key, behind.key]);
    await pruneSnapshots(d, 1);
    assert.deepEqual(await listSnapshots(d), [late.key]);
  } finally {
    index.close();
  }
});

Deno.test("SnapshotSchedule is due after snapshotEveryPacks packs or snapshotIntervalMs", () => {
  let now = 1000;
  const s = new SnapshotSchedule(() => now);
  const byCount = { snapshotEveryPacks: 3, snapshotIntervalMs: 0 };
  assert.deepEqual([s.packWritten(byCount), s.packWritten(byCount), s.packWritten(byCount)], [
    false,
    false,
    true,
  ]);
  s.snapshotWritten();
  assert.equal(s.packWritten(byCount), false);
  const byTime = { snapshotEveryPacks: 0, snapshotIntervalMs: 500 };
  now += 499;
  assert.equal(s.packWritten(byTime), false);
  now += 1;
  assert.equal(s.packWritten(byTime), true);
});

Deno.test("a snapshot of a file-backed index taken while the index keeps changing holds one state of it, never a mix of pages", async () => {
  // Both ways of compressing: through the compressor's handle, and its stream.
  for (const direct of [true, false]) {
    snapshotReading.direct = direct;
    try {
      await liveSnapshot();
    } finally {
      snapshotReading.direct = true;
    }
  }
});

async function liveSnapshot(): Promise<void> {
  const { DatabaseSync } = await import("node:sqlite");
  const dir = await Deno.makeTempDir({ prefix: "capsa-snapshot-live-" });
  // Some 12 MB: the file is read in several pieces.
  const filler = (i: number, v: number) =>
    `${i}:${v}:`.padEnd(600, String.fromCharCode(97 + v % 26));
  try {
    const index = await StoreIndex.create("S", { dir });
    index.transaction(() => {
      for (let i = 0; i < 20_000; i++) index.setMeta(`m${i}`, filler(i, 0));
    });
    // Each step rewrites every 97th row and adds one: a consistent state has, for some k, the
    // rows n0…n(k-1) and every m row at version 0 or at the step that last touched it.
    let steps = 0;
    // Whether a write lands while the file is read depends on timing (reads of a page-cached
    // file can all finish before a timer fires): snapshots are taken until three of them were
    // read while the index changed (at most 30), and every one must hold one state.
    let changedDuring = 0;
    for (let attempt = 0; attempt < 30 && changedDuring < 3; attempt++) {
      const before = steps;
      let done = false;
      const encoding = encodeIndexSnapshot(index, "S", 1).finally(() => done = true);
      while (!done) {
        steps++;
        const step = steps;
        index.transaction(() => {
          for (let i = step % 97; i < 20_000; i += 97) index.setMeta(`m${i}`, filler(i, step));
          index.setMeta(`n${step}`, String(step));
        });
        await new Promise((r) => setTimeout(r, 0));
      }
      const bytes = await encoding;
      // (The first step runs before the file is opened: a second one ran during the read.)
      if (steps - before > 1) changedDuring++;
      await checkOneState(bytes);
    }
    assert.ok(changedDuring > 0, "the index changed during at least one snapshot");
    index.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  async function checkOneState(bytes: Uint8Array): Promise<void> {
    const path = `${dir}/back.sqlite`;
    await Deno.writeFile(path, decodeSnapshot("snap", bytes, "S").db);
    const back = new DatabaseSync(path, { readOnly: true });
    try {
      assert.deepEqual(back.prepare("PRAGMA integrity_check").all().map((r) => ({ ...r })), [
        { integrity_check: "ok" },
      ]);
      const rows = new Map(
        back.prepare("SELECT name, value FROM meta").all().map((
          r,
        ) => [String(r.name), String(r.value)]),
      );
      let k = 0;
      while (rows.has(`n${k + 1}`)) k++;
      const ns = [...rows.keys()].filter((n) => n.startsWith("n")).length;
      assert.equal(ns, k, `rows n1…n${k} and no others`);
      for (let i = 0; i < 20_000; i++) {
        // The last step ≤ k that touched row i (steps s with s % 97 === i % 97), else 0.
        let v = 0;
        for (let s = k; s >= 1; s--) {
          if (s % 97 === i % 97) {
            v = s;
            break;
          }
        }
        assert.equal(
          rows.get(`m${i}`)?.slice(0, 12),
          filler(i, v).slice(0, 12),
          `m${i} as of step ${k}`,
        );
      }
    } finally {
      back.close();
      await Deno.remove(path);
    }
  }
}

Deno.test("snapshots go through the zstd handle on this Deno (its check passes), and through the streams when told", () => {
  // The pinned Deno keeps Node's handle: a change of it shows here, not as a slower snapshot.
  assert.equal(zstdHandleInUse(), true);
  snapshotReading.direct = false;
  try {
    assert.equal(zstdHandleInUse(), false);
  } finally {
    snapshotReading.direct = true;
  }
});
