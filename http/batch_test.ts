/**
 * The batch upload, `POST /v1/objects/:namespace?batch`, through
 * `app.request()` and through a real server: full packs, every byte back,
 * and the answers to bad tars, bad entries and limits (nothing half-visible).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { body } from "../tests/data.ts";
import { writeTarForTest } from "../tests/tar.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import type { Driver } from "../drivers/driver.ts";
import { TAR_BLOCK } from "../format/tar.ts";
import { initStore, type InitStoreOptions, type Store } from "../store/store.ts";
import { type AppOptions, createApp, type HttpApp } from "./app.ts";
import { serve } from "./serve.ts";

const TOKEN = "batch-token-0123456789";
const AUTH = `Bearer ${TOKEN}`;
const TAR = "application/x-tar";
const dec = new TextDecoder();

interface Item {
  key: string;
  version?: string;
  size?: number;
  offset?: number;
  error?: { code: string; message: string };
}
interface Answer {
  stored: number;
  failed: number;
  items: Item[];
  code?: string;
  message?: string;
}

async function setup(
  options: { app?: AppOptions; store?: InitStoreOptions; driver?: Driver } = {},
): Promise<{ store: Store; app: HttpApp }> {
  const { store } = await initStore(options.driver ?? new MemoryDriver(), options.store ?? {});
  return { store, app: createApp(store, { token: TOKEN, ...options.app }) };
}

async function upload(
  app: HttpApp,
  tar: BodyInit,
  query = "batch",
  headers: Record<string, string> = {},
): Promise<{ status: number; answer: Answer }> {
  const res = await app.request(`/v1/objects/ns?${query}`, {
    method: "POST",
    body: tar,
    headers: { Authorization: AUTH, "Content-Type": TAR, ...headers },
  });
  return { status: res.status, answer: await res.json() };
}

/** A stream of `bytes` in pieces (a chunked body: no Content-Length). */
function chunked(bytes: Uint8Array, piece = 4096): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

async function keys(store: Store): Promise<string[]> {
  return (await store.list("ns")).items.map((i) => i.key);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    n += e.isDirectory ? await countFiles(join(dir, e.name)) : 1;
  }
  return n;
}

Deno.test("POST ?batch: a tar of 500 small files made by the system tar lands in one pack, byte for byte", async () => {
  const root = await Deno.makeTempDir();
  const src = await Deno.makeTempDir();
  try {
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 500; i++) {
      const path = `d${i % 10}/file-${i}.bin`;
      const bytes = body(i, 1024 + (i * 37) % 3072);
      files.set(path, bytes);
      await Deno.mkdir(join(src, `d${i % 10}`), { recursive: true });
      await Deno.writeFile(join(src, path), bytes);
    }
    const tar = await new Deno.Command("tar", { args: ["-c", "-f", "-", "-C", src, "."] })
      .output();
    assert.equal(tar.code, 0);
    const { store, app } = await setup({ driver: await openLocalFs(root) });
    try {
      const packsBefore = await countFiles(join(root, "packs")).catch(() => 0);
      const { status, answer } = await upload(app, chunked(tar.stdout), "batch&prefix=up/");
      assert.equal(status, 200, JSON.stringify(answer).slice(0, 300));
      assert.deepEqual([answer.stored, answer.failed, answer.items.length], [500, 0, 500]);
      // The answer comes once the packs are durable: they are on disk now.
      const packs = (await countFiles(join(root, "packs"))) - packsBefore;
      assert.ok(packs >= 1 && packs <= 2, `${packs} packs for 500 files`);
      for (const [path, bytes] of files) {
        const res = await app.request(`/v1/objects/ns/up/${path}`, {
          headers: { Authorization: AUTH },
        });
        assert.equal(res.status, 200, path);
        assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes, path);
      }
      const item = answer.items.find((i) => i.key === "up/d3/file-3.bin")!;
      assert.deepEqual([item.size, typeof item.version], [
        files.get("d3/file-3.bin")!.length,
        "string",
      ]);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("POST ?batch: long and UTF-8 names (pax), GNU long names, and files past the chunk threshold", async () => {
  const { store, app } = await setup({ store: { config: { chunkThreshold: 4096 } } });
  const src = await Deno.makeTempDir();
  try {
    const long = `${"dir-".repeat(40)}/${"é".repeat(100)}-ünïcødé ✓.txt`;
    const big = body(7, 300_000); // streamed: over the threshold
    const pax = writeTarForTest([
      { path: long, body: body(1, 10) },
      { path: "big.bin", body: big },
      { path: "empty", body: new Uint8Array(0) },
    ]);
    const first = await upload(app, pax);
    assert.deepEqual([first.status, first.answer.stored], [200, 3]);
    assert.deepEqual(await store.get("ns", long), body(1, 10));
    assert.deepEqual(await store.get("ns", "big.bin"), big);
    assert.deepEqual((await store.stat("ns", "empty")).size, 0);

    const gnuName = `${"g".repeat(150)}/ñ-${"x".repeat(120)}`;
    await Deno.mkdir(join(src, "g".repeat(150)));
    await Deno.writeTextFile(join(src, gnuName), "gnu");
    const gnu = await new Deno.Command("tar", {
      args: ["--format=gnu", "-c", "-f", "-", "-C", src, gnuName],
    }).output();
    const second = await upload(app, gnu.stdout);
    assert.deepEqual([second.status, second.answer.stored], [200, 1]);
    assert.equal(dec.decode(await store.get("ns", gnuName)), "gnu");
  } finally {
    await store.close();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("POST ?batch: a corrupt header checksum is 400 invalid_archive naming the offset; what came before stays", async () => {
  const { store, app } = await setup();
  try {
    const tar = writeTarForTest([
      { path: "a", body: body(1, 100) },
      { path: "b", body: body(2, 100) },
      { path: "c", body: body(3, 100) },
    ]);
    tar[2 * 1024 + 5] = 0x41; // c's header: name byte
    const { status, answer } = await upload(app, tar);
    assert.deepEqual([status, answer.code], [400, "invalid_archive"]);
    assert.match(answer.message!, /header at byte 2048 has a wrong checksum/);
    assert.match(answer.message!, /the 2 entries before it were stored/);
    assert.deepEqual([answer.stored, answer.items.map((i) => i.key)], [2, ["a", "b"]]);
    assert.deepEqual(await keys(store), ["a", "b"]);
  } finally {
    await store.close();
  }
});

Deno.test("POST ?batch: a tar cut short stores nothing of the cut entry, read whole or streamed", async () => {
  const { store, app } = await setup({ store: { config: { chunkThreshold: 4096 } } });
  try {
    const tar = writeTarForTest([
      { path: "a", body: body(1, 100) },
      { path: "small", body: body(2, 1000) },
      { path: "large", body: body(3, 200_000) },
    ]);
    // In the body of "small" (read whole): offsets a 0, small 1024, large 2560.
    const cutSmall = await upload(app, chunked(tar.slice(0, 1024 + 512 + 300)));
    assert.deepEqual([cutSmall.status, cutSmall.answer.code], [400, "invalid_archive"]);
    assert.match(cutSmall.answer.message!, /inside the body of "small" \(entry at byte 1024/);
    assert.deepEqual(await keys(store), ["a"]);
    // In the body of "large" (streamed into the session): a failed item, not visible.
    const cutLarge = await upload(
      app,
      chunked(tar.slice(0, 2560 + 512 + 150_000)),
      "batch&prefix=2/",
    );
    assert.deepEqual([cutLarge.status, cutLarge.answer.code], [400, "invalid_archive"]);
    assert.deepEqual(cutLarge.answer.stored, 2);
    const large = cutLarge.answer.items.find((i) => i.key === "2/large")!;
    assert.equal(large.error?.code, "invalid_archive");
    assert.equal(large.offset, 2560);
    assert.deepEqual(await keys(store), ["2/a", "2/small", "a"]);
    // Cut right before the end-of-archive marker.
    const noEnd = await upload(app, tar.slice(0, tar.length - 2 * TAR_BLOCK), "batch&prefix=3/");
    assert.deepEqual([noEnd.status, noEnd.answer.code, noEnd.answer.stored], [
      400,
      "invalid_archive",
      3,
    ]);
    assert.match(noEnd.answer.message!, /without its end-of-archive marker/);
  } finally {
    await store.close();
  }
});

Deno.test("POST ?batch: links, devices and bad paths are failed items (207); the others are stored", async () => {
  const { store, app } = await setup();
  try {
    const tar = writeTarForTest([
      { path: "./ok/", type: "5" },
      { path: "./ok/one", body: body(1, 10) },
      { path: "../x", body: body(2, 10) },
      { path: "a/./b", body: body(3, 10) },
      { path: "/etc/passwd", body: body(4, 10) },
      { path: "link", type: "2", linkpath: "/etc/passwd" },
      { path: "hard", type: "1", linkpath: "ok/one" },
      { path: "fifo", type: "6" },
      { path: "bad\u0001name", body: body(5, 10) },
      { path: "two", body: body(6, 10) },
    ]);
    const { status, answer } = await upload(app, tar);
    assert.equal(status, 207);
    assert.deepEqual([answer.stored, answer.failed], [2, 7]);
    const failed = answer.items.filter((i) => i.error).map((i) => [i.key, i.error!.code]);
    assert.deepEqual(failed.map((f) => f[0]), [
      "../x",
      "a/./b",
      "/etc/passwd",
      "link",
      "hard",
      "fifo",
      "bad\u0001name",
    ]);
    assert.ok(failed.every((f) => f[1] === "invalid_argument"));
    const link = answer.items.find((i) => i.key === "link")!;
    assert.match(link.error!.message, /a symbolic link to "\/etc\/passwd" is not stored/);
    assert.match(answer.items.find((i) => i.key === "../x")!.error!.message, /"\.\." segment/);
    assert.deepEqual(await keys(store), ["ok/one", "two"]);
  } finally {
    await store.close();
  }
});

Deno.test("POST ?batch: over the byte or entry limit is 413 payload_too_large", async () => {
  const { store, app } = await setup({ app: { batchMaxBytes: 8192, batchMaxEntries: 3 } });
  try {
    const big = writeTarForTest([
      { path: "a", body: body(1, 3000) },
      { path: "b", body: body(2, 3000) },
      { path: "c", body: body(3, 3000) },
    ]);
    // With a Content-Length: refused before anything is read.
    const declared = await upload(app, big, "batch", { "Content-Length": String(big.length) });
    assert.deepEqual([declared.status, declared.answer.code], [413, "payload_too_large"]);
    assert.match(declared.answer.message!, /nothing was read/);
    assert.deepEqual(await keys(store), []);
    // Chunked: refused when reading passes the limit; the entries before stay.
    const streamed = await upload(app, chunked(big, 1000));
    assert.deepEqual([streamed.status, streamed.answer.code], [413, "payload_too_large"]);
    // a and b end before byte 8192 (b's body ends at 7096); c's does not.
    assert.deepEqual([streamed.answer.stored, await keys(store)], [2, ["a", "b"]]);
    const many = writeTarForTest(
      ["1", "2", "3", "4"].map((p) => ({ path: `n/${p}`, body: body(1, 1) })),
    );
    const entries = await upload(app, many);
    assert.deepEqual([entries.status, entries.answer.code, entries.answer.stored], [
      413,
      "payload_too_large",
      3,
    ]);
    assert.match(entries.answer.message!, /more than 3 entries/);
    assert.throws(() => createApp(store, { batchMaxEntries: 0 }), /batchMaxEntries/);
  } finally {
    await store.close();
  }
});

Deno.test("POST ?batch: the token, ?batch, the content type and a maintenance job are checked first", async () => {
  const { store, app } = await setup();
  try {
    const tar = writeTarForTest([{ path: "a", body: body(1, 10) }]);
    const noToken = await app.request("/v1/objects/ns?batch", { method: "POST", body: tar });
    assert.equal(noToken.status, 401);
    const noBatch = await upload(app, tar, "prefix=x/");
    assert.deepEqual([noBatch.status, noBatch.answer.code], [400, "invalid_argument"]);
    const form = await upload(app, tar, "batch", {
      "Content-Type": "application/x-www-form-urlencoded",
    });
    assert.deepEqual([form.status, form.answer.code], [400, "invalid_argument"]);
    assert.match(form.answer.message!, /Content-Type: application\/x-tar/);
    const badPrefix = await upload(app, tar, "batch&prefix=../");
    assert.deepEqual([badPrefix.status, badPrefix.answer.code], [400, "invalid_argument"]);
    const put = await app.request("/v1/objects/ns", {
      method: "PUT",
      headers: { Authorization: AUTH },
    });
    assert.deepEqual([put.status, put.headers.get("Allow")], [405, "GET, HEAD, POST"]);
    assert.deepEqual(await keys(store), []);
  } finally {
    await store.close();
  }
});

Deno.test("POST ?batch: refused with 503 maintenance_mode while a rebuild job of the app runs, like a PUT", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty, { config: { packLingerMs: 1 } });
  try {
    const app = createApp(store, { token: TOKEN });
    for (let i = 0; i < 4; i++) await store.put("ns", `k${i}`, body(i, 1000));
    faulty.inject({
      methods: ["get", "getRange"],
      key: /^packs\//,
      latencyMs: 100,
      latencyOnly: true,
    });
    const started = await app.request("/v1/maintenance/rebuild", {
      method: "POST",
      body: JSON.stringify({ source: "FullScan", parallelism: 1 }),
      headers: { Authorization: AUTH },
    });
    assert.equal(started.status, 202);
    const { jobId } = await started.json();
    const refused = await upload(app, writeTarForTest([{ path: "new", body: body(9, 10) }]));
    assert.deepEqual([refused.status, refused.answer.code], [503, "maintenance_mode"]);
    await app.request(`/v1/maintenance/jobs/${jobId}`, {
      method: "DELETE",
      headers: { Authorization: AUTH },
    });
    faulty.clear();
    assert.deepEqual(await keys(store), ["k0", "k1", "k2", "k3"]);
  } finally {
    await store.close();
  }
});

Deno.test("serve(): a real client streams a system tar to POST ?batch", async () => {
  const src = await Deno.makeTempDir();
  const { store } = await initStore(new MemoryDriver());
  const server = serve(store, { port: 0, token: TOKEN });
  try {
    for (let i = 0; i < 50; i++) await Deno.writeFile(join(src, `f${i}`), body(i, 2000));
    const tar = new Deno.Command("tar", {
      args: ["-c", "-f", "-", "-C", src, "."],
      stdout: "piped",
    })
      .spawn();
    const res = await fetch(`${server.url}/v1/objects/ns?batch&prefix=real/`, {
      method: "POST",
      body: tar.stdout,
      headers: { Authorization: AUTH, "Content-Type": TAR },
    });
    assert.equal((await tar.status).code, 0);
    const answer: Answer = await res.json();
    assert.deepEqual([res.status, answer.stored, answer.failed], [200, 50, 0]);
    assert.deepEqual(await store.get("ns", "real/f42"), body(42, 2000));
  } finally {
    await server.shutdown();
    await store.close();
    await Deno.remove(src, { recursive: true });
  }
});
