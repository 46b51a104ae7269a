/**
 * zstd compression end to end (docs/FORMAT.md §5.5.7): a store of text
 * files round-trips byte for byte and is much smaller than uncompressed;
 * random data stays uncompressed; a damaged compressed blob is a typed error
 * from `get` and from `verify --data`, never wrong
 * bytes; garbage collection copies compressed blobs as they are; a store made
 * before compression (config format 1) reads and writes uncompressed;
 * `capsa init --compression/--compression-level` set the config and
 * `capsa status` shows it; `capsa verify --data`, a real process, checks the
 * raw digest after decompression.
 */

import assert from "node:assert/strict";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { CorruptObjectError } from "../errors.ts";
import { decompressExactly, maxCompressedLength } from "../format/compression.ts";
import { canonicalChecksum } from "../format/fields.ts";
import { hashBytes } from "../format/hashing.ts";
import { type PackBlobEntry, readPackToc } from "../format/pack.ts";
import { configReplicaKey, configVersionKey, PACK_PREFIX } from "../layout.ts";
import { createGarbageCollectAgent } from "../maintenance/gc.ts";
import { createVerificationAgent } from "../maintenance/verify.ts";
import { EventBus } from "../store/events.ts";
import { initStore, openStore } from "../store/store.ts";
import type { InitStoreOptions } from "../store/types.ts";
import { body, Xorshift } from "./data.ts";
import { capsa, capsaOk } from "./processes.ts";
import { pathExists } from "../cli/_files.ts";

const KiB = 1024;
const NS = "docs";
const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Text files of /usr/share/doc (not the .gz ones), about `budget` bytes in
 * all; generated text when the directory is missing.
 */
async function textCorpus(budget: number): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      if (total >= budget) return;
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && /(copyright|\.txt|\.md|\.html|README[^/]*|NEWS|TODO)$/.test(e.name)) {
        const bytes = await Deno.readFile(path);
        if (bytes.length === 0 || bytes.length > 512 * KiB) continue;
        files.set(path.slice(1).replaceAll(/[^a-z0-9._/-]/gi, "_").toLowerCase(), bytes);
        total += bytes.length;
      }
    }
  };
  await walk("/usr/share/doc").catch(() => {});
  for (let i = 0; total < budget; i++) {
    const words = Array.from({ length: 2000 }, (_, j) => `word${(i * 7 + j * 13) % 500}`);
    const bytes = enc.encode(words.join(" "));
    files.set(`generated/${i}.txt`, bytes);
    total += bytes.length;
  }
  return files;
}

function packBytes(objects: Map<string, Uint8Array>): number {
  let n = 0;
  for (const [k, v] of objects) if (k.startsWith(PACK_PREFIX)) n += v.length;
  return n;
}

const SMALL: InitStoreOptions = {
  chunking: { min: 4 * KiB, avg: 16 * KiB, max: 64 * KiB },
  config: { chunkThreshold: 16 * KiB, packTargetSize: 256 * KiB, packLingerMs: 1 },
};

async function storeAll(
  compression: "zstd" | "none",
  files: Map<string, Uint8Array>,
): Promise<Map<string, Uint8Array>> {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    config: { ...SMALL.config, compression },
  });
  await store.putMany([...files].map(([key, bytes]) => ({ namespace: NS, key, body: bytes })));
  await store.close();
  return objects;
}

Deno.test("a store of text files round-trips byte for byte and is at least 40 % smaller with zstd than with none", async () => {
  const files = await textCorpus(3 * 1024 * KiB);
  const zstd = await storeAll("zstd", files);
  const none = await storeAll("none", files);
  const [z, n] = [packBytes(zstd), packBytes(none)];
  assert.ok(
    z <= n * 0.6,
    `zstd ${z} bytes, none ${n} bytes: ${(100 * (1 - z / n)).toFixed(1)} % smaller`,
  );
  const store = await openStore(new MemoryDriver({ objects: zstd }));
  for (const [key, bytes] of files) assert.deepEqual(await store.get(NS, key), bytes, key);
  let compressed = 0;
  for (const [k, v] of zstd) {
    if (!k.startsWith(PACK_PREFIX)) continue;
    const toc = await readPackToc(store.driver, k, { size: v.length });
    compressed += toc.blobs.filter((b) => b.compression === "zstd").length;
  }
  assert.ok(compressed > 0);
  await store.close();
});

Deno.test("random bodies are stored uncompressed (compression 0) in a zstd store", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  assert.equal(store.config!.compression, "zstd");
  for (let i = 0; i < 4; i++) await store.put(NS, `r${i}`, body(i, 40 * KiB));
  await store.flush();
  let blobs = 0;
  for (const [k, v] of objects) {
    if (!k.startsWith(PACK_PREFIX)) continue;
    for (const b of (await readPackToc(store.driver, k, { size: v.length })).blobs) {
      assert.deepEqual([b.compression, b.storedLength], ["none", b.rawLength]);
      blobs++;
    }
  }
  assert.ok(blobs >= 8);
  for (let i = 0; i < 4; i++) assert.deepEqual(await store.get(NS, `r${i}`), body(i, 40 * KiB));
  await store.close();
});

/** A store holding one compressible body, and where its first compressed blob lies. */
async function oneTextStore() {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), SMALL);
  const text = enc.encode("the quick brown fox jumps over the lazy dog\n".repeat(200));
  await store.put(NS, "fox.txt", text);
  await store.close();
  const packKey = [...objects.keys()].find((k) => k.startsWith(PACK_PREFIX))!;
  const reopened = await openStore(new MemoryDriver({ objects }));
  const toc = await readPackToc(reopened.driver, packKey);
  await reopened.close();
  const entry = toc.blobs.find((b) => b.compression === "zstd")!;
  return { objects, packKey, entry, text };
}

Deno.test("a flipped bit inside a compressed blob: get and verify --data each report the pack, never wrong bytes", async () => {
  const { objects, packKey, entry, text } = await oneTextStore();
  assert.ok(entry && entry.storedLength < entry.rawLength);
  const pack = objects.get(packKey)!;
  pack[entry.offset + Math.floor(entry.storedLength / 2)]! ^= 0x04;

  const store = await openStore(new MemoryDriver({ objects }));
  assert.equal(entry.id, hashBytes("blake3", text), "the id is the raw bytes' digest");
  const got = await store.get(NS, "fox.txt").then(
    (bytes) => bytes,
    (e: unknown) => e,
  );
  assert.ok(got instanceof CorruptObjectError, `got ${got}`);
  assert.equal(got.key, packKey);
  assert.match(got.reason, new RegExp(`blob ${entry.id} at offset ${entry.offset}`));
  assert.notDeepEqual(got, text);

  const verify = createVerificationAgent(store, new EventBus(), { data: true });
  await verify.run();
  const problems = verify.problems();
  assert.ok(
    problems.some((p) => p.key === packKey && p.detail.includes(entry.id)),
    JSON.stringify(problems),
  );
  await store.close();
});

Deno.test("gc copies compressed blobs as they are (compression, lengths) and the store reads back whole", async () => {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const objects = new Map<string, Uint8Array>();
  const driver = () => new MemoryDriver({ objects, clock: () => clock.now });
  const { store } = await initStore(driver(), { ...SMALL, clock: () => clock.now });
  const texts = Array.from(
    { length: 6 },
    (_, i) => enc.encode(`document ${i}: ${"lorem ipsum dolor sit amet, ".repeat(300 + i)}`),
  );
  for (const [i, t] of texts.entries()) {
    await store.put(NS, `t${i}`, t);
    await store.flush();
  }
  for (const i of [0, 2, 4]) await store.delete(NS, `t${i}`);
  await store.flush();
  const before = new Map<
    string,
    { storedLength: number; rawLength: number; compression: string }
  >();
  for (const [k, v] of objects) {
    if (!k.startsWith(PACK_PREFIX)) continue;
    for (const b of (await readPackToc(store.driver, k, { size: v.length })).blobs) {
      before.set(b.id, b);
    }
  }
  const agent = createGarbageCollectAgent(store, new EventBus(), { grace: 1000 });
  agent.validate();
  const running = agent.run();
  while (agent.stats().phase !== "grace" && agent.stats().phase !== "done") {
    await new Promise((r) => setTimeout(r, 5));
  }
  clock.now += 5000;
  await running;
  assert.ok(agent.stats().packsWritten >= 1, JSON.stringify(agent.stats()));
  let copied = 0;
  for (const [k, v] of objects) {
    if (!k.startsWith(PACK_PREFIX)) continue;
    const toc = await readPackToc(store.driver, k, { size: v.length });
    if (toc.supersedes.length === 0) continue;
    for (const b of toc.blobs) {
      const was = before.get(b.id)!;
      assert.deepEqual(
        [b.compression, b.storedLength, b.rawLength],
        [was.compression, was.storedLength, was.rawLength],
      );
      if (b.compression === "zstd") copied++;
    }
  }
  assert.ok(copied >= 3, `${copied} compressed blobs copied`);
  for (const i of [1, 3, 5]) assert.deepEqual(await store.get(NS, `t${i}`), texts[i]);
  const verify = createVerificationAgent(store, new EventBus(), { data: true });
  await verify.run();
  assert.deepEqual(verify.problems(), []);
  await store.close();
});

Deno.test("a store made before compression (config format 1, no compression field) reads and writes uncompressed", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), {
    ...SMALL,
    config: { ...SMALL.config, compression: "none" },
  });
  const first = enc.encode("written before the upgrade. ".repeat(200));
  await store.put(NS, "old.txt", first);
  await store.close();
  // Rewrite config version 1 as an older capsa wrote it: format 1, no compression fields.
  const json = JSON.parse(dec.decode(objects.get(configVersionKey(1))!));
  delete json.compression;
  delete json.compressionLevel;
  delete json.checksum;
  json.formatVersion = 1;
  json.checksum = canonicalChecksum(json);
  const v1 = enc.encode(JSON.stringify(json, null, 2) + "\n");
  objects.set(configVersionKey(1), v1);
  objects.set(configReplicaKey(1), v1);

  const old = await openStore(new MemoryDriver({ objects }));
  assert.equal(old.state, "Ready");
  assert.deepEqual([old.config!.compression, old.config!.compressionLevel], ["none", 3]);
  const second = enc.encode("written after the upgrade. ".repeat(200));
  await old.put(NS, "new.txt", second);
  await old.close();
  const again = await openStore(new MemoryDriver({ objects }));
  assert.deepEqual(await again.get(NS, "old.txt"), first);
  assert.deepEqual(await again.get(NS, "new.txt"), second);
  for (const [k, v] of objects) {
    if (!k.startsWith(PACK_PREFIX)) continue;
    const trailerFlags = v[v.length - 64 + 11];
    assert.equal(trailerFlags, 0, `${k}: TOC stored as it is`);
    for (const b of (await readPackToc(again.driver, k, { size: v.length })).blobs) {
      assert.equal(b.compression, "none");
    }
  }
  await again.close();
});

Deno.test("capsa init --compression/--compression-level: recorded in the config, shown by status; bad values exit 2 and create nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-compression-cli-" });
  const host = ["--host-dir", `${dir}/host`];
  try {
    const cases = [
      { args: [], json: ["zstd", 3], line: "zstd level 3" },
      {
        args: ["--compression", "zstd", "--compression-level", "19"],
        json: ["zstd", 19],
        line: "zstd level 19",
      },
      { args: ["--compression-level", "1"], json: ["zstd", 1], line: "zstd level 1" },
      { args: ["--compression", "none"], json: ["none", 3], line: "none" },
    ];
    for (const [i, c] of cases.entries()) {
      const location = `${dir}/store${i}`;
      await capsaOk(["init", location, "--kit", `${dir}/kit${i}.txt`, ...c.args, ...host]);
      const status = JSON.parse((await capsaOk(["status", location, "--json", ...host])).stdout);
      assert.deepEqual(
        [status.config.compression, status.config.compressionLevel],
        c.json,
        c.args.join(" "),
      );
      const text = (await capsaOk(["status", location, ...host])).stdout;
      assert.match(text, new RegExp(`^compression +${c.line}$`, "m"), text);
    }
    // What the config says is what the writer does: text stored compressed or not.
    const text = enc.encode("the quick brown fox jumps over the lazy dog\n".repeat(2000));
    for (const i of [0, 3]) {
      await capsaOk(["put", `${dir}/store${i}`, NS, "fox.txt", ...host], { stdin: text });
    }
    const packsOf = async (dir: string): Promise<number> => {
      let n = 0;
      for await (const e of Deno.readDir(dir)) {
        const path = `${dir}/${e.name}`;
        n += e.isDirectory ? await packsOf(path) : (await Deno.stat(path)).size;
      }
      return n;
    };
    const [zstd, none] = [
      await packsOf(`${dir}/store0/packs`),
      await packsOf(`${dir}/store3/packs`),
    ];
    assert.ok(zstd < text.length / 10, `zstd: ${zstd} bytes`);
    assert.ok(none > text.length, `none: ${none} bytes`);

    const bad: Array<[string[], RegExp]> = [
      [["--compression", "gzip"], /^capsa: usage: --compression must be zstd or none, got "gzip"$/],
      [["--compression-level", "0"], /--compression-level.*an integer from 1 to 19.*"0"/],
      [["--compression-level", "20"], /--compression-level.*an integer from 1 to 19.*"20"/],
      [["--compression-level", "three"], /--compression-level.*an integer from 1 to 19/],
      [
        ["--compression", "none", "--compression-level", "5"],
        /--compression-level applies to zstd only/,
      ],
    ];
    for (const [args, message] of bad) {
      const location = `${dir}/bad`;
      const r = await capsa(["init", location, "--kit", `${dir}/bad-kit.txt`, ...args, ...host]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, message);
      assert.equal(await pathExists(location), false, `${args.join(" ")} created the store`);
      assert.equal(await pathExists(`${dir}/bad-kit.txt`), false, `${args.join(" ")} wrote a kit`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa verify --data (a real process) names a compressed blob whose frame is broken, and one whose frame decompresses to other bytes (the raw digest is checked)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-compression-verify-" });
  const host = ["--host-dir", `${dir}/host`];
  const location = `${dir}/store`;
  try {
    await capsaOk(["init", location, "--kit", `${dir}/kit.txt`, ...host]);
    const words = (seed: number) => {
      const r = new Xorshift(seed);
      const vocabulary = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split(" ");
      return enc.encode(
        Array.from({ length: 4000 }, () => vocabulary[r.next() % 10]! + (r.next() % 100)).join(" "),
      );
    };
    const files = { "broken.txt": words(1), "altered.txt": words(2) };
    for (const [key, bytes] of Object.entries(files)) {
      await capsaOk(["put", location, NS, key, ...host], { stdin: bytes });
    }
    const driver = await openLocalFs(location);
    const packs = await Array.fromAsync(driver.list(PACK_PREFIX));
    const entries: Array<PackBlobEntry & { pack: string }> = [];
    for (const p of packs) {
      for (const b of (await readPackToc(driver, p.key, { size: p.size })).blobs) {
        entries.push({ pack: p.key, ...b });
      }
    }
    const entryOf = (bytes: Uint8Array) =>
      entries.find((e) => e.id === hashBytes("blake3", bytes))!;
    const broken = entryOf(files["broken.txt"]);
    const altered = entryOf(files["altered.txt"]);
    for (const e of [broken, altered]) assert.equal(e.compression, "zstd", JSON.stringify(e));

    // One byte of the first frame's header: the stream no longer decodes.
    const flip = async (pack: string, at: number, mask: number) => {
      const bytes = await driver.get(pack);
      bytes[at]! ^= mask;
      await driver.put(pack, bytes);
    };
    await flip(broken.pack, broken.offset + 4, 0xff);
    // One byte of the second frame chosen so that it still decompresses, to other raw bytes of the
    // same length: only the digest of the raw bytes can tell.
    const frame = (await driver.get(altered.pack)).slice(
      altered.offset,
      altered.offset + altered.storedLength,
    );
    let at = -1;
    for (let i = frame.length - 1; i > 8 && at < 0; i--) {
      frame[i]! ^= 0x01;
      try {
        const out = decompressExactly("x", frame, altered.rawLength, "probe");
        if (hashBytes("blake3", out) !== altered.id) at = i;
      } catch { /* this byte breaks the frame: try another */ }
      frame[i]! ^= 0x01;
    }
    assert.ok(at > 0, "no byte of the frame decompresses to other bytes");
    await flip(altered.pack, altered.offset + at, 0x01);
    await driver.close();

    const quick = await capsa(["verify", location, "--json", ...host]);
    assert.equal(quick.code, 0, `structure alone cannot see a blob byte: ${quick.stdout}`);
    const r = await capsa(["verify", location, "--data", "--json", ...host]);
    assert.equal(r.code, 3, r.stderr);
    const problems = JSON.parse(r.stdout).problems as Array<
      { kind: string; key: string; detail: string }
    >;
    const about = (e: PackBlobEntry) => problems.filter((p) => p.detail.includes(e.id));
    assert.equal(problems.length, 2, JSON.stringify(problems));
    assert.deepEqual(about(broken).map((p) => [p.kind, p.key]), [[
      "blob_hash_mismatch",
      broken.pack,
    ]]);
    assert.match(about(broken)[0]!.detail, /\(\d+ bytes stored, \d+ raw, zstd\): .*zstd stream/);
    assert.deepEqual(about(altered).map((p) => [p.kind, p.key]), [[
      "blob_hash_mismatch",
      altered.pack,
    ]]);
    assert.match(about(altered)[0]!.detail, /does not match its id/);
    // get refuses both, and writes no byte.
    for (const key of Object.keys(files)) {
      const got = await capsa(["get", location, NS, key, ...host]);
      assert.notEqual(got.code, 0, key);
      assert.equal(got.bytes.length, 0, key);
      assert.match(got.stderr, /corrupt_object/, key);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa put --from (a real process) stores small text files compressed and small random files as they are", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-compression-tree-" });
  const host = ["--host-dir", `${dir}/host`];
  const location = `${dir}/store`;
  try {
    await capsaOk(["init", location, "--kit", `${dir}/kit.txt`, ...host]);
    await Deno.mkdir(`${dir}/tree`);
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      const size = 1024 + i * 100; // 1 KiB to 4.9 KiB: below and around the estimate's bound
      const r = new Xorshift(i + 1);
      const text = enc.encode(
        Array.from({ length: size }, () => `line ${r.next() % 1000}: status ok\n`).join(""),
      ).subarray(0, size);
      files.set(`t${i}.txt`, text);
      files.set(`r${i}.bin`, body(i + 100, size));
    }
    for (const [name, bytes] of files) await Deno.writeFile(`${dir}/tree/${name}`, bytes);
    await capsaOk(["put", location, NS, "--from", `${dir}/tree`, ...host]);
    const driver = await openLocalFs(location);
    const byId = new Map<string, PackBlobEntry>();
    for (const p of await Array.fromAsync(driver.list(PACK_PREFIX))) {
      for (const b of (await readPackToc(driver, p.key, { size: p.size })).blobs) byId.set(b.id, b);
    }
    for (const [name, bytes] of files) {
      const entry = byId.get(hashBytes("blake3", bytes))!;
      assert.ok(entry, name);
      if (name.endsWith(".txt")) {
        assert.equal(entry.compression, "zstd", name);
        assert.ok(entry.storedLength <= maxCompressedLength(bytes.length), name);
      } else {assert.deepEqual(
          [entry.compression, entry.storedLength],
          ["none", bytes.length],
          name,
        );}
    }
    const out = `${dir}/out`;
    await capsaOk(["get", location, NS, "--to", out, ...host]);
    for (const [name, bytes] of files) {
      assert.deepEqual(await Deno.readFile(`${out}/${name}`), bytes);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
