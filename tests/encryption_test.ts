/**
 * Encryption end to end (docs/FORMAT.md §9): what an encrypted store puts on
 * the Location and the host never shows a file's bytes or names; every file
 * comes back with the passphrase; wrong or missing passphrases and tampered
 * sealed bytes are typed errors that change nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { containsBytes, filesUnder } from "./disk.ts";
import { CorruptObjectError } from "../errors.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { EventBus, initStore, openStore } from "../mod.ts";
import { MemoryDriver } from "../drivers/memory.ts";

const KDF = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const MARKER = "ZEBRA-MARKER-91c3";
const NAME = "quarterly-secret-report";

function encodings(text: string): Uint8Array[] {
  const utf8 = new TextEncoder().encode(text);
  const utf16 = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) utf16[i * 2] = text.charCodeAt(i);
  return [utf8, utf16, new TextEncoder().encode(btoa(text).slice(0, 12))];
}

Deno.test("an encrypted store shows no file content or name on the Location or the host", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const host = await openLocalFs(join(root, "host"), { create: true });
    const { store, recoveryKit } = await initStore(driver, {
      hostStorage: host,
      encryption: { passphrase: "correct horse", kdf: KDF },
    });
    const bodies = new Map<string, Uint8Array>();
    const text = (MARKER + " lorem ipsum dolor sit amet ").repeat(4000);
    for (let i = 0; i < 20; i++) {
      const body = new TextEncoder().encode(i % 2 === 0 ? `${text}${i}` : `${MARKER} small ${i}`);
      bodies.set(`${NAME}/${i}.txt`, body);
      await store.put("docs", `${NAME}/${i}.txt`, body);
    }
    await store.snapshotIndex();
    await store.close();
    assert.ok(recoveryKit.includes("key-slot: "));

    const needles = [...encodings(MARKER), ...encodings(NAME)];
    const files = [
      ...await filesUnder(join(root, "store")),
      ...await filesUnder(join(root, "host")),
    ];
    assert.ok(files.some((f) => f.includes("/packs/")));
    assert.ok(files.some((f) => f.includes("snapshots")));
    assert.ok(files.some((f) => f.endsWith("index/cache")));
    for (const f of files) {
      const bytes = await Deno.readFile(f);
      for (const n of needles) assert.ok(!containsBytes(bytes, n), `${f} holds a marker`);
    }

    const again = await openStore(driver, { hostStorage: host, passphrase: "correct horse" });
    assert.equal(again.state, "Ready");
    for (const [key, body] of bodies) assert.deepEqual(await again.get("docs", key), body);
    await again.close();
    const cold = await openStore(driver, { passphrase: "correct horse" });
    for (const [key, body] of bodies) assert.deepEqual(await cold.get("docs", key), body);
    await cold.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("wrong and missing passphrases are typed errors that change nothing", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const { store } = await initStore(driver, { encryption: { passphrase: "right", kdf: KDF } });
    await store.put("ns", "k", "v");
    await store.close();
    const before = await filesUnder(join(root, "store"));
    await assert.rejects(
      openStore(driver, { passphrase: "wrong" }),
      (e: unknown) => (e as { code?: string }).code === "wrong_passphrase",
    );
    await assert.rejects(
      openStore(driver),
      (e: unknown) =>
        (e as { code?: string }).code === "passphrase_required" &&
        /CAPSA_PASSPHRASE/.test((e as Error).message) &&
        /--passphrase-file/.test((e as Error).message),
    );
    assert.deepEqual(await filesUnder(join(root, "store")), before);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("one flipped byte in a sealed blob is a CorruptObjectError naming the pack", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const { store } = await initStore(driver, {
      encryption: { passphrase: "p", kdf: KDF },
      config: { compression: "none" },
    });
    await store.put("ns", "k", new Uint8Array(5000).fill(7));
    await store.close();
    const pack = (await filesUnder(join(root, "store"))).find((f) => f.includes("/packs/"))!;
    const bytes = await Deno.readFile(pack);
    bytes[100] = bytes[100]! ^ 1;
    await Deno.writeFile(pack, bytes);
    const again = await openStore(driver, { passphrase: "p" });
    await assert.rejects(
      again.get("ns", "k"),
      (e: unknown) =>
        e instanceof CorruptObjectError && e.key.startsWith("packs/") &&
        /authentication/.test(e.reason),
    );
    await again.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A small encrypted store in memory, with a loose blob, a snapshot, a host cache and a log. */
async function tamperable() {
  const location = new Map<string, Uint8Array>();
  const host = new Map<string, Uint8Array>();
  const open = () =>
    openStore(new MemoryDriver({ objects: location }), {
      hostStorage: new MemoryDriver({ objects: host }),
      passphrase: "p",
    });
  const { store } = await initStore(new MemoryDriver({ objects: location }), {
    hostStorage: new MemoryDriver({ objects: host }),
    encryption: { passphrase: "p", kdf: KDF },
    chunking: { min: 1024, avg: 2048, max: 4096 },
    config: {
      packTargetSize: 16 * 1024,
      chunkThreshold: 64 * 1024,
      manifestStorage: "Replicated",
    },
  });
  await store.put("ns", "small", "a small body");
  await store.put("ns", "loose", new Uint8Array(20_000).fill(3)); // larger than a pack: loose
  await store.snapshotIndex();
  await store.close();
  return { location, host, open };
}

function flip(map: Map<string, Uint8Array>, key: string, at: (n: number) => number): void {
  const bytes = map.get(key)!.slice();
  const i = at(bytes.length);
  bytes[i] = bytes[i]! ^ 1;
  map.set(key, bytes);
}

const keyOf = (map: Map<string, Uint8Array>, prefix: string) =>
  [...map.keys()].find((k) => k.startsWith(prefix))!;

Deno.test("a flipped byte in each kind of sealed object: a typed error or warning naming it, never wrong bytes", async () => {
  // A sealed loose blob.
  {
    const t = await tamperable();
    const key = keyOf(t.location, "blobs/");
    flip(t.location, key, (n) => n - 20);
    const s = await t.open();
    await assert.rejects(
      s.get("ns", "loose"),
      (e: unknown) =>
        e instanceof CorruptObjectError && e.key === key && /authentication/.test(e.reason),
    );
    assert.deepEqual(new TextDecoder().decode(await s.get("ns", "small")), "a small body");
    await s.close();
  }
  // A pack's sealed TOC, its checksum recomputed (as someone who can write the bucket would).
  {
    const t = await tamperable();
    const key = [...t.location.keys()].filter((k) => k.startsWith("packs/")).sort()[0]!;
    const pack = t.location.get(key)!.slice();
    const view = new DataView(pack.buffer);
    const trailer = pack.length - 64;
    const tocOffset = Number(view.getBigUint64(trailer + 16, true));
    pack[tocOffset + 30] = pack[tocOffset + 30]! ^ 1;
    const { createHash } = await import("node:crypto");
    const sum = createHash("sha256").update(pack.subarray(tocOffset, trailer)).update(
      pack.subarray(trailer, trailer + 32),
    ).digest();
    pack.set(sum, trailer + 32);
    t.location.set(key, pack);
    t.host.clear(); // no host cache: the packs are read
    for (const k of [...t.location.keys()]) if (k.includes("snapshots/")) t.location.delete(k);
    const s = await t.open();
    assert.ok(
      s.problems.some((p) => p.startsWith(key) && /fails authentication/.test(p)),
      s.problems.join("; "),
    );
    await s.close();
  }
  // An index snapshot's sealed body: rejected with a warning, the store opens from the packs.
  {
    const t = await tamperable();
    const key = keyOf(t.location, "system.state/index/snapshots/");
    flip(t.location, key, (n) => n - 5);
    t.host.clear();
    const warnings: string[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => {
      if (e.type === "warning") warnings.push(e.message);
    });
    const s = await openStore(new MemoryDriver({ objects: t.location }), { passphrase: "p", bus });
    assert.ok(
      warnings.some((w) => w.includes(key) && /authentication/.test(w)),
      warnings.join("; "),
    );
    assert.deepEqual(new TextDecoder().decode(await s.get("ns", "small")), "a small body");
    await s.close();
  }
  // The host cache: unusable, with a warning; the snapshot is loaded instead.
  {
    const t = await tamperable();
    flip(t.host, "index/cache", (n) => n - 5);
    const warnings: string[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => {
      if (e.type === "warning") warnings.push(`${e.code}: ${e.message}`);
    });
    const s = await openStore(new MemoryDriver({ objects: t.location }), {
      hostStorage: new MemoryDriver({ objects: t.host }),
      passphrase: "p",
      bus,
    });
    assert.ok(
      warnings.some((w) => /host_cache_unusable.*authentication/.test(w)),
      warnings.join("; "),
    );
    assert.equal(s.state, "Ready");
    await s.close();
  }
  // A manifest log entry on the host.
  {
    const t = await tamperable();
    const key = keyOf(t.host, "manifest-log/");
    flip(t.host, key, (n) => n - 3);
    t.host.delete("index/cache");
    for (const k of [...t.location.keys()]) if (k.includes("snapshots/")) t.location.delete(k);
    const s = await t.open();
    assert.ok(
      s.problems.some((p) => p.includes(key) && /authentication/.test(p)),
      s.problems.join("; "),
    );
    await s.close();
  }
  // One copy of a key slot: healed from its twin. Both copies: a clear error, nothing written.
  {
    const t = await tamperable();
    const primary = keyOf(t.location, "system.keys/");
    const replica = keyOf(t.location, "system.state/keys/");
    const sound = t.location.get(primary)!;
    flip(t.location, primary, (n) => n - 10);
    const s = await t.open();
    assert.equal(s.state, "Ready");
    await s.close();
    assert.deepEqual(t.location.get(primary), sound);
    flip(t.location, primary, (n) => n - 10);
    flip(t.location, replica, (n) => n - 10);
    const before = new Map([...t.location].map(([k, v]) => [k, v.slice()]));
    await assert.rejects(
      t.open(),
      (e: unknown) => e instanceof CorruptObjectError && /no key slot is left/.test(e.reason),
    );
    assert.deepEqual(t.location, before);
  }
});

Deno.test("a host that knows a store is encrypted refuses replaced Location replicas that say it is not", async () => {
  const location = new Map<string, Uint8Array>();
  const hostObjects = new Map<string, Uint8Array>();
  const host = () => new MemoryDriver({ objects: hostObjects });
  const { store } = await initStore(new MemoryDriver({ objects: location }), {
    hostStorage: host(),
    encryption: { passphrase: "p", kdf: KDF },
  });
  await store.put("ns", "k", "secret");
  await store.close();
  // Someone with write access to the bucket replaces both Location replicas with an unencrypted
  // descriptor of the same store id, so that writers would store plain bytes.
  const { createDescriptor, encodeDescriptor, decodeDescriptor } = await import(
    "../format/descriptor.ts"
  );
  const real = decodeDescriptor("store.json", location.get("store.json")!);
  const plain = encodeDescriptor(
    createDescriptor({ storeId: real.storeId, hash: real.hash, chunking: real.chunking }),
  );
  location.set("store.json", plain);
  location.set("system.state/descriptor/store.json", plain);
  const before = new Map([...location].map(([k, v]) => [k, v.slice()]));
  await assert.rejects(
    openStore(new MemoryDriver({ objects: location }), { hostStorage: host(), passphrase: "p" }),
    (e: unknown) =>
      e instanceof CorruptObjectError && /refusing to open it unencrypted/.test(e.reason),
  );
  assert.deepEqual(location, before);
});

Deno.test("an encrypted store digests a chunked body from its chunk ids, and digestHasher() agrees", async () => {
  const { CHUNK_LIST_PREFIX } = await import("../format/crypto.ts");
  const chunking = { min: 1024, avg: 4096, max: 16384 };
  const { store } = await initStore(new MemoryDriver(), {
    encryption: { passphrase: "p", kdf: KDF },
    chunking,
    config: { chunkThreshold: 8192, inlineThreshold: 16, packTargetSize: 64 * 1024 },
  });
  const big = new Uint8Array(100_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  const small = big.subarray(0, 5000);
  for (const [key, body] of [["big", big], ["small", small]] as const) {
    const info = await store.put("ns", key, body);
    // The same digest from the local bytes, fed in odd pieces, as put --from compares them.
    const h = store.digestHasher();
    for (let at = 0; at < body.length; at += 3001) h.update(body.subarray(at, at + 3001));
    assert.equal(h.digestHex(), info.digest, key);
  }
  // The chunked body's digest is the keyed hash of the prefix and its chunk ids, in order.
  const ids = store.index.current("ns", "big")!.blobs;
  assert.ok(ids.length > 5, `${ids.length} chunks`);
  const list = store.keys!.ids.hasher().update(CHUNK_LIST_PREFIX);
  for (const id of ids) list.update(Uint8Array.fromHex(id));
  assert.equal(list.digestHex(), (await store.stat("ns", "big")).digest);
  // A small (regular) body's digest is the keyed hash of its bytes: its own blob id.
  assert.equal((await store.stat("ns", "small")).digest, store.keys!.ids.bytes(small));
  await store.close();
});
