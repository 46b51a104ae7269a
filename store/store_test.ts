import assert from "node:assert/strict";
import { body, Xorshift } from "../tests/data.ts";
import {
  type Driver,
  type DriverCapabilities,
  type ListOptions,
  type ObjectInfo,
  type PutOptions as DriverPutOptions,
  validateKey,
} from "../drivers/driver.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { DEFAULT_CHUNKING } from "../format/chunker.ts";
import {
  ArtifactNotFoundError,
  ClosedError,
  CorruptObjectError,
  InvalidArgumentError,
  StoreCorruptedError,
  TransientError,
} from "../errors.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { type CapsaEvent, EventBus } from "./events.ts";
import { createHasher, type HashAlgorithm, hashBytes } from "../format/hashing.ts";
import {
  DEFAULT_TAIL_GUESS,
  PACK_TRAILER_BYTES,
  parsePackTrailer,
  TOC_FULL_BYTES,
} from "../format/pack.ts";
import { encodeSnapshot } from "../format/snapshot.ts";
import {
  type ArtifactInfo,
  initStore,
  type InitStoreOptions,
  openStore,
  type OpenStoreOptions,
  type Store,
} from "./store.ts";
import {
  CONFIG_CURRENT_KEY,
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  LOOSE_BLOB_PREFIX,
  PACK_PREFIX,
  packKey,
  SNAPSHOT_PREFIX,
} from "../layout.ts";

// ---------------------------------------------------------------------------
// Helpers

const KiB = 1024;
const MiB = 1024 * KiB;
const NS = "ns";
const enc = new TextEncoder();

/**
 * Small thresholds so that every size boundary is a few KiB: inline ≤ 64 B,
 * regular ≤ 2 KiB, chunked above, chunks of 256 B…4 KiB.
 */
const SMALL_CHUNKING = { min: 256, avg: 1024, max: 4 * KiB };
const SMALL: InitStoreOptions = {
  chunking: SMALL_CHUNKING,
  config: {
    inlineThreshold: 64,
    chunkThreshold: 2 * KiB,
    packTargetSize: 64 * KiB,
    packLingerMs: 2,
  },
};
const INLINE = 64;
const CHUNK = 2 * KiB;

const randomBytes = (n: number, seed: number) => body(seed, n);

/** Odd piece sizes for streamed bodies: a piece boundary lands everywhere. */
const PIECES = [1, 7, 333, 4099, 2, 1021, 65];

/** A stream delivering `bytes` in pieces of cycling odd sizes (fresh copies). */
function streamOf(
  bytes: Uint8Array,
  pieces: readonly number[] = PIECES,
): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = pieces[i++ % pieces.length]!;
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const p of stream) {
    parts.push(p);
    total += p.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A driver that forwards to another and records what is written and read. */
class CountingDriver implements Driver {
  readonly kind: string;
  readonly capabilities: DriverCapabilities;
  readonly location: string;
  readonly inner: Driver;
  bytesPut = 0;
  puts: Array<{ key: string; size: number }> = [];
  ranges: Array<{ key: string; offset: number; length: number }> = [];
  gets: string[] = [];

  constructor(inner: Driver) {
    this.inner = inner;
    this.kind = `counting(${inner.kind})`;
    this.capabilities = inner.capabilities;
    this.location = inner.location;
  }
  reset(): void {
    this.bytesPut = 0;
    this.puts = [];
    this.ranges = [];
    this.gets = [];
  }
  get(key: string): Promise<Uint8Array> {
    this.gets.push(key);
    return this.inner.get(key);
  }
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.ranges.push({ key, offset, length });
    return this.inner.getRange(key, offset, length);
  }
  async put(key: string, bytes: Uint8Array, options?: DriverPutOptions): Promise<void> {
    await this.inner.put(key, bytes, options);
    this.bytesPut += bytes.length;
    this.puts.push({ key, size: bytes.length });
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  stat(key: string): Promise<ObjectInfo> {
    return this.inner.stat(key);
  }
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A deep copy of a Location's objects, to prove later that nothing changed. */
function copyObjects(objects: Map<string, Uint8Array>): Map<string, Uint8Array> {
  return new Map([...objects].map(([k, v]) => [k, v.slice()]));
}

function assertUnchanged(
  objects: Map<string, Uint8Array>,
  before: Map<string, Uint8Array>,
  what: string,
): void {
  assert.deepEqual([...objects.keys()].sort(), [...before.keys()].sort(), `${what}: keys changed`);
  for (const [k, v] of before) {
    assert.ok(equalBytes(objects.get(k)!, v), `${what}: ${k} changed`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Asserts equality of two byte arrays without printing megabytes on failure. */
function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  if (!equalBytes(actual, expected)) {
    let i = 0;
    while (actual[i] === expected[i]) i++;
    assert.fail(`${what}: bytes differ first at offset ${i}`);
  }
}

function packKeys(objects: Map<string, Uint8Array>): string[] {
  return [...objects.keys()].filter((k) => k.startsWith(PACK_PREFIX)).sort();
}

function reopen(
  objects: Map<string, Uint8Array>,
  options: OpenStoreOptions = {},
): Promise<Store> {
  return openStore(new MemoryDriver({ objects }), options);
}

function recordEvents(bus: EventBus): CapsaEvent[] {
  const events: CapsaEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return events;
}

/** Flips one byte of a stored object in place. */
function flip(objects: Map<string, Uint8Array>, key: string, at: number): void {
  const bytes = objects.get(key);
  assert.ok(bytes, `no object ${key}`);
  bytes[at] = bytes[at]! ^ 0x5a;
}

function setU64(bytes: Uint8Array, at: number, value: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(at, value % 2 ** 32, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

/** Puts the bodies (concurrently) and flushes; returns the keys of the packs they went into. */
async function putInNewPacks(
  store: Store,
  objects: Map<string, Uint8Array>,
  bodies: Record<string, Uint8Array>,
): Promise<string[]> {
  const before = new Set(packKeys(objects));
  await Promise.all(Object.entries(bodies).map(([k, b]) => store.put(NS, k, b)));
  await store.flush();
  const added = packKeys(objects).filter((k) => !before.has(k));
  assert.ok(added.length >= 1, "no new pack");
  return added;
}

/** Puts one artifact and flushes; returns the key of the one pack it went into. */
async function putInOwnPack(
  store: Store,
  objects: Map<string, Uint8Array>,
  bodies: Record<string, Uint8Array>,
): Promise<string> {
  assert.equal(Object.keys(bodies).length, 1, "one artifact per pack");
  const added = await putInNewPacks(store, objects, bodies);
  assert.equal(added.length, 1, `expected one new pack, got ${added.join(", ")}`);
  return added[0]!;
}

// ---------------------------------------------------------------------------
// 1. Round trips at every size boundary

const BOUNDARY_SIZES = [0, INLINE - 1, INLINE, INLINE + 1, CHUNK - 1, CHUNK, CHUNK + 1];

interface Expected {
  key: string;
  body: Uint8Array;
  info: ArtifactInfo;
  contentType: string;
  metadata: Record<string, string>;
}

async function checkRoundTrip(store: Store, e: Expected, hash: HashAlgorithm, when: string) {
  const what = `${e.key} (${when})`;
  assertBytes(await store.get(NS, e.key), e.body, `${what} get()`);
  assertBytes(await collect(await store.getStream(NS, e.key)), e.body, `${what} getStream()`);
  const st = await store.stat(NS, e.key);
  assert.equal(st.size, e.body.length, `${what} stat().size`);
  assert.equal(st.digest, hashBytes(hash, e.body), `${what} stat().digest`);
  assert.equal(st.contentType, e.contentType, `${what} stat().contentType`);
  assert.deepEqual(st.metadata, e.metadata, `${what} stat().metadata`);
  assert.equal(st.version, e.info.version, `${what} stat().version`);
  assert.equal(st.deleted, false);
  assert.deepEqual(st, e.info, `${what} stat() equals what put() returned`);
  const n = e.body.length;
  for (const [off, len] of [[0, 0], [0, 1], [0, n], [0, n + 10], [n - 1, 1], [n, 5], [1, n]]) {
    if (off! < 0) continue;
    const got = await store.getRange(NS, e.key, off!, len!);
    assertBytes(
      got,
      e.body.subarray(off!, Math.min(n, off! + len!)),
      `${what} getRange(${off}, ${len})`,
    );
  }
}

Deno.test("Store.put() round-trips bodies at every size boundary, as bytes and as streams", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const hash = store.descriptor!.hash;
  const expected: Expected[] = [];
  let seed = 1;
  for (const size of BOUNDARY_SIZES) {
    for (const mode of ["bytes", "stream"] as const) {
      // Bytes are passed as a view into a larger buffer (non-zero byteOffset).
      const padded = randomBytes(size + 24, seed++);
      const body = padded.subarray(11, 11 + size);
      const key = `size-${size}-${mode}`;
      const metadata = { size: String(size), mode };
      const contentType = size % 2 === 0 ? "application/octet-stream" : "";
      const info = await store.put(
        NS,
        key,
        mode === "bytes" ? body : streamOf(body),
        contentType === "" ? { metadata } : { contentType, metadata },
      );
      assert.equal(info.size, size);
      assert.equal(info.key, key);
      assert.equal(info.namespace, NS);
      assert.equal(info.digest, hashBytes(hash, body), `${key}: digest from put()`);
      expected.push({ key, body, info, contentType, metadata });

      // The cut is exactly at the thresholds (inclusive).
      const m = store.index.current(NS, key)!;
      if (size <= INLINE) {
        assert.ok(m.inline, `${key} is inline`);
        assert.deepEqual(m.blobs, []);
      } else if (size <= CHUNK) {
        assert.equal(m.inline, undefined, `${key} is not inline`);
        assert.equal(m.blobs.length, 1);
        assert.equal(store.index.blob(m.blobs[0]!)?.kind, "regular", `${key} is one regular blob`);
      } else {
        assert.equal(m.inline, undefined);
        assert.ok(m.blobs.length >= 1);
        for (const id of m.blobs) assert.equal(store.index.blob(id)?.kind, "chunk", `${key}`);
      }
    }
  }
  for (const e of expected) await checkRoundTrip(store, e, hash, "same handle");
  await store.close();

  const again = await reopen(objects);
  assert.equal(again.state, "Ready");
  for (const e of expected) await checkRoundTrip(again, e, hash, "after reopen");
  await again.close();
});

Deno.test("Store.getRange() returns exact bytes for ranges across chunk boundaries and past the end", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const body = randomBytes(40_000, 99);
  await store.put(NS, "big", streamOf(body));
  const m = store.index.current(NS, "big")!;
  assert.ok(m.blobs.length >= 5, `expected many chunks, got ${m.blobs.length}`);
  const bounds: number[] = [];
  let at = 0;
  for (const id of m.blobs) {
    at += store.index.blob(id)!.rawSize;
    bounds.push(at);
  }
  assert.equal(at, body.length);
  const n = body.length;
  const ranges: Array<[number, number]> = [
    [0, 0],
    [0, 1],
    [0, n],
    [0, n + 1],
    [0, 2 ** 40],
    [n - 1, 1],
    [n - 1, 100],
    [n, 1],
    [n + 1000, 10],
    [2 ** 40, 1],
    [12345, 0],
  ];
  for (const b of bounds.slice(0, -1)) {
    ranges.push([b - 1, 1], [b, 1], [b - 1, 2], [b - 7, 20]);
  }
  // A range spanning three chunks, and one spanning all but the ends.
  ranges.push([bounds[0]! - 3, bounds[2]! - bounds[0]! + 6], [1, n - 2]);
  const rnd = new Xorshift(5);
  for (let i = 0; i < 60; i++) ranges.push([rnd.next() % (n + 50), rnd.next() % 9000]);

  const check = async (s: Store, when: string) => {
    for (const [off, len] of ranges) {
      assertBytes(
        await s.getRange(NS, "big", off, len),
        body.subarray(off, Math.min(n, off + len)),
        `getRange(${off}, ${len}) ${when}`,
      );
    }
    for (const [off, len] of [[-1, 1], [0, -1], [0.5, 1], [0, Number.NaN]] as const) {
      await assert.rejects(s.getRange(NS, "big", off, len), InvalidArgumentError);
    }
  };
  await check(store, "same handle");
  await store.close();

  const counting = new CountingDriver(new MemoryDriver({ objects }));
  const again = await openStore(counting);
  await check(again, "after reopen");
  await again.close();
  // Only the blobs covering a range are read: a range inside one chunk is one read (on a fresh
  // handle: one that just read the pack in order serves it from its read-ahead, DESIGN.md §4.9).
  const fresh = await openStore(counting);
  counting.reset();
  await fresh.getRange(NS, "big", bounds[1]! + 1, 10);
  assert.equal(counting.ranges.filter((r) => r.key.startsWith(PACK_PREFIX)).length, 1);
  await fresh.close();
});

Deno.test("Store.put() writes a regular blob larger than packTargetSize loose, and reads it back", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), {
    chunking: { min: 256, avg: 512, max: 1024 },
    config: { inlineThreshold: 16, chunkThreshold: 8 * KiB, packTargetSize: 1024, packLingerMs: 1 },
  });
  const body = randomBytes(5000, 3);
  const info = await store.put(NS, "loose", streamOf(body));
  const loose = [...objects.keys()].filter((k) => k.startsWith(LOOSE_BLOB_PREFIX));
  assert.deepEqual(loose, [`${LOOSE_BLOB_PREFIX}${info.digest.slice(0, 2)}/${info.digest}`]);
  assertBytes(await store.get(NS, "loose"), body, "loose get()");
  assertBytes(await store.getRange(NS, "loose", 4000, 2000), body.subarray(4000), "loose getRange");
  await store.close();
  const again = await reopen(objects);
  assertBytes(await again.get(NS, "loose"), body, "loose get() after reopen");
  assertBytes(await again.getRange(NS, "loose", 10, 20), body.subarray(10, 30), "loose range");
  assert.equal((await again.stat(NS, "loose")).digest, hashBytes("blake3", body));
  await again.close();
});

Deno.test("Store.put() streams a 50 MiB body with default settings and getStream() returns it", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }));
  const hash = store.descriptor!.hash;
  const total = 50 * MiB;
  const sizes = [1, 65_521, 1_000_003, 333, 7, 262_147];
  const rnd = new Xorshift(50);
  const written = createHasher(hash);
  let sent = 0;
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(sizes[i++ % sizes.length]!, total - sent);
      const piece = rnd.fill(new Uint8Array(n));
      written.update(piece);
      sent += n;
      c.enqueue(piece);
    },
  });
  const info = await store.put(NS, "huge", body, { contentType: "application/x-tar" });
  const digest = written.digestHex();
  assert.equal(info.size, total);
  assert.equal(info.digest, digest);

  const readBack = async (s: Store, when: string) => {
    const h = createHasher(hash);
    let n = 0;
    for await (const piece of await s.getStream(NS, "huge")) {
      h.update(piece);
      n += piece.length;
    }
    assert.equal(n, total, `size read back ${when}`);
    assert.equal(h.digestHex(), digest, `digest of the bytes read back ${when}`);
    const st = await s.stat(NS, "huge");
    assert.equal(st.size, total);
    assert.equal(st.digest, digest);
    assert.equal(st.contentType, "application/x-tar");
  };
  await readBack(store, "on the same handle");
  const m = store.index.current(NS, "huge")!;
  assert.ok(m.blobs.length >= 8, `a 50 MiB body is chunked, got ${m.blobs.length} blobs`);
  for (const id of m.blobs) {
    assert.ok(store.index.blob(id)!.rawSize <= DEFAULT_CHUNKING.max, "no chunk above max");
  }
  await store.close();
  const again = await reopen(objects);
  await readBack(again, "after reopen");
  await again.close();
});

// ---------------------------------------------------------------------------
// 2. Deduplication, measured in bytes written

Deno.test("Store.put() deduplicates a body already stored under another key", async () => {
  const counting = new CountingDriver(new MemoryDriver());
  const { store } = await initStore(counting);
  const body = randomBytes(5 * MiB, 21);
  await store.put(NS, "first", body);
  await store.flush();
  const blobs = store.index.counts().blobs;
  counting.reset();
  await store.put(NS, "second", body);
  await store.flush();
  assert.ok(
    counting.bytesPut < 16 * KiB,
    `second copy wrote ${counting.bytesPut} bytes, expected only a small pack`,
  );
  assert.deepEqual(counting.puts.map((p) => p.key.startsWith(PACK_PREFIX)), [true]);
  assert.equal(store.index.counts().blobs, blobs, "no new blob");
  assertBytes(await store.get(NS, "second"), body, "second");
  await store.close();
});

Deno.test("Store.put() deduplicates concurrent puts of one body against the open pack", async () => {
  const counting = new CountingDriver(new MemoryDriver());
  const { store } = await initStore(counting);
  counting.reset();
  const body = randomBytes(300 * KiB, 22);
  await Promise.all(["a", "b", "c", "d"].map((k) => store.put(NS, k, body)));
  await store.flush();
  assert.ok(
    counting.bytesPut < body.length + 16 * KiB,
    `four concurrent copies wrote ${counting.bytesPut} bytes`,
  );
  for (const k of ["a", "b", "c", "d"]) assertBytes(await store.get(NS, k), body, k);
  await store.close();
});

async function editTest(edit: (a: Uint8Array) => Uint8Array) {
  const counting = new CountingDriver(new MemoryDriver());
  const { store } = await initStore(counting);
  const max = store.descriptor!.chunking.max;
  const original = randomBytes(20 * MiB, 23);
  const v1 = await store.put(NS, "artifact", original);
  await store.flush();
  const blobsBefore = store.index.counts().blobs;
  counting.reset();
  const edited = edit(original);
  await store.put(NS, "artifact", streamOf(edited, [65_537, 1_048_573]));
  await store.flush();
  const newBlobs = store.index.counts().blobs - blobsBefore;
  assert.ok(
    counting.bytesPut < 3 * max,
    `the edit wrote ${counting.bytesPut} bytes, expected < 3 × chunking.max (${3 * max})`,
  );
  assert.ok(newBlobs >= 1 && newBlobs <= 3, `the edit stored ${newBlobs} new chunks`);
  assertBytes(await store.get(NS, "artifact"), edited, "edited version");
  assertBytes(await store.get(NS, "artifact", { version: v1.version }), original, "v1");
  await store.close();
}

Deno.test("Store.put() stores only a few new chunks for an edit in the middle of a 20 MiB artifact", async () => {
  await editTest((a) => {
    const b = a.slice();
    for (let i = 0; i < 16; i++) b[10 * MiB + i] = b[10 * MiB + i]! ^ 0xff;
    return b;
  });
});

Deno.test("Store.put() stores only a few new chunks for an insertion in the middle of a 20 MiB artifact", async () => {
  await editTest((a) => {
    const b = new Uint8Array(a.length + 100);
    b.set(a.subarray(0, 10 * MiB));
    b.set(randomBytes(100, 77), 10 * MiB);
    b.set(a.subarray(10 * MiB), 10 * MiB + 100);
    return b;
  });
});

// ---------------------------------------------------------------------------
// 3. Group commit

Deno.test("Store.put() group-commits 1,000 concurrent puts into few packs, all readable after reopen", async () => {
  const objects = new Map<string, Uint8Array>();
  const host = new MemoryDriver({ name: "host" });
  const { store } = await initStore(new MemoryDriver({ objects }), { hostStorage: host });
  const bodies = Array.from({ length: 1000 }, (_, i) => {
    const b = randomBytes(1 + (i * 37) % 600, 1000 + i); // inline and regular
    b.set(enc.encode(String(i)).subarray(0, b.length));
    return b;
  });
  const key = (i: number) => `item/${String(i).padStart(4, "0")}`;
  const infos = await Promise.all(bodies.map((b, i) => store.put(NS, key(i), b)));
  assert.equal(new Set(infos.map((i) => i.version)).size, 1000, "distinct versions");
  const packs = store.index.counts().packs;
  assert.ok(packs <= 20, `1,000 concurrent puts used ${packs} packs`);
  assert.equal(packKeys(objects).length, packs);
  await store.close();

  const check = async (s: Store) => {
    assert.equal(s.index.counts().artifacts, 1000);
    for (let i = 0; i < 1000; i++) assertBytes(await s.get(NS, key(i)), bodies[i]!, key(i));
  };

  // A fresh handle with no host storage: the index is rebuilt by catch-up.
  const cold = await reopen(objects);
  assert.equal((await cold.status()).index?.source, "empty");
  await check(cold);
  await cold.close();

  // With the host storage: loaded from the host cache written at close.
  assert.ok(host.objects.has(HOST_CACHE_KEY), "close() wrote the host cache");
  const warm = await reopen(objects, { hostStorage: host });
  const status = await warm.status();
  assert.equal(status.index?.source, "host-cache");
  assert.equal(status.state, "Ready");
  await check(warm);
  await warm.close();
});

// ---------------------------------------------------------------------------
// 4. Versions, delete, list

Deno.test("Store.delete() commits a tombstone: versions() lists it and older versions stay readable", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const b1 = enc.encode("version one");
  const b2 = randomBytes(500, 2);
  const v1 = await store.put(NS, "doc", b1, { metadata: { v: "1" } });
  const v2 = await store.put(NS, "doc", b2, { metadata: { v: "2" } });
  assertBytes(await store.get(NS, "doc"), b2, "current is v2");
  assert.equal(await store.delete(NS, "doc"), true);

  const check = async (s: Store) => {
    await assert.rejects(s.get(NS, "doc"), ArtifactNotFoundError);
    await assert.rejects(s.getStream(NS, "doc"), ArtifactNotFoundError);
    await assert.rejects(s.stat(NS, "doc"), ArtifactNotFoundError);
    await assert.rejects(s.getRange(NS, "doc", 0, 1), ArtifactNotFoundError);
    const versions = await s.versions(NS, "doc");
    assert.equal(versions.length, 3);
    assert.deepEqual(versions.map((v) => v.deleted), [true, false, false]);
    assert.deepEqual(versions.slice(1).map((v) => v.version), [v2.version, v1.version]);
    assert.ok(versions[0]!.version > v2.version, "the tombstone is newest");
    assert.deepEqual(versions[1], v2);
    assertBytes(await s.get(NS, "doc", { version: v1.version }), b1, "v1 by version");
    assertBytes(await s.get(NS, "doc", { version: v2.version }), b2, "v2 by version");
    assert.deepEqual((await s.stat(NS, "doc", { version: v1.version })).metadata, { v: "1" });
    await assert.rejects(
      s.get(NS, "doc", { version: versions[0]!.version }),
      ArtifactNotFoundError,
      "the tombstone version has no body",
    );
    assert.deepEqual((await s.list(NS)).items, []);
  };
  await check(store);

  // Deleting what does not exist (or no longer exists) writes nothing.
  await store.flush();
  const before = copyObjects(objects);
  assert.equal(await store.delete(NS, "doc"), false);
  assert.equal(await store.delete(NS, "never-was"), false);
  assert.equal(await store.delete("other-ns", "doc"), false);
  await store.flush();
  assertUnchanged(objects, before, "delete() of missing artifacts");
  await store.close();

  const again = await reopen(objects);
  await check(again);
  // A new put after a delete revives the key.
  await again.put(NS, "doc", b1);
  assertBytes(await again.get(NS, "doc"), b1, "revived");
  assert.equal((await again.versions(NS, "doc")).length, 4);
  await again.close();
});

Deno.test("Store.list() pages through 2,500 keys with prefix, after, limit and cursor", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const keys = Array.from({ length: 2500 }, (_, i) => `k/${String(i).padStart(5, "0")}`);
  const outside = ["a", "k", "k.", "k0", "j/999", "l/0", "kk/1"];
  await Promise.all([...keys, ...outside].map((k) => store.put(NS, k, enc.encode(k))));
  await store.put("other", "k/00001", enc.encode("elsewhere"));
  // A deleted key is not listed.
  await store.put(NS, "k/gone", enc.encode("x"));
  await store.delete(NS, "k/gone");

  const pageAll = async (s: Store, limit: number, after?: string) => {
    const seen: string[] = [];
    let cursor = after;
    let pages = 0;
    for (;;) {
      const page = await s.list(NS, {
        prefix: "k/",
        limit,
        ...(cursor === undefined ? {} : { after: cursor }),
      });
      pages++;
      assert.ok(page.items.length <= limit);
      for (const item of page.items) {
        assert.equal(item.namespace, NS);
        assert.equal(item.deleted, false);
        assert.equal(item.size, item.key.length);
        seen.push(item.key);
      }
      if (page.after === undefined) break;
      assert.equal(page.after, page.items[page.items.length - 1]!.key);
      cursor = page.after;
      assert.ok(pages <= 2500, "paging does not end");
    }
    return seen;
  };

  const check = async (s: Store) => {
    for (const limit of [1000, 300, 250, 7]) {
      assert.deepEqual(await pageAll(s, limit), keys, `limit ${limit}`);
    }
    assert.deepEqual(await pageAll(s, 400, "k/01999"), keys.slice(2000));
    const first = await s.list(NS, { prefix: "k/", after: "k/00099", limit: 3 });
    assert.deepEqual(first.items.map((i) => i.key), ["k/00100", "k/00101", "k/00102"]);
    // `after` below the prefix starts at the prefix; above it, nothing.
    assert.deepEqual(
      (await s.list(NS, { prefix: "k/", after: "a", limit: 2 })).items.map((i) => i.key),
      ["k/00000", "k/00001"],
    );
    assert.deepEqual((await s.list(NS, { prefix: "k/", after: "k/99999" })).items, []);
    // No prefix: every live key of the namespace, in order.
    const everything = await s.list(NS, { limit: 10_000 });
    assert.deepEqual(
      everything.items.map((i) => i.key),
      [...keys, ...outside].sort(),
    );
    assert.equal(everything.cursor, undefined);
    assert.deepEqual((await s.list("other")).items.map((i) => i.key), ["k/00001"]);
  };
  await check(store);
  await store.close();
  const again = await reopen(objects);
  await check(again);
  await again.close();
});

// ---------------------------------------------------------------------------
// 5. Two handles, snapshots

Deno.test("Store.refresh() makes another handle's writes visible", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store: a } = await initStore(new MemoryDriver({ objects }), SMALL);
  const b = await reopen(objects);
  const body = randomBytes(5000, 8);
  await a.put(NS, "from-a", body);
  await assert.rejects(b.get(NS, "from-a"), ArtifactNotFoundError);
  await b.refresh();
  assertBytes(await b.get(NS, "from-a"), body, "B sees A's put");

  await b.put(NS, "from-b", enc.encode("hello from b"));
  await b.delete(NS, "from-a");
  await a.refresh();
  assert.equal(new TextDecoder().decode(await a.get(NS, "from-b")), "hello from b");
  await assert.rejects(a.get(NS, "from-a"), ArtifactNotFoundError);
  assert.equal((await a.versions(NS, "from-a")).length, 2);
  await a.close();
  await b.close();
});

Deno.test("openStore() from the host cache catches up on packs another handle wrote", async () => {
  const objects = new Map<string, Uint8Array>();
  const host = new MemoryDriver({ name: "host" });
  const { store } = await initStore(new MemoryDriver({ objects }), { ...SMALL, hostStorage: host });
  await store.put(NS, "old", enc.encode("old"));
  await store.close();
  const other = await reopen(objects);
  const body = randomBytes(3000, 6);
  await other.put(NS, "new", body);
  await other.delete(NS, "old");
  await other.close();
  const s = await reopen(objects, { hostStorage: host });
  assert.equal((await s.status()).index?.source, "host-cache");
  assertBytes(await s.get(NS, "new"), body, "written by the other handle");
  await assert.rejects(s.get(NS, "old"), ArtifactNotFoundError);
  await s.close();
});

Deno.test("Store.snapshotIndex() writes a snapshot and keeps only the newest snapshotsKept", async () => {
  const objects = new Map<string, Uint8Array>();
  const bus = new EventBus();
  const events = recordEvents(bus);
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    bus,
    config: { ...SMALL.config, snapshotsKept: 2, snapshotEveryPacks: 0, snapshotIntervalMs: 0 },
  });
  const written: string[] = [];
  for (let i = 0; i < 4; i++) {
    await store.put(NS, `k${i}`, randomBytes(100, i));
    const key = await store.snapshotIndex();
    assert.ok(key.startsWith(SNAPSHOT_PREFIX));
    written.push(key);
    const onLocation = [...objects.keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX));
    assert.ok(onLocation.includes(key));
    assert.ok(onLocation.length <= 2, `${onLocation.length} snapshots kept`);
  }
  assert.deepEqual((await store.status()).snapshots, [written[3], written[2]]);
  assert.deepEqual(
    events.filter((e) => e.type === "snapshot.written").map((e) =>
      e.type === "snapshot.written" ? e.key : ""
    ),
    written,
  );
  await store.close();
});

Deno.test("Store writes a snapshot by itself after snapshotEveryPacks packs", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    config: { ...SMALL.config, snapshotEveryPacks: 3 },
  });
  for (let i = 0; i < 3; i++) {
    await store.put(NS, `k${i}`, randomBytes(100, i));
    await store.flush();
  }
  await store.close(); // waits for the snapshot in flight
  assert.equal([...objects.keys()].filter((k) => k.startsWith(SNAPSHOT_PREFIX)).length, 1);
});

Deno.test("openStore() without a host cache loads the newest snapshot and catches up on later packs", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const early = await putInNewPacks(store, objects, {
    a: randomBytes(3000, 1),
    b: enc.encode("b"),
  });
  await store.snapshotIndex();
  const snap = await store.snapshotIndex(); // the newest of two
  const late = await putInNewPacks(store, objects, { c: randomBytes(3000, 3), d: enc.encode("d") });
  await store.delete(NS, "a");
  await store.close();

  const counting = new CountingDriver(new MemoryDriver({ objects }));
  const again = await openStore(counting);
  const status = await again.status();
  assert.equal(status.index?.source, "snapshot");
  assert.equal(status.index?.loadedFrom, snap);
  assert.equal(status.state, "Ready");
  // Catch-up read only the TOCs of packs the snapshot did not hold.
  const tocReads = new Set(
    counting.ranges.map((r) => r.key).filter((k) => k.startsWith(PACK_PREFIX)),
  );
  for (const k of early) assert.ok(!tocReads.has(k), "a pack inside the snapshot was re-read");
  for (const k of late) assert.ok(tocReads.has(k), "a pack after the snapshot was not read");
  assert.equal(status.counts?.packs, packKeys(objects).length);
  await assert.rejects(again.get(NS, "a"), ArtifactNotFoundError);
  assert.equal(new TextDecoder().decode(await again.get(NS, "b")), "b");
  assertBytes(await again.get(NS, "c"), randomBytes(3000, 3), "c");
  assert.equal(new TextDecoder().decode(await again.get(NS, "d")), "d");
  await again.close();
});

// ---------------------------------------------------------------------------
// 6. Descriptor states

Deno.test("openStore() heals a missing store.json byte for byte and is Ready", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  await store.put(NS, "x", enc.encode("data"));
  await store.close();
  const original = objects.get(DESCRIPTOR_KEY)!.slice();
  assertBytes(objects.get(DESCRIPTOR_REPLICA_KEY)!, original, "replicas are identical");

  for (const damage of ["delete store.json", "garbage in replica 2"] as const) {
    if (damage === "delete store.json") objects.delete(DESCRIPTOR_KEY);
    else objects.set(DESCRIPTOR_REPLICA_KEY, enc.encode("{ not a descriptor"));
    const bus = new EventBus();
    const events = recordEvents(bus);
    const s = await reopen(objects, { bus });
    const healed = events.filter((e) => e.type === "descriptor.healed");
    assert.equal(healed.length, 1, `${damage}: one descriptor.healed event`);
    const replica = damage === "delete store.json" ? DESCRIPTOR_KEY : DESCRIPTOR_REPLICA_KEY;
    assert.deepEqual(healed[0]!.type === "descriptor.healed" ? healed[0]!.replicas : [], [replica]);
    assertBytes(objects.get(DESCRIPTOR_KEY)!, original, `${damage}: store.json`);
    assertBytes(objects.get(DESCRIPTOR_REPLICA_KEY)!, original, `${damage}: replica 2`);
    const status = await s.status();
    assert.equal(status.state, "Ready", `${damage}: ${status.problems.join("; ")}`);
    assert.deepEqual(status.problems, []);
    assert.equal(new TextDecoder().decode(await s.get(NS, "x")), "data");
    await s.close();
  }
});

Deno.test("openStore() is Corrupted without any descriptor replica and data operations say to rebuild", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  await store.put(NS, "x", enc.encode("data"));
  await store.close();
  objects.delete(DESCRIPTOR_KEY);
  objects.delete(DESCRIPTOR_REPLICA_KEY);
  const before = copyObjects(objects);

  const s = await reopen(objects);
  assert.equal(s.state, "Corrupted");
  const status = await s.status();
  assert.equal(status.state, "Corrupted");
  assert.ok(status.problems.some((p) => p.includes(DESCRIPTOR_KEY)), status.problems.join("; "));
  const isRebuildAdvice = (e: unknown) => {
    assert.ok(e instanceof StoreCorruptedError, `got ${e}`);
    assert.match(e.message, /rebuild/);
    assert.match(e.message, /kit/i);
    return true;
  };
  await assert.rejects(s.put(NS, "y", enc.encode("y")), isRebuildAdvice);
  await assert.rejects(s.get(NS, "x"), isRebuildAdvice);
  await assert.rejects(s.list(NS), isRebuildAdvice);
  await assert.rejects(s.getStream(NS, "x"), isRebuildAdvice);
  await assert.rejects(s.getRange(NS, "x", 0, 1), isRebuildAdvice);
  await assert.rejects(s.stat(NS, "x"), isRebuildAdvice);
  await assert.rejects(s.versions(NS, "x"), isRebuildAdvice);
  await assert.rejects(s.delete(NS, "x"), isRebuildAdvice);
  await s.close();
  assertUnchanged(objects, before, "a Corrupted open");
});

Deno.test("openStore() with a dangling config pointer is Degraded, reports it and still reads", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const body = randomBytes(3000, 4);
  await store.put(NS, "x", body);
  await store.close();
  objects.set(CONFIG_CURRENT_KEY, enc.encode("99\n"));

  const s = await reopen(objects);
  const status = await s.status();
  assert.equal(status.state, "Degraded");
  assert.equal(status.config?.pointer, "dangling");
  assert.ok(
    status.problems.some((p) => p.startsWith(CONFIG_CURRENT_KEY)),
    `problems: ${status.problems.join("; ")}`,
  );
  assertBytes(await s.get(NS, "x"), body, "read while Degraded");
  assert.deepEqual((await s.list(NS)).items.map((i) => i.key), ["x"]);
  await s.close();
});

// ---------------------------------------------------------------------------
// 7. Bad input

/** A store with three packs (a, b, c), closed; returns its objects and pack keys. */
async function threePacks() {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const bodies = {
    a: randomBytes(1500, 11),
    b: randomBytes(1500, 12),
    c: randomBytes(1500, 13),
  };
  const packA = await putInOwnPack(store, objects, { a: bodies.a });
  const packB = await putInOwnPack(store, objects, { b: bodies.b });
  const packC = await putInOwnPack(store, objects, { c: bodies.c });
  const storeId = store.storeId;
  await store.close();
  return { objects, bodies, packA, packB, packC, storeId };
}

/**
 * Opens the Location after damage to `packB`: the damage is reported with the
 * pack's key, packs a and c still index, and nothing on the Location changes.
 */
async function checkDamagedPackB(
  fixture: Awaited<ReturnType<typeof threePacks>>,
  reason: RegExp,
  what: string,
) {
  const { objects, bodies, packB } = fixture;
  const before = copyObjects(objects);
  const counting = new CountingDriver(new MemoryDriver({ objects }));
  const s = await openStore(counting);
  const problem = s.problems.find((p) => p.startsWith(packB));
  assert.ok(problem, `${what}: problems name ${packB}: ${s.problems.join("; ")}`);
  assert.match(problem, reason, what);
  assert.ok((await s.status()).problems.includes(problem));
  assert.notEqual(s.state, "Corrupted");
  assertBytes(await s.get(NS, "a"), bodies.a, `${what}: a`);
  assertBytes(await s.get(NS, "c"), bodies.c, `${what}: c`);
  await assert.rejects(s.get(NS, "b"), ArtifactNotFoundError, `${what}: b is not indexed`);
  // No read was sized from a length found in the damaged pack.
  const largest = Math.max(
    ...counting.ranges.filter((r) => r.key.startsWith(PACK_PREFIX)).map((r) => r.length),
  );
  assert.ok(largest <= DEFAULT_TAIL_GUESS, `${what}: a read of ${largest} bytes`);
  assert.equal(counting.puts.length, 0, `${what}: nothing written`);
  await s.close();
  assertUnchanged(objects, before, what);
}

Deno.test("openStore() reports a truncated pack by its key and indexes the others", async () => {
  const fixture = await threePacks();
  const whole = fixture.objects.get(fixture.packB)!.slice();
  const n = whole.length;
  for (
    const cut of [
      0,
      1,
      15,
      16,
      100,
      Math.floor(n / 2),
      n - PACK_TRAILER_BYTES - 1,
      n - PACK_TRAILER_BYTES,
      n - 1,
    ]
  ) {
    fixture.objects.set(fixture.packB, whole.slice(0, cut));
    await checkDamagedPackB(fixture, /truncated/, `pack cut at ${cut} of ${n}`);
  }

  // When the index already holds the pack (here from a snapshot), reading a
  // blob of the truncated pack is a CorruptObjectError naming the pack.
  fixture.objects.set(fixture.packB, whole.slice());
  const s0 = await reopen(fixture.objects);
  await s0.snapshotIndex();
  await s0.close();
  fixture.objects.set(fixture.packB, whole.slice(0, Math.floor(n / 2)));
  const before = copyObjects(fixture.objects);
  const s = await reopen(fixture.objects);
  assert.equal((await s.status()).index?.source, "snapshot");
  await assert.rejects(s.get(NS, "b"), (e) => {
    assert.ok(e instanceof CorruptObjectError, `got ${e}`);
    assert.equal(e.key, fixture.packB);
    assert.match(e.reason, /truncated/);
    return true;
  });
  assertBytes(await s.get(NS, "a"), fixture.bodies.a, "a");
  await s.close();
  assertUnchanged(fixture.objects, before, "reading a truncated pack");
});

Deno.test("openStore() reports a flipped byte in a TOC by the pack's key", async () => {
  const fixture = await threePacks();
  const bytes = fixture.objects.get(fixture.packB)!;
  const trailer = parsePackTrailer(fixture.packB, bytes);
  for (const at of [trailer.tocOffset, trailer.tocOffset + Math.floor(trailer.tocLength / 2)]) {
    const saved = bytes[at]!;
    flip(fixture.objects, fixture.packB, at);
    await checkDamagedPackB(fixture, /checksum/i, `TOC byte ${at} flipped`);
    bytes[at] = saved;
  }
  // The TOC checksum in the trailer itself.
  flip(fixture.objects, fixture.packB, bytes.length - 1);
  await checkDamagedPackB(fixture, /checksum/i, "trailer checksum flipped");
});

Deno.test("Store.get() throws CorruptObjectError naming the pack for a flipped byte in a blob", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const regular = randomBytes(1500, 31);
  const chunked = randomBytes(20_000, 32);
  await store.put(NS, "regular", regular);
  await store.put(NS, "chunked", chunked);
  await store.put(NS, "fine", enc.encode("an inline body"));
  const reg = store.index.blob(store.index.current(NS, "regular")!.blobs[0]!)!;
  const chunks = store.index.current(NS, "chunked")!.blobs.map((id) => store.index.blob(id)!);
  const third = chunks[2]!;
  const thirdStart = chunks.slice(0, 2).reduce((s, c) => s + c.rawSize, 0);
  flip(objects, packKey(reg.packId!), reg.offset! + 700);
  flip(objects, packKey(third.packId!), third.offset! + 1);

  const names = (key: string) => (e: unknown) => {
    assert.ok(e instanceof CorruptObjectError, `got ${e}`);
    assert.equal(e.key, key);
    return true;
  };
  const check = async (s: Store, when: string) => {
    await assert.rejects(s.get(NS, "regular"), names(packKey(reg.packId!)), when);
    await assert.rejects(s.get(NS, "chunked"), names(packKey(third.packId!)), when);
    await assert.rejects(collect(await s.getStream(NS, "chunked")), names(packKey(third.packId!)));
    await assert.rejects(
      s.getRange(NS, "chunked", thirdStart + 5, 1),
      names(packKey(third.packId!)),
    );
    // Ranges that avoid the damaged chunk still read.
    assertBytes(await s.getRange(NS, "chunked", 0, 100), chunked.subarray(0, 100), when);
    assert.equal(new TextDecoder().decode(await s.get(NS, "fine")), "an inline body");
  };
  await check(store, "same handle");
  await store.close();
  const before = copyObjects(objects);
  const again = await reopen(objects);
  await check(again, "after reopen");
  await again.close();
  assertUnchanged(objects, before, "reading damaged blobs");
});

Deno.test("openStore() refuses a pack of a foreign store copied into the Location", async () => {
  const fixture = await threePacks();
  const foreign = new Map<string, Uint8Array>();
  const { store: other } = await initStore(new MemoryDriver({ objects: foreign }), SMALL);
  await other.put(NS, "b", randomBytes(1500, 99));
  await other.put(NS, "intruder", enc.encode("not yours"));
  await other.close();
  const [foreignPack] = packKeys(foreign);
  // Replace pack b by the foreign pack under b's key, and also add it under its own key.
  fixture.objects.set(fixture.packB, foreign.get(foreignPack!)!.slice());
  await checkDamagedPackB(fixture, /store/, "foreign pack under b's key");
  fixture.objects.set(foreignPack!, foreign.get(foreignPack!)!.slice());
  const s = await reopen(fixture.objects);
  assert.ok(s.problems.some((p) => p.startsWith(foreignPack!) && /belongs to store/.test(p)));
  await assert.rejects(s.get(NS, "intruder"), ArtifactNotFoundError);
  await s.close();
});

Deno.test("openStore() refuses a pack of an unknown format version and an oversize TOC length", async () => {
  const fixture = await threePacks();
  const whole = fixture.objects.get(fixture.packB)!.slice();
  const trailerAt = whole.length - PACK_TRAILER_BYTES;

  const future = whole.slice();
  new DataView(future.buffer).setUint16(trailerAt + 8, 2, true);
  fixture.objects.set(fixture.packB, future);
  await checkDamagedPackB(fixture, /version/, "pack format version 2");

  for (const length of [2 ** 40, 2 ** 53 + 2, 32 * MiB, whole.length]) {
    const oversize = whole.slice();
    setU64(oversize, trailerAt + 24, length);
    fixture.objects.set(fixture.packB, oversize);
    await checkDamagedPackB(fixture, /TOC/, `TOC length ${length}`);
  }
  const far = whole.slice();
  setU64(far, trailerAt + 16, 2 ** 45);
  fixture.objects.set(fixture.packB, far);
  await checkDamagedPackB(fixture, /TOC/, "TOC offset 2^45");
});

Deno.test("openStore() skips a garbage snapshot and uses an older valid one", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  await store.put(NS, "a", randomBytes(1000, 1));
  const older = await store.snapshotIndex();
  await store.put(NS, "b", randomBytes(1000, 2));
  const newer = await store.snapshotIndex();
  await store.put(NS, "c", randomBytes(1000, 3));
  await store.close();

  const good = objects.get(newer)!.slice();
  const garbage = [
    new Uint8Array(0),
    enc.encode("CAPSASNP"),
    good.slice(0, 100),
    good.slice(0, good.length - 1),
    (() => {
      const b = good.slice();
      b[b.length - 10] = b[b.length - 10]! ^ 1;
      return b;
    })(),
    (() => {
      const b = good.slice();
      new DataView(b.buffer).setUint16(8, 9); // an unknown snapshot format version
      return b;
    })(),
    randomBytes(5000, 5),
    // Not UTF-8 where the magic should be.
    new Uint8Array([0xff, 0xfe, 0x80, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
  ];
  for (const [i, g] of garbage.entries()) {
    objects.set(newer, g);
    const before = copyObjects(objects);
    const bus = new EventBus();
    const events = recordEvents(bus);
    const s = await reopen(objects, { bus });
    const status = await s.status();
    assert.equal(status.index?.source, "snapshot", `garbage ${i}`);
    assert.equal(status.index?.loadedFrom, older, `garbage ${i}`);
    assert.ok(
      events.some((e) =>
        e.type === "warning" && e.code === "snapshot_rejected" && e.message.includes(newer)
      ),
      `garbage ${i}: a warning names ${newer}`,
    );
    for (const [k, seed] of [["a", 1], ["b", 2], ["c", 3]] as const) {
      assertBytes(await s.get(NS, k), randomBytes(1000, seed), `garbage ${i}: ${k}`);
    }
    await s.close();
    assertUnchanged(objects, before, `garbage snapshot ${i}`);
  }
});

Deno.test("openStore() skips a well-framed snapshot whose database is garbage and uses an older one", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  await store.put(NS, "a", randomBytes(1000, 1));
  const older = await store.snapshotIndex();
  await store.put(NS, "b", randomBytes(1000, 2));
  const newer = await store.snapshotIndex();
  const storeId = store.storeId;
  await store.close();
  // Header, length and checksum are right: only the database inside is not one.
  objects.set(
    newer,
    encodeSnapshot(
      { storeId, schemaVersion: 1, highWaterMark: "", createdAt: Date.now() },
      randomBytes(4096, 4),
    ),
  );
  const before = copyObjects(objects);
  const bus = new EventBus();
  const events = recordEvents(bus);
  const s = await reopen(objects, { bus });
  const status = await s.status();
  assert.ok(
    events.some((e) =>
      e.type === "warning" && e.code === "snapshot_rejected" && e.message.includes(newer)
    ),
    "a warning names the rejected snapshot",
  );
  assert.equal(status.index?.source, "snapshot");
  assert.equal(status.index?.loadedFrom, older);
  assertBytes(await s.get(NS, "a"), randomBytes(1000, 1), "a");
  assertBytes(await s.get(NS, "b"), randomBytes(1000, 2), "b");
  await s.close();
  assertUnchanged(objects, before, "a snapshot with a garbage database");
});

Deno.test("openStore() falls back from a garbage host cache with a host_cache_unusable warning", async () => {
  const objects = new Map<string, Uint8Array>();
  const host = new MemoryDriver({ name: "host" });
  const { store } = await initStore(new MemoryDriver({ objects }), { ...SMALL, hostStorage: host });
  await store.put(NS, "a", randomBytes(1000, 1));
  await store.close();
  const good = host.objects.get(HOST_CACHE_KEY)!.slice();

  const foreignHost = new MemoryDriver();
  const { store: other } = await initStore(new MemoryDriver(), { hostStorage: foreignHost });
  await other.close();

  const garbage = [
    good.slice(0, good.length - 1),
    foreignHost.objects.get(HOST_CACHE_KEY)!,
    encodeSnapshot(
      { storeId: store.storeId, schemaVersion: 1, highWaterMark: "", createdAt: Date.now() },
      randomBytes(4096, 4),
    ),
    randomBytes(3000, 9),
    // Not UTF-8 where the magic should be.
    new Uint8Array([0xff, 0xfe, 0x80, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
  ];
  for (const [i, g] of garbage.entries()) {
    host.objects.set(HOST_CACHE_KEY, g.slice());
    const before = copyObjects(objects);
    const bus = new EventBus();
    const events = recordEvents(bus);
    const s = await reopen(objects, { bus, hostStorage: host });
    const status = await s.status();
    assert.notEqual(status.index?.source, "host-cache", `garbage cache ${i}`);
    assert.ok(
      events.some((e) => e.type === "warning" && e.code === "host_cache_unusable"),
      `garbage cache ${i}: warning`,
    );
    assertBytes(await s.get(NS, "a"), randomBytes(1000, 1), `garbage cache ${i}`);
    await s.close();
    assertUnchanged(objects, before, `garbage host cache ${i}`);
  }
});

Deno.test("Store.put() refuses an invalid namespace, key, metadata or content type and writes nothing", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  await store.put(NS, "existing", enc.encode("x"));
  const before = copyObjects(objects);
  const counts = store.index.counts();
  const body = randomBytes(5000, 1); // chunked: the checks must come before any blob
  const tooMany: Record<string, string> = {};
  for (let i = 0; i < 65; i++) tooMany[`k${i}`] = "v";
  const cases: Array<[string, () => Promise<unknown>]> = [
    ["empty namespace", () => store.put("", "k", body)],
    ["namespace with /", () => store.put("a/b", "k", body)],
    ["namespace ..", () => store.put("..", "k", body)],
    ["namespace too long", () => store.put("n".repeat(129), "k", body)],
    ["empty key", () => store.put(NS, "", body)],
    ["key with NUL", () => store.put(NS, "a\u0000b", body)],
    ["key with newline", () => store.put(NS, "a\nb", body)],
    ["key with a lone surrogate", () => store.put(NS, "a\ud800", body)],
    ["key too long", () => store.put(NS, "k".repeat(1025), body)],
    ["metadata key with space", () => store.put(NS, "k", body, { metadata: { "a b": "v" } })],
    ["metadata value with control", () => store.put(NS, "k", body, { metadata: { a: "\u0001" } })],
    ["65 metadata entries", () => store.put(NS, "k", body, { metadata: tooMany })],
    [
      "metadata value too long",
      () => store.put(NS, "k", body, { metadata: { a: "v".repeat(3000) } }),
    ],
    [
      "metadata not strings",
      () => store.put(NS, "k", body, { metadata: { a: 1 } as unknown as Record<string, string> }),
    ],
    ["content type with newline", () => store.put(NS, "k", body, { contentType: "text/x\n" })],
    ["stream of strings", () =>
      store.put(
        NS,
        "k",
        new ReadableStream({
          start(c) {
            c.enqueue("not bytes");
            c.close();
          },
        }) as unknown as ReadableStream<Uint8Array>,
      )],
  ];
  for (const [what, run] of cases) {
    await assert.rejects(run(), InvalidArgumentError, what);
  }
  for (
    const [what, run] of [
      ["get", () => store.get("a/b", "k")],
      ["list", () => store.list("")],
      ["delete", () => store.delete(NS, "")],
      ["versions", () => store.versions(NS, "a\u0000")],
      ["stat", () => store.stat("..", "k")],
    ] as const
  ) {
    await assert.rejects(run(), InvalidArgumentError, what);
  }
  await store.flush();
  assert.deepEqual(store.index.counts(), counts);
  await store.close();
  assertUnchanged(objects, before, "invalid puts");
});

Deno.test("Store.put() accepts path-like artifact keys as data, never as Location paths", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const hostile = ["../x", "../../etc/passwd", "/abs", "a//b", ".", "..", "C:\\win", "a/./b/"];
  for (const [i, k] of hostile.entries()) {
    await store.put(NS, k, randomBytes(100 + i * 1000, i)); // inline, regular and chunked
  }
  const check = async (s: Store) => {
    for (const [i, k] of hostile.entries()) {
      assertBytes(await s.get(NS, k), randomBytes(100 + i * 1000, i), k);
    }
    assert.deepEqual((await s.list(NS)).items.map((i) => i.key), [...hostile].sort());
  };
  await check(store);
  await store.close();
  for (const key of objects.keys()) validateKey(key); // every Location key is a safe key
  assert.ok(
    [...objects.keys()].every((k) => /^(store\.json|system\.|packs\/|blobs\/)/.test(k)),
    [...objects.keys()].join(", "),
  );
  const again = await reopen(objects);
  await check(again);
  await again.close();
});

// ---------------------------------------------------------------------------
// Closing

Deno.test("Store.close() waits for puts already started, which all become durable", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const bodies = Array.from({ length: 20 }, (_, i) => randomBytes(10 + i * 300, i));
  const puts = bodies.map((b, i) => store.put(NS, `k${i}`, streamOf(b)));
  await store.close();
  const settled = await Promise.allSettled(puts);
  const failed = settled.flatMap((r, i) =>
    r.status === "rejected" ? [`k${i}: ${(r.reason as Error).message}`] : []
  );
  assert.deepEqual(failed, [], "puts started before close() must not fail");
  const again = await reopen(objects);
  for (const [i, b] of bodies.entries()) assertBytes(await again.get(NS, `k${i}`), b, `k${i}`);
  await again.close();
});

Deno.test("Store methods throw ClosedError after close()", async () => {
  const { store } = await initStore(new MemoryDriver(), SMALL);
  await store.put(NS, "k", enc.encode("v"));
  await store.close();
  await store.close(); // idempotent
  await assert.rejects(store.get(NS, "k"), ClosedError);
  await assert.rejects(store.put(NS, "k", enc.encode("w")), ClosedError);
  await assert.rejects(store.list(NS), ClosedError);
});

Deno.test("Store.put() of a stream that fails part way rejects with its error and commits nothing", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  let n = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(c) {
      if (n++ < 5) c.enqueue(randomBytes(3000, n));
      else c.error(new Error("upstream went away"));
    },
  });
  await assert.rejects(store.put(NS, "partial", failing), /upstream went away/);
  await store.flush();
  await assert.rejects(store.get(NS, "partial"), ArtifactNotFoundError);
  assert.deepEqual(await store.versions(NS, "partial"), []);
  await store.close();
  const again = await reopen(objects);
  assert.deepEqual(await again.versions(NS, "partial"), []);
  assert.equal(again.index.counts().manifests, 0);
  await again.close();
});

// ---------------------------------------------------------------------------
// Write sessions (Store.batch, Store.putMany)

/** The sizes of the packs in `objects`, oldest first. */
function packSizes(objects: Map<string, Uint8Array>): number[] {
  return packKeys(objects).map((k) => objects.get(k)!.length);
}

Deno.test("Store.batch() fills packs to the target size: 3,000 sequential puts, every pack within 10 % but the last, all readable after reopen", async () => {
  const objects = new Map<string, Uint8Array>();
  // Uncompressed: a compressed TOC (its manifests shrink) ends a full pack below the target.
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    config: { ...SMALL.config, compression: "none" },
  });
  const bodies = Array.from({ length: 3000 }, (_, i) => randomBytes(40 + (i * 131) % 2000, i));
  const key = (i: number) => `f/${String(i).padStart(4, "0")}`;
  const batch = store.batch();
  for (let i = 0; i < bodies.length; i++) await batch.put(NS, key(i), bodies[i]!);
  const summary = await batch.close();
  assert.deepEqual([summary.stored, summary.failed], [3000, 0]);
  assert.equal(summary.bytes, bodies.reduce((n, b) => n + b.length, 0));
  const sizes = packSizes(objects);
  const target = SMALL.config!.packTargetSize!;
  assert.ok(sizes.length >= 40 && sizes.length <= 70, `${sizes.length} packs`);
  for (const s of sizes.slice(0, -1)) {
    assert.ok(s >= target && s <= target * 1.1, `a pack of ${s} bytes (target ${target})`);
  }
  // Results in put order, each with its version.
  assert.ok(
    summary.results.every((r, i) => r.ok && r.key === key(i) && r.info.size === bodies[i]!.length),
  );
  await store.close();
  const again = await reopen(objects);
  assert.equal(again.index.counts().artifacts, 3000);
  for (let i = 0; i < bodies.length; i += 7) {
    assertBytes(await again.get(NS, key(i)), bodies[i]!, key(i));
  }
  await again.close();
});

Deno.test("Store.batch() of deduplicated puts seals packs on their TOC's raw length: 9,000 manifests of 8 KiB metadata, no TOC past the format's limit", async () => {
  const objects = new Map<string, Uint8Array>();
  // The default target, compressed: the repeated metadata shrinks to little, so no pack fills
  // by its size (as the manifests of 200,000 files put again in another namespace).
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    config: { ...SMALL.config, packTargetSize: 16 * 1024 * KiB },
  });
  const same = randomBytes(3000, 7);
  const metadata: Record<string, string> = {};
  for (let m = 0; m < 4; m++) metadata[`m${m}`] = String(m).repeat(2000);
  const n = 9000; // × ≈ 8.2 KB of manifest JSON: past the 64 MiB a TOC may hold
  const batch = store.batch();
  for (let i = 0; i < n; i++) await batch.put(NS, `k${i}`, same, { metadata });
  const summary = await batch.close();
  assert.deepEqual(
    [summary.stored, summary.failed],
    [n, 0],
    String(summary.results.flatMap((r) => r.ok ? [] : [r.error.message])[0]),
  );
  const raw = packKeys(objects).map((k) => {
    const t = parsePackTrailer(k, objects.get(k)!);
    return t.tocRawLength || t.tocLength;
  });
  assert.ok(raw.length >= 4, `${raw.length} packs`);
  for (const r of raw) {
    assert.ok(r < TOC_FULL_BYTES + 64 * KiB, `a TOC of ${r} raw bytes (full at ${TOC_FULL_BYTES})`);
  }
  await store.close();
  const again = await reopen(objects);
  assert.equal(again.index.counts().artifacts, n);
  assert.deepEqual((await again.stat(NS, `k${n - 1}`)).metadata, metadata);
  assertBytes(await again.get(NS, "k4321"), same, "k4321");
  await again.close();
});

Deno.test("Store.batch() fails a bad name or a failing body alone; the other puts are stored", async () => {
  const { store } = await initStore(new MemoryDriver(), SMALL);
  const seen: Array<[number, boolean]> = [];
  const batch = store.batch({ onResult: (r, i) => seen.push([i, r.ok]) });
  const failing = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(randomBytes(3000, 1));
      c.error(new Error("disk went away"));
    },
  });
  await batch.put(NS, "a", randomBytes(500, 2));
  await batch.put(NS, "bad\u0000key", randomBytes(500, 3));
  await batch.put(NS, "b", failing);
  await batch.put("bad namespace!", "c", randomBytes(10, 4));
  await batch.put(NS, "d", streamOf(randomBytes(9000, 5)), { contentType: "text/plain" });
  const { results, stored, failed } = await batch.close();
  assert.deepEqual([stored, failed], [2, 3]);
  assert.deepEqual(results.map((r) => r.ok), [true, false, false, false, true]);
  assert.ok(!results[1]!.ok && results[1]!.error instanceof InvalidArgumentError);
  assert.ok(!results[2]!.ok && /disk went away/.test(results[2]!.error.message));
  assert.deepEqual(seen.sort((a, b) => a[0] - b[0]).map(([, ok]) => ok), [
    true,
    false,
    false,
    false,
    true,
  ]);
  assertBytes(await store.get(NS, "d"), randomBytes(9000, 5), "d");
  assert.equal((await store.stat(NS, "d")).contentType, "text/plain");
  await assert.rejects(store.get(NS, "b"), ArtifactNotFoundError);
  // Closed: idempotent, and further puts are refused.
  assert.equal((await batch.close()).stored, 2);
  await assert.rejects(batch.put(NS, "e", randomBytes(10, 6)), ClosedError);
  await store.close();
});

Deno.test("Store.batch({ keepResults: false }) reports outcomes through onResult and counts only", async () => {
  const { store } = await initStore(new MemoryDriver(), SMALL);
  const seen: Array<[number, boolean]> = [];
  const batch = store.batch({ keepResults: false, onResult: (r, i) => seen.push([i, r.ok]) });
  for (let i = 0; i < 50; i++) await batch.put(NS, `k${i}`, randomBytes(300, 100 + i));
  await batch.put(NS, "bad\u0000key", randomBytes(10, 1));
  const summary = await batch.close();
  assert.deepEqual(summary.results, []);
  assert.deepEqual([summary.stored, summary.failed, summary.bytes], [50, 1, 50 * 300]);
  assert.equal(seen.length, 51);
  assert.deepEqual(seen.filter(([, ok]) => !ok).map(([i]) => i), [50]);
  assertBytes(await store.get(NS, "k49"), randomBytes(300, 149), "k49");
  await store.close();
});

/**
 * A memory driver whose pack writes wait until released (`releases`), counting how many are
 * being written now (`writing`) and at most (`most`).
 */
function slowPacks() {
  const state = {
    releases: [] as Array<() => void>,
    writing: 0,
    most: 0,
    driver: undefined as unknown as MemoryDriver,
  };
  class SlowPacks extends MemoryDriver {
    override async put(key: string, bytes: Uint8Array, o?: DriverPutOptions): Promise<void> {
      if (key.startsWith(PACK_PREFIX)) {
        state.writing++;
        state.most = Math.max(state.most, state.writing);
        await new Promise<void>((r) => state.releases.push(r));
        state.writing--;
      }
      await super.put(key, bytes, o);
    }
  }
  state.driver = new SlowPacks();
  return state;
}

Deno.test("Store.batch().close() seals its last pack only once fewer than two packs are being written", async () => {
  const slow = slowPacks();
  const { releases } = slow;
  const { store } = await initStore(slow.driver, SMALL);
  const batch = store.batch();
  // 100 × 1.5 KiB: two full 64 KiB packs stuck in the driver, the rest in the open pack; all
  // accepted (the open pack is not full), so close() goes straight to sealing it.
  const puts = Array.from({ length: 100 }, (_, i) => batch.put(NS, `k${i}`, randomBytes(1500, i)));
  await Promise.all(puts);
  const deadline = Date.now() + 10_000;
  while (slow.writing < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(slow.writing, 2);
  const closing = batch.close();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(slow.writing, 2, "the last pack waits for a write to complete");
  const drain = setInterval(() => releases.splice(0).forEach((r) => r()), 2);
  try {
    assert.equal((await closing).stored, 100);
  } finally {
    clearInterval(drain);
  }
  assert.equal(slow.most, 2);
  await store.close();
});

Deno.test("Store.batch() holds at most two sealed packs in flight: a put waits while they are written", async () => {
  const slow = slowPacks();
  const { releases } = slow;
  const { store } = await initStore(slow.driver, SMALL);
  const batch = store.batch();
  let accepted = 0;
  const puts: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    // 200 × 1.5 KiB: about five 64 KiB packs' worth.
    puts.push(batch.put(NS, `k${i}`, randomBytes(1500, i)).then(() => void accepted++));
  }
  // Until the session stalls: two packs stuck in the driver and no put accepted for 50 ms (a
  // fixed sleep was too short on a loaded machine).
  for (let last = -1, deadline = Date.now() + 10_000; Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 50));
    if (slow.writing >= 2 && accepted === last) break;
    last = accepted;
  }
  assert.equal(slow.writing, 2, `two packs being written (${accepted} accepted)`);
  assert.ok(
    accepted < 200 && accepted >= 80,
    `${accepted} puts accepted while two packs are stuck`,
  );
  const closing = batch.close();
  while (slow.writing > 0 || accepted < 200) {
    releases.splice(0).forEach((r) => r());
    await new Promise((r) => setTimeout(r, 5));
  }
  const drain = setInterval(() => releases.splice(0).forEach((r) => r()), 2);
  try {
    assert.equal((await closing).stored, 200);
  } finally {
    clearInterval(drain);
  }
  assert.equal(slow.most, 2);
  await store.close();
});

Deno.test("Store.batch(): a failed pack write fails the puts it carries; the session goes on", async () => {
  const objects = new Map<string, Uint8Array>();
  const faulty = new FaultyDriver(new MemoryDriver({ objects }));
  const { store } = await initStore(faulty, SMALL);
  faulty.inject({ methods: ["put"], key: /^packs\//, nth: 2 });
  const bodies = Array.from({ length: 200 }, (_, i) => randomBytes(1500, 100 + i));
  const batch = store.batch();
  for (let i = 0; i < bodies.length; i++) await batch.put(NS, `k${i}`, bodies[i]!);
  const { results, stored, failed } = await batch.close();
  assert.ok(failed > 20 && stored > 100, `${stored} stored, ${failed} failed`);
  for (let i = 0; i < bodies.length; i++) {
    const r = results[i]!;
    if (r.ok) assertBytes(await store.get(NS, `k${i}`), bodies[i]!, `k${i}`);
    else {
      assert.ok(r.error instanceof TransientError, String(r.error));
      await assert.rejects(store.get(NS, `k${i}`), ArtifactNotFoundError);
    }
  }
  await store.close();
});

Deno.test("Store.batch(): chunked bodies span packs, a body repeated in the session is stored once", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const big = randomBytes(300 * KiB, 7);
  const batch = store.batch();
  await batch.put(NS, "big", big);
  await batch.put(NS, "big-again", streamOf(big));
  await batch.put(NS, "small", randomBytes(1000, 8));
  await batch.put(NS, "small-again", randomBytes(1000, 8));
  const { stored } = await batch.close();
  assert.equal(stored, 4);
  // As many blobs as a store holding each body once.
  const { store: once } = await initStore(new MemoryDriver(), SMALL);
  await once.put(NS, "big", big);
  await once.put(NS, "small", randomBytes(1000, 8));
  assert.equal(store.index.counts().blobs, once.index.counts().blobs);
  await once.close();
  assertBytes(await store.get(NS, "big-again"), big, "big-again");
  assertBytes(await store.get(NS, "small-again"), randomBytes(1000, 8), "small-again");
  await store.close();
  const again = await reopen(objects);
  assertBytes(await again.get(NS, "big"), big, "big after reopen");
  await again.close();
});

Deno.test("Store.close() closes an open write session: its accepted puts become durable", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const batch = store.batch();
  for (let i = 0; i < 10; i++) await batch.put(NS, `k${i}`, randomBytes(500, i));
  assert.equal(packKeys(objects).length, 0, "nothing written before the pack is full");
  await store.close();
  await assert.rejects(batch.put(NS, "late", randomBytes(5, 1)), ClosedError);
  assert.throws(() => store.batch(), ClosedError);
  const again = await reopen(objects);
  assert.equal(again.index.counts().artifacts, 10);
  assert.equal(packKeys(objects).length, 1);
  await again.close();
});

Deno.test("Store.putMany() reads an async iterable as it goes and reports per item", async () => {
  const { store } = await initStore(new MemoryDriver(), SMALL);
  let pulled = 0;
  async function* items() {
    for (let i = 0; i < 50; i++) {
      pulled++;
      yield { namespace: NS, key: i === 3 ? "" : `k${i}`, body: randomBytes(100 + i, i) };
    }
  }
  const summary = await store.putMany(items(), { concurrency: 4 });
  assert.equal(pulled, 50);
  assert.deepEqual([summary.stored, summary.failed], [49, 1]);
  assert.ok(!summary.results[3]!.ok);
  assert.equal(store.index.counts().packs, 1);
  // A failing iterable: what was accepted is committed, then its error propagates.
  async function* broken() {
    yield { namespace: NS, key: "x", body: randomBytes(10, 1) };
    throw new Error("listing failed");
  }
  await assert.rejects(store.putMany(broken()), /listing failed/);
  assert.equal((await store.stat(NS, "x")).size, 10);
  await store.close();
});

Deno.test("Store.put() takes a string as its UTF-8 bytes; Store.iterate() walks a whole namespace past any page size", async () => {
  const { store } = await initStore(new MemoryDriver(), { config: { packLingerMs: 1 } });
  const info = await store.put("ns", "greeting", "héllo");
  assert.equal(info.size, 6);
  assert.equal(new TextDecoder().decode(await store.get("ns", "greeting")), "héllo");
  const batch = store.batch();
  for (let i = 0; i < 2500; i++) await batch.put("many", `k${String(i).padStart(4, "0")}`, `v${i}`);
  await batch.close();
  const keys: string[] = [];
  for await (const a of store.iterate("many")) keys.push(a.key);
  assert.equal(keys.length, 2500, "not cut at the 1,000-item page");
  assert.deepEqual(keys.slice(0, 2), ["k0000", "k0001"]);
  const some: string[] = [];
  for await (const a of store.iterate("many", { prefix: "k24" })) some.push(a.key);
  assert.equal(some.length, 100);
  await store.close();
});

Deno.test("namespaces() is a read like the others: it catches up on what another handle wrote", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store: a } = await initStore(new MemoryDriver({ objects }));
  await a.put("first", "k", "v");
  const b = await openStore(new MemoryDriver({ objects }), { refreshIntervalMs: 0 });
  assert.deepEqual(await b.namespaces(), ["first"]);
  await a.put("second", "k", "v");
  await a.flush();
  assert.deepEqual(await b.namespaces(), ["first", "second"]);
  await a.close();
  await b.close();
});

Deno.test("delete() catches up first: a key another handle deleted is not deleted twice", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store: a } = await initStore(new MemoryDriver({ objects }));
  await a.put("ns", "k", "v");
  const b = await openStore(new MemoryDriver({ objects }), { refreshIntervalMs: Infinity });
  assert.equal(await a.delete("ns", "k"), true);
  // b's index still holds "k" as current; its delete looks at the Location first.
  assert.equal(await b.delete("ns", "k"), false);
  assert.equal((await a.versions("ns", "k")).length, 2, "one version and one tombstone");
  await a.close();
  await b.close();
});
