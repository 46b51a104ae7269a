import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import {
  ArtifactNotFoundError,
  CapsaError,
  type ErrorCode,
  InvalidArgumentError,
  InvalidKeyError,
  MaintenanceModeError,
  PreconditionFailedError,
  ReadOnlyStoreError,
  StoreCorruptedError,
  TransientError,
} from "../errors.ts";
import { acquireLease, LeaseHeldError } from "../store/lease.ts";
import { initStore, type InitStoreOptions, openStore, type Store } from "../store/store.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { RecoveryKitInvalidError } from "../format/kit.ts";
import { runExclusive } from "../maintenance/agent.ts";
import { INDEX_SCHEMA_VERSION } from "../index/schema.ts";
import { parseRange } from "./_range.ts";
import { type AppOptions, createApp, type HttpApp } from "./app.ts";
import { ERROR_STATUS, httpAdvice, HttpError, statusOf, toHttpError } from "./errors.ts";
import { DEFAULT_JOB_KINDS, type JobAgent, JobRegistry, type JobView } from "./jobs.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, LEASE_KEY } from "../layout.ts";

const TOKEN = "test-token-0123456789";
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const enc = new TextEncoder();
const dec = new TextDecoder();

const bytes = body;

/** A stream that yields `body` lazily, `piece` bytes per pull. */
function streamOf(body: Uint8Array, piece: number): ReadableStream<Uint8Array> & { pulls: number } {
  let at = 0;
  const s = new ReadableStream<Uint8Array>({
    pull(c) {
      s.pulls++;
      if (at >= body.length) return c.close();
      c.enqueue(body.slice(at, at + piece));
      at += piece;
    },
  }, { highWaterMark: 0 }) as ReadableStream<Uint8Array> & { pulls: number };
  s.pulls = 0;
  return s;
}

interface Fixture {
  driver: MemoryDriver;
  store: Store;
  app: HttpApp;
  kit: string;
}

async function fixture(
  options: { app?: AppOptions; store?: InitStoreOptions; driver?: MemoryDriver } = {},
): Promise<Fixture> {
  const driver = options.driver ?? new MemoryDriver();
  const { store, recoveryKit } = await initStore(driver, options.store ?? {});
  const app = createApp(store, { token: TOKEN, ...options.app });
  return { driver, store, app, kit: recoveryKit };
}

async function req(app: HttpApp, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("Authorization")) headers.set("Authorization", AUTH.Authorization);
  return await app.request(path, { ...init, headers });
}

async function put(
  app: HttpApp,
  path: string,
  body: BodyInit,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const res = await req(app, path, { method: "PUT", body, headers });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  assert.match(res.headers.get("Content-Type") ?? "", /^application\/json/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
  return { status: res.status, code: body.code, message: body.message };
}

async function poll(app: HttpApp, id: string, timeoutMs = 10_000): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await req(app, `/v1/maintenance/jobs/${id}`);
    assert.equal(res.status, 200);
    const view: JobView = await res.json();
    if (view.state !== "running") return view;
    if (Date.now() > deadline) throw new Error(`job ${id} still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ------------------------------------------------------------------ auth

Deno.test("GET /v1/health answers 200 {ok:true} without a token", async () => {
  const { store, app } = await fixture();
  try {
    const res = await app.request("/v1/health");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
  } finally {
    await store.close();
  }
});

Deno.test("createApp() with a token answers 401 to a missing, malformed or wrong token", async () => {
  const { store, app } = await fixture();
  try {
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'Bearer realm="capsa"'],
      [{ Authorization: `Basic ${btoa(`u:${TOKEN}`)}` }, 'Bearer realm="capsa"'],
      [{ Authorization: "Bearer" }, 'Bearer realm="capsa"'],
      [{ Authorization: "Bearer wrong-token" }, 'Bearer realm="capsa", error="invalid_token"'],
      [{ Authorization: `Bearer ${TOKEN}x` }, 'Bearer realm="capsa", error="invalid_token"'],
      [
        { Authorization: `Bearer ${TOKEN.slice(0, -1)}` },
        'Bearer realm="capsa", error="invalid_token"',
      ],
    ];
    for (const path of ["/v1/status", "/v1/objects/ns/k", "/v1/events", "/v1/nowhere"]) {
      for (const [headers, challenge] of cases) {
        const res = await app.request(path, { headers });
        const e = await errorOf(res);
        assert.equal(e.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(e.code, "unauthorized");
        assert.equal(res.headers.get("WWW-Authenticate"), challenge);
      }
    }
    const put = await app.request("/v1/objects/ns/k", { method: "PUT", body: "x" });
    assert.equal(put.status, 401);
    await put.body?.cancel();
    assert.equal(store.index.counts().artifacts, 0, "an unauthorized PUT stores nothing");
    // The scheme is case-insensitive; the right token passes.
    const ok = await app.request("/v1/status", { headers: { Authorization: `bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await store.close();
  }
});

Deno.test("createApp() without a token answers every route; an empty token is refused", async () => {
  const driver = new MemoryDriver();
  const { store } = await initStore(driver);
  try {
    const app = createApp(store);
    const res = await app.request("/v1/status");
    assert.equal(res.status, 200);
    assert.equal((await res.json()).state, "Ready");
    assert.throws(() => createApp(store, { token: "" }), InvalidArgumentError);
  } finally {
    await store.close();
  }
});

// --------------------------------------------------------------- objects

Deno.test("PUT /v1/objects/:ns/:key streams a 5 MiB request body; GET returns it byte for byte", async () => {
  const { store, app } = await fixture();
  try {
    const body = bytes(1, 5 * 1024 * 1024 + 123);
    const stream = streamOf(body, 64 * 1024);
    const res = await req(app, "/v1/objects/big/dir/blob.bin", { method: "PUT", body: stream });
    assert.equal(res.status, 201);
    assert.ok(stream.pulls > 80, "the body was read piece by piece");
    const info = await res.json();
    assert.equal(info.namespace, "big");
    assert.equal(info.key, "dir/blob.bin");
    assert.equal(info.size, body.length);
    assert.equal(info.contentType, "");
    assert.equal(res.headers.get("ETag"), `"${info.digest}"`);
    assert.equal(res.headers.get("X-Capsa-Version"), info.version);
    assert.equal(
      res.headers.get("Location"),
      `/v1/objects/big/dir/blob.bin?version=${info.version}`,
    );
    assert.ok((await store.versions("big", "dir/blob.bin")).length === 1);

    const get = await req(app, "/v1/objects/big/dir/blob.bin");
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("Content-Type"), "application/octet-stream");
    assert.equal(get.headers.get("Content-Length"), String(body.length));
    assert.equal(get.headers.get("ETag"), `"${info.digest}"`);
    assert.equal(get.headers.get("X-Capsa-Version"), info.version);
    assert.equal(get.headers.get("Accept-Ranges"), "bytes");
    assert.equal(get.headers.get("Cache-Control"), "no-cache");
    const got = new Uint8Array(await get.arrayBuffer());
    assert.equal(got.length, body.length);
    assert.ok(got.every((b, i) => b === body[i]), "byte for byte");
  } finally {
    await store.close();
  }
});

Deno.test("PUT /v1/objects/:ns/:key keeps Content-Type and X-Capsa-Meta-*; GET and HEAD send them back", async () => {
  const { store, app } = await fixture();
  try {
    const info = await put(app, "/v1/objects/docs/a%20b%25c/%C3%A9t%C3%A9.txt", "hello", {
      "Content-Type": "text/plain; charset=utf-8",
      "X-Capsa-Meta-Commit": "abc123",
      "X-Capsa-Meta-build.number": "42",
      "X-Capsa-Meta-Author": "Ren%C3%A9e %25 ok",
    });
    assert.equal(info.key, "a b%c/été.txt", "the key is percent-decoded");
    assert.equal(info.contentType, "text/plain; charset=utf-8");
    assert.deepEqual(info.metadata, {
      commit: "abc123",
      "build.number": "42",
      author: "Renée % ok",
    });

    for (const method of ["GET", "HEAD"]) {
      const res = await req(app, "/v1/objects/docs/a%20b%25c/%C3%A9t%C3%A9.txt", { method });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("Content-Type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("Content-Length"), "5");
      assert.equal(res.headers.get("X-Capsa-Meta-Commit"), "abc123");
      assert.equal(res.headers.get("X-Capsa-Meta-Build.Number"), "42");
      assert.equal(res.headers.get("X-Capsa-Meta-Author"), "Ren%C3%A9e %25 ok");
      assert.equal(decodeURIComponent(res.headers.get("X-Capsa-Meta-Author")!), "Renée % ok");
      assert.equal(await res.text(), method === "GET" ? "hello" : "");
    }

    // Metadata set through the library (any case, edge spaces) survives the headers.
    await store.put("docs", "lib", enc.encode("x"), { metadata: { Mixed: " padded  " } });
    const res = await req(app, "/v1/objects/docs/lib", { method: "HEAD" });
    assert.equal(res.headers.get("X-Capsa-Meta-Mixed"), "%20padded %20");

    const bad = await req(app, "/v1/objects/docs/x", {
      method: "PUT",
      body: "x",
      headers: { "X-Capsa-Meta-Broken": "%E9%" },
    });
    assert.deepEqual(await errorOf(bad).then((e) => [e.status, e.code]), [400, "invalid_argument"]);
    const badName = await req(app, "/v1/objects/docs/x", {
      method: "PUT",
      body: "x",
      headers: { "X-Capsa-Meta-a:b": "v" },
    }).catch(() => undefined);
    if (badName) await badName.body?.cancel(); // Headers may refuse the name itself
    const badType = await req(app, "/v1/objects/docs/x", {
      method: "PUT",
      body: "x",
      headers: { "Content-Type": "x".repeat(300) },
    });
    assert.deepEqual(await errorOf(badType).then((e) => [e.status, e.code]), [
      400,
      "invalid_argument",
    ]);
  } finally {
    await store.close();
  }
});

Deno.test("PUT /v1/objects/:ns/:key with an empty body stores an empty artifact", async () => {
  const { store, app } = await fixture();
  try {
    const info = await put(app, "/v1/objects/ns/empty", "");
    assert.equal(info.size, 0);
    const res = await req(app, "/v1/objects/ns/empty");
    assert.equal(res.headers.get("Content-Length"), "0");
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  } finally {
    await store.close();
  }
});

Deno.test("HEAD /v1/objects/:ns/:key sends GET's headers without a body or a read", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty);
  try {
    const app = createApp(store, { token: TOKEN });
    const body = bytes(2, 4000);
    await store.put("ns", "k", body, { contentType: "image/png" });
    faulty.resetCounts();
    const res = await req(app, "/v1/objects/ns/k", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.body, null);
    assert.equal(res.headers.get("Content-Length"), "4000");
    assert.equal(res.headers.get("Content-Type"), "image/png");
    assert.equal(faulty.calls.get, 0, "no blob was read");
  } finally {
    await store.close();
  }
});

Deno.test("GET /v1/objects/:ns/:key honours Range a-b, a- and -n with 206 and Content-Range", async () => {
  const { store, app } = await fixture();
  try {
    const big = bytes(3, 3 * 1024 * 1024 + 17); // chunked: ranges cross chunk boundaries
    const small = enc.encode("0123456789");
    await store.put("r", "big", big);
    await store.put("r", "small", small);
    const cases: Array<[string, string, number, number]> = [
      ["small", "bytes=0-0", 0, 0],
      ["small", "bytes=2-5", 2, 5],
      ["small", "bytes=7-", 7, 9],
      ["small", "bytes=-3", 7, 9],
      ["small", "bytes=-100", 0, 9],
      ["small", "bytes=5-1000", 5, 9],
      ["small", "BYTES = 1 - 2", 1, 2],
      ["big", "bytes=1000000-2999999", 1_000_000, 2_999_999],
      ["big", `bytes=-${1024 * 1024 + 5}`, big.length - 1024 * 1024 - 5, big.length - 1],
      ["big", "bytes=0-", 0, big.length - 1],
    ];
    for (const [key, range, start, end] of cases) {
      const src = key === "big" ? big : small;
      for (const method of ["GET", "HEAD"]) {
        const res = await req(app, `/v1/objects/r/${key}`, { method, headers: { Range: range } });
        assert.equal(res.status, 206, `${key} ${range}`);
        assert.equal(res.headers.get("Content-Range"), `bytes ${start}-${end}/${src.length}`);
        assert.equal(res.headers.get("Content-Length"), String(end - start + 1));
        const got = new Uint8Array(await res.arrayBuffer());
        if (method === "HEAD") assert.equal(got.length, 0);
        else assert.deepEqual(got, src.slice(start, end + 1), `${key} ${range}`);
      }
    }
  } finally {
    await store.close();
  }
});

Deno.test("GET /v1/objects/:ns/:key answers 416 to an unsatisfiable Range and ignores what it may ignore", async () => {
  const { store, app } = await fixture();
  try {
    await store.put("r", "small", enc.encode("0123456789"));
    await store.put("r", "empty", new Uint8Array(0));
    for (
      const [key, range, size] of [
        ["small", "bytes=10-", 10],
        ["small", "bytes=10-20", 10],
        ["small", "bytes=-0", 10],
        ["small", "bytes=99999999999999999999-", 10],
        ["empty", "bytes=0-", 0],
        ["empty", "bytes=-5", 0],
      ] as const
    ) {
      const res = await req(app, `/v1/objects/r/${key}`, { headers: { Range: range } });
      const e = await errorOf(res);
      assert.equal(e.status, 416, `${key} ${range}`);
      assert.equal(e.code, "range_not_satisfiable");
      assert.equal(res.headers.get("Content-Range"), `bytes */${size}`);
    }
    // Malformed, reversed, multiple or foreign-unit ranges get the whole body.
    for (const range of ["bytes=5-2", "bytes=a-b", "bytes=0-1,4-5", "items=0-1", "bytes=-", ""]) {
      const res = await req(app, "/v1/objects/r/small", { headers: { Range: range } });
      assert.equal(res.status, 200, range);
      assert.equal(await res.text(), "0123456789");
    }
    // If-Range: the range applies only while the ETag still matches.
    const etag = (await req(app, "/v1/objects/r/small", { method: "HEAD" })).headers.get("ETag")!;
    const same = await req(app, "/v1/objects/r/small", {
      headers: { Range: "bytes=0-1", "If-Range": etag },
    });
    assert.equal(same.status, 206);
    assert.equal(await same.text(), "01");
    const stale = await req(app, "/v1/objects/r/small", {
      headers: { Range: "bytes=0-1", "If-Range": '"0000"' },
    });
    assert.equal(stale.status, 200);
    assert.equal(await stale.text(), "0123456789");
  } finally {
    await store.close();
  }
});

Deno.test("parseRange() reads one byte range and tells what to ignore", () => {
  assert.deepEqual(parseRange(undefined, 10), { kind: "none" });
  assert.deepEqual(parseRange("bytes=3-4", 10), { kind: "range", start: 3, end: 4 });
  assert.deepEqual(parseRange("bytes=-4", 10), { kind: "range", start: 6, end: 9 });
  assert.deepEqual(parseRange("bytes=-99999999999999999999", 10), {
    kind: "range",
    start: 0,
    end: 9,
  });
  assert.deepEqual(parseRange("bytes=0-99999999999999999999", 10), {
    kind: "range",
    start: 0,
    end: 9,
  });
  assert.deepEqual(parseRange("bytes=10-", 10), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=4-3", 10), { kind: "none" });
  assert.deepEqual(parseRange("bytes=1-2, 3-4", 10), { kind: "none" });
});

Deno.test("GET /v1/objects/:ns/:key answers 304 to a matching If-None-Match", async () => {
  const { store, app } = await fixture();
  try {
    const info = await put(app, "/v1/objects/ns/k", "v1");
    for (const inm of [`"${info.digest}"`, `W/"${info.digest}"`, `"x", "${info.digest}"`, "*"]) {
      const res = await req(app, "/v1/objects/ns/k", { headers: { "If-None-Match": inm } });
      assert.equal(res.status, 304, inm);
      assert.equal(res.headers.get("ETag"), `"${info.digest}"`);
      assert.equal(await res.text(), "");
    }
    const res = await req(app, "/v1/objects/ns/k", { headers: { "If-None-Match": '"other"' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "v1");
  } finally {
    await store.close();
  }
});

Deno.test("GET /v1/objects/:ns/:key?version= reads an older version; ?versions lists them all", async () => {
  const { store, app } = await fixture();
  try {
    const v1 = await put(app, "/v1/objects/ns/k", "first", { "Content-Type": "text/plain" });
    const v2 = await put(app, "/v1/objects/ns/k", "second");
    const old = await req(app, `/v1/objects/ns/k?version=${v1.version}`);
    assert.equal(old.status, 200);
    assert.equal(old.headers.get("X-Capsa-Version"), v1.version);
    assert.equal(old.headers.get("Content-Type"), "text/plain");
    assert.equal(old.headers.get("Cache-Control"), "private, max-age=31536000, immutable");
    assert.equal(await old.text(), "first");
    const ranged = await req(app, `/v1/objects/ns/k?version=${v1.version}`, {
      headers: { Range: "bytes=-3" },
    });
    assert.equal(await ranged.text(), "rst");
    assert.equal(await (await req(app, "/v1/objects/ns/k")).text(), "second");

    const del = await req(app, "/v1/objects/ns/k", { method: "DELETE" });
    assert.equal(del.status, 204);
    const list = await req(app, "/v1/objects/ns/k?versions");
    assert.equal(list.status, 200);
    const { items } = await list.json();
    assert.deepEqual(items.map((i: { deleted: boolean }) => i.deleted), [true, false, false]);
    assert.deepEqual(items.slice(1).map((i: { version: string }) => i.version), [
      v2.version,
      v1.version,
    ]);
    // An old version stays readable after the key is deleted.
    assert.equal(await (await req(app, `/v1/objects/ns/k?version=${v2.version}`)).text(), "second");

    const unknown = await errorOf(
      await req(app, "/v1/objects/ns/k?version=01J0000000000000000000000"),
    );
    assert.deepEqual([unknown.status, unknown.code], [404, "not_found"]);
    const empty = await errorOf(await req(app, "/v1/objects/ns/k?version="));
    assert.deepEqual([empty.status, empty.code], [400, "invalid_argument"]);
    const none = await errorOf(await req(app, "/v1/objects/ns/never?versions"));
    assert.deepEqual([none.status, none.code], [404, "not_found"]);
  } finally {
    await store.close();
  }
});

Deno.test("DELETE /v1/objects/:ns/:key answers 204, then 404 when there is nothing to delete", async () => {
  const { store, app } = await fixture();
  try {
    await put(app, "/v1/objects/ns/k", "v");
    const first = await req(app, "/v1/objects/ns/k", { method: "DELETE" });
    assert.equal(first.status, 204);
    assert.equal(await first.text(), "");
    const again = await errorOf(await req(app, "/v1/objects/ns/k", { method: "DELETE" }));
    assert.deepEqual([again.status, again.code], [404, "not_found"]);
    const get = await errorOf(await req(app, "/v1/objects/ns/k"));
    assert.deepEqual([get.status, get.code], [404, "not_found"]);
    const head = await req(app, "/v1/objects/ns/k", { method: "HEAD" });
    assert.equal(head.status, 404);
  } finally {
    await store.close();
  }
});

Deno.test("GET /v1/objects/:ns pages with limit and after, filters by prefix; GET /v1/objects lists namespaces", async () => {
  const { store, app } = await fixture();
  try {
    const keys = Array.from({ length: 7 }, (_, i) => `k/${i}`);
    for (const k of keys) await store.put("list", k, enc.encode(k));
    await store.put("list", "other", enc.encode("o"));
    await store.put("second", "x", enc.encode("x"));

    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const q = new URLSearchParams({ prefix: "k/", limit: "3", ...(after ? { after } : {}) });
      const res = await req(app, `/v1/objects/list?${q}`);
      assert.equal(res.status, 200);
      const page = await res.json();
      pages++;
      seen.push(...page.items.map((i: { key: string }) => i.key));
      // `after` names where the next page starts; `cursor`, its old name, says the same.
      assert.equal(page.cursor, page.after);
      if (page.after === undefined) break;
      after = page.after;
    }
    assert.deepEqual(seen, keys);
    assert.equal(pages, 3);
    const all = await (await req(app, "/v1/objects/list")).json();
    assert.equal(all.items.length, 8);
    assert.equal(all.after, undefined);

    const ns = await (await req(app, "/v1/objects")).json();
    assert.deepEqual(ns.namespaces.sort(), ["list", "second"]);

    for (const limit of ["0", "10001", "-1", "x", "1.5"]) {
      const e = await errorOf(await req(app, `/v1/objects/list?limit=${limit}`));
      assert.deepEqual([e.status, e.code], [400, "invalid_argument"], limit);
    }
  } finally {
    await store.close();
  }
});

Deno.test("object routes answer 400 to a bad namespace or key, 405 to another method, 404 elsewhere", async () => {
  const { store, app } = await fixture();
  try {
    const badNs = await errorOf(await req(app, "/v1/objects/bad%20ns/k"));
    assert.deepEqual([badNs.status, badNs.code], [400, "invalid_argument"]);
    const badKey = await errorOf(
      await req(app, "/v1/objects/ns/a%00b", { method: "PUT", body: "x" }),
    );
    assert.deepEqual([badKey.status, badKey.code], [400, "invalid_argument"]);
    const post = await req(app, "/v1/objects/ns/k", { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("Allow"), "GET, HEAD, PUT, DELETE");
    assert.equal((await errorOf(post)).code, "method_not_allowed");
    const nowhere = await errorOf(await req(app, "/v2/anything"));
    assert.deepEqual([nowhere.status, nowhere.code], [404, "not_found"]);
  } finally {
    await store.close();
  }
});

Deno.test("PUT /v1/objects/:ns/:key on a read-only handle answers 403 read_only", async () => {
  const driver = new MemoryDriver();
  await (await initStore(driver)).store.close();
  const store = await openStore(driver, { readOnly: true });
  try {
    const app = createApp(store, { token: TOKEN });
    const e = await errorOf(await req(app, "/v1/objects/ns/k", { method: "PUT", body: "x" }));
    assert.deepEqual([e.status, e.code], [403, "read_only"]);
  } finally {
    await store.close();
  }
});

Deno.test("an error that is not a CapsaError answers 500 internal without its message", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty);
  try {
    const logged: unknown[] = [];
    const app = createApp(store, { token: TOKEN, onInternalError: (e) => logged.push(e) });
    await store.put("ns", "k", bytes(4, 5000));
    await store.put("ns", "big", bytes(5, 3 * 1024 * 1024));
    faulty.inject({
      methods: ["get", "getRange"],
      key: /^packs\//,
      error: () => new TypeError("secret internal detail at /srv/x"),
    });
    // The first piece is read before the status is sent, whole or ranged, small or chunked.
    for (const [key, range] of [["k", ""], ["k", "bytes=0-9"], ["big", ""], ["big", "bytes=-9"]]) {
      const headers: Record<string, string> = range === "" ? {} : { Range: range! };
      const e = await errorOf(await req(app, `/v1/objects/ns/${key}`, { headers }));
      assert.deepEqual([e.status, e.code], [500, "internal"], `${key} ${range}`);
      assert.doesNotMatch(e.message, /secret|srv|TypeError/);
    }
    assert.equal(logged.length, 4);
    assert.match(String(logged[0]), /secret internal detail/);
  } finally {
    await store.close();
  }
});

// ---------------------------------------------------------------- status

Deno.test("GET /v1/status answers store.status()", async () => {
  const { store, app } = await fixture();
  try {
    await store.put("ns", "k", enc.encode("v"));
    const res = await req(app, "/v1/status");
    assert.equal(res.status, 200);
    const status = await res.json();
    assert.equal(status.storeId, store.storeId);
    assert.equal(status.state, "Ready");
    assert.equal(status.counts.artifacts, 1);
    assert.deepEqual(status, JSON.parse(JSON.stringify(await store.status())));
  } finally {
    await store.close();
  }
});

// ----------------------------------------------------------- maintenance

Deno.test("POST /v1/maintenance/rebuild answers 202 with a job id; the job runs to completed with stats", async () => {
  const { store, app } = await fixture({ store: { config: { packLingerMs: 1 } } });
  try {
    for (let i = 0; i < 5; i++) await store.put("ns", `k${i}`, bytes(i, 2000));
    const res = await req(app, "/v1/maintenance/rebuild", {
      method: "POST",
      body: JSON.stringify({ source: "FullScan", batchSize: 2, parallelism: 2, leaseTTL: 60_000 }),
    });
    assert.equal(res.status, 202);
    const { jobId } = await res.json();
    assert.equal(typeof jobId, "string");
    assert.equal(res.headers.get("Location"), `/v1/maintenance/jobs/${jobId}`);

    const job = await poll(app, jobId);
    assert.equal(job.state, "completed", JSON.stringify(job.error));
    assert.equal(job.kind, "rebuild");
    assert.equal(job.agent, "RebuildIndex");
    assert.match(job.holder, /^RebuildIndex on .+ \(pid \d+\)$/);
    assert.ok(job.finishedAt! >= job.startedAt);
    const stats = job.stats as Record<string, unknown>;
    assert.equal(stats.source, "FullScan");
    assert.equal(stats.manifestsIndexed, 5);
    assert.equal(stats.packsIndexed, 5);
    assert.equal(job.error, undefined);
    assert.deepEqual(job.problems, []);

    const list = await (await req(app, "/v1/maintenance/jobs")).json();
    assert.deepEqual(list.items.map((j: JobView) => j.id), [jobId]);
    assert.equal(await store.driver.stat(LEASE_KEY).then(() => true, () => false), false);
    // The store serves from the rebuilt index.
    const got = new Uint8Array(await (await req(app, "/v1/objects/ns/k3")).arrayBuffer());
    assert.deepEqual(got, bytes(3, 2000));
    const missing = await errorOf(await req(app, "/v1/maintenance/jobs/no-such-job"));
    assert.deepEqual([missing.status, missing.code], [404, "not_found"]);
  } finally {
    await store.close();
  }
});

Deno.test("POST /v1/maintenance/rebuild answers 400 at once to a bad configuration, with no job", async () => {
  const { store, app } = await fixture();
  try {
    const cases: Array<[BodyInit, string]> = [
      [JSON.stringify({ source: "Bogus" }), "invalid_argument"],
      [JSON.stringify({ batchSize: 0 }), "invalid_argument"],
      [JSON.stringify({ parallelism: "8" }), "invalid_argument"],
      [JSON.stringify({ leaseTTL: 10 }), "invalid_argument"],
      [JSON.stringify({ force: "yes" }), "invalid_argument"],
      [JSON.stringify({ sourc: "Auto" }), "invalid_argument"],
      [JSON.stringify({ recoveryKit: "not a kit\n" }), "recovery_kit_invalid"],
      ["{not json", "invalid_argument"],
      ["[1, 2]", "invalid_argument"],
    ];
    for (const [body, code] of cases) {
      const e = await errorOf(await req(app, "/v1/maintenance/rebuild", { method: "POST", body }));
      assert.deepEqual([e.status, e.code], [400, code], String(body));
    }
    const huge = await errorOf(
      await req(app, "/v1/maintenance/rebuild", {
        method: "POST",
        body: JSON.stringify({ recoveryKit: "x".repeat(300 * 1024) }),
      }),
    );
    assert.deepEqual([huge.status, huge.code], [413, "payload_too_large"]);
    const kind = await errorOf(await req(app, "/v1/maintenance/defrag", { method: "POST" }));
    assert.deepEqual([kind.status, kind.code], [404, "not_found"]);
    assert.match(kind.message, /known: rebuild/);
    const list = await (await req(app, "/v1/maintenance/jobs")).json();
    assert.deepEqual(list.items, []);
  } finally {
    await store.close();
  }
});

Deno.test("POST /v1/maintenance/rebuild answers 409 lease_held while another holds the lease", async () => {
  const { store, app } = await fixture();
  const lease = await acquireLease(store.driver, { storeId: store.storeId, agent: "Verify" });
  try {
    const e = await errorOf(
      await req(app, "/v1/maintenance/rebuild", { method: "POST", body: "{}" }),
    );
    assert.deepEqual([e.status, e.code], [409, "lease_held"]);
    assert.match(e.message, /Verify on /);
    const list = await (await req(app, "/v1/maintenance/jobs")).json();
    assert.deepEqual(list.items, []);
  } finally {
    await lease.release();
    await store.close();
  }
});

Deno.test("POST /v1/maintenance/rebuild heals a Corrupted store from a Recovery Kit sent as text", async () => {
  const driver = new MemoryDriver();
  const { store: first, recoveryKit } = await initStore(driver, {
    config: { packLingerMs: 1 },
  });
  await first.put("ns", "k", enc.encode("kept"));
  await first.close();
  await driver.delete(DESCRIPTOR_KEY);
  await driver.delete(DESCRIPTOR_REPLICA_KEY);
  const store = await openStore(driver);
  try {
    assert.equal(store.state, "Corrupted");
    const app = createApp(store, { token: TOKEN });
    const get = await errorOf(await req(app, "/v1/objects/ns/k"));
    assert.deepEqual([get.status, get.code], [503, "store_corrupted"]);
    const status = await (await req(app, "/v1/status")).json();
    assert.equal(status.state, "Corrupted");

    const noKit = await errorOf(
      await req(app, "/v1/maintenance/rebuild", { method: "POST", body: "{}" }),
    );
    assert.deepEqual([noKit.status, noKit.code], [400, "recovery_kit_required"]);

    const res = await req(app, "/v1/maintenance/rebuild", {
      method: "POST",
      body: JSON.stringify({ recoveryKit, source: "full-scan" }),
    });
    assert.equal(res.status, 202);
    const job = await poll(app, (await res.json()).jobId);
    assert.equal(job.state, "completed", JSON.stringify(job.error));
    assert.equal((job.stats as Record<string, unknown>).descriptorRewrote, true);
    assert.equal(await (await req(app, "/v1/objects/ns/k")).text(), "kept");
  } finally {
    await store.close();
  }
});

Deno.test("DELETE /v1/maintenance/jobs/:id aborts a running rebuild; writes meanwhile answer 503", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty, { config: { packLingerMs: 1 } });
  try {
    const app = createApp(store, { token: TOKEN });
    for (let i = 0; i < 6; i++) await store.put("ns", `k${i}`, bytes(i, 1000));
    faulty.inject({
      methods: ["get", "getRange"],
      key: /^packs\//,
      latencyMs: 100,
      latencyOnly: true,
    });
    const res = await req(app, "/v1/maintenance/rebuild", {
      method: "POST",
      body: JSON.stringify({ source: "FullScan", parallelism: 1 }),
    });
    assert.equal(res.status, 202);
    const { jobId } = await res.json();
    const running = await (await req(app, `/v1/maintenance/jobs/${jobId}`)).json();
    assert.equal(running.state, "running");

    const write = await req(app, "/v1/objects/ns/new", { method: "PUT", body: "x" });
    const e = await errorOf(write);
    assert.deepEqual([e.status, e.code], [503, "maintenance_mode"]);
    assert.equal(write.headers.get("Retry-After"), "5");
    const del = await errorOf(await req(app, "/v1/objects/ns/k0", { method: "DELETE" }));
    assert.deepEqual([del.status, del.code], [503, "maintenance_mode"]);
    // Reads go on from the live index.
    assert.equal((await req(app, "/v1/objects/ns/k1", { method: "HEAD" })).status, 200);
    const second = await errorOf(
      await req(app, "/v1/maintenance/rebuild", { method: "POST", body: "{}" }),
    );
    assert.deepEqual([second.status, second.code], [409, "lease_held"]);

    const abort = await req(app, `/v1/maintenance/jobs/${jobId}`, { method: "DELETE" });
    assert.equal(abort.status, 200);
    const stopped: JobView = await abort.json();
    assert.equal(stopped.state, "failed");
    assert.equal(stopped.error?.code, "aborted");
    assert.ok((stopped.stats as { packsIndexed: number }).packsIndexed < 6);
    assert.equal(await store.driver.stat(LEASE_KEY).then(() => true, () => false), false);

    const again = await errorOf(
      await req(app, `/v1/maintenance/jobs/${jobId}`, { method: "DELETE" }),
    );
    assert.deepEqual([again.status, again.code], [409, "job_not_running"]);
    faulty.clear();
    await put(app, "/v1/objects/ns/new", "x");
    const k5 = new Uint8Array(await (await req(app, "/v1/objects/ns/k5")).arrayBuffer());
    assert.deepEqual(k5, bytes(5, 1000));
  } finally {
    await store.close();
  }
});

Deno.test("POST /v1/maintenance/rebuild: a PUT still streaming when it starts is refused whole, never half-committed", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty, { config: { packLingerMs: 1 } });
  try {
    const app = createApp(store, { token: TOKEN });
    for (let i = 0; i < 3; i++) await store.put("ns", `k${i}`, bytes(i, 1000));
    // A slow upload: its first piece arrives now, the rest when the test says so.
    let finish!: () => void;
    const rest = new Promise<void>((r) => (finish = r));
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("written while "));
      },
      async pull(c) {
        await rest;
        c.enqueue(enc.encode("the rebuild ran"));
        c.close();
      },
    });
    const upload = req(app, "/v1/objects/ns/late", { method: "PUT", body });
    await new Promise((r) => setTimeout(r, 20));
    let tocReads = 0;
    faulty.inject({
      methods: ["get", "getRange"],
      key: (k) => k.startsWith("packs/") && ++tocReads > 0,
      latencyMs: 50,
      latencyOnly: true,
    });
    const res = await req(app, "/v1/maintenance/rebuild", {
      method: "POST",
      body: JSON.stringify({ source: "FullScan", parallelism: 1 }),
    });
    assert.equal(res.status, 202);
    const { jobId } = await res.json();
    // Let the upload commit once the rebuild has listed the packs and reads their TOCs.
    while (tocReads === 0) await new Promise((r) => setTimeout(r, 2));
    finish();
    // Its commit would land in the index the rebuild is about to replace: refused.
    const refused = await upload;
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).code, "maintenance_mode");
    const job = await poll(app, jobId);
    assert.equal(job.state, "completed", JSON.stringify(job.error));
    assert.deepEqual(job.problems, []);
    faulty.clear();
    assert.equal((await req(app, "/v1/objects/ns/late")).status, 404);
    // After the job, the same upload succeeds.
    const again = await req(app, "/v1/objects/ns/late", {
      method: "PUT",
      body: "written after the rebuild",
    });
    assert.equal(again.status, 201);
  } finally {
    await store.close();
  }
});

Deno.test("JobRegistry takes a new kind of job in one line of its kinds map", async () => {
  const { store } = await fixture();
  try {
    // A toy agent that holds the store read-only until it is aborted.
    const hold = (s: Store, bus: Parameters<typeof runExclusive>[1]["bus"]): JobAgent => {
      let ticks = 0;
      return {
        kind: "Hold",
        validate() {},
        stats: () => ({ ticks }),
        run: (o = {}) =>
          runExclusive(s, {
            agent: "Hold",
            storeId: s.storeId,
            mode: "read-only",
            leaseTTL: 60_000,
            bus,
            signal: o.signal,
            stats: () => ({ ticks }),
          }, async (ctx) => {
            ticks++;
            await new Promise((_, reject) => {
              ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
            });
          }),
      };
    };
    const jobs = new JobRegistry(store, {
      kinds: { ...DEFAULT_JOB_KINDS, hold: (s, bus) => hold(s, bus) },
    });
    const app = createApp(store, { token: TOKEN, jobs });
    const events: string[] = [];
    const off = store.bus.subscribe((e) => events.push(e.type));
    const res = await req(app, "/v1/maintenance/hold", { method: "POST" });
    assert.equal(res.status, 202);
    const { jobId } = await res.json();
    const view = await (await req(app, `/v1/maintenance/jobs/${jobId}`)).json();
    assert.deepEqual([view.kind, view.agent, view.state, view.stats], [
      "hold",
      "Hold",
      "running",
      { ticks: 1 },
    ]);
    const ro = await errorOf(await req(app, "/v1/objects/ns/k", { method: "PUT", body: "x" }));
    assert.deepEqual([ro.status, ro.code], [503, "maintenance_mode"]);
    assert.match(ro.message, /read-only/);
    await jobs.close();
    assert.equal(jobs.get(jobId)?.state, "failed");
    assert.equal(jobs.get(jobId)?.error?.code, "aborted");
    off();
    assert.ok(events.includes("maintenance.started") && events.includes("maintenance.failed"));
    await assert.rejects(jobs.start("hold", {}), (e: CapsaError) => e.code === "closed");
    assert.throws(
      () => new JobRegistry(store, { kinds: { jobs: DEFAULT_JOB_KINDS.rebuild! } }),
      InvalidArgumentError,
    );
  } finally {
    await store.close();
  }
});

// ---------------------------------------------------------------- events

Deno.test("GET /v1/events streams bus events as SSE until the client cancels", async () => {
  const { store, app } = await fixture();
  try {
    const before = store.bus.listenerCount;
    const res = await req(app, "/v1/events");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("Content-Type"), "text/event-stream");
    assert.equal(store.bus.listenerCount, before + 1);
    const reader = res.body!.getReader();
    const put = store.put("ns", "k", enc.encode("hello"));
    let text = "";
    const deadline = Date.now() + 10_000;
    while (!/event: pack\.written\ndata: .*\n\n/.test(text)) {
      assert.ok(Date.now() < deadline, `no pack.written event in ${JSON.stringify(text)}`);
      const { done, value } = await reader.read();
      assert.equal(done, false);
      text += dec.decode(value, { stream: true });
    }
    const info = await put;
    const data = /event: pack\.written\ndata: (.*)\n\n/.exec(text)![1]!;
    const event = JSON.parse(data);
    assert.equal(event.type, "pack.written");
    assert.equal(event.storeId, store.storeId);
    assert.equal(event.manifests, 1);
    assert.ok(info.version);
    await reader.cancel();
    for (let i = 0; i < 100 && store.bus.listenerCount !== before; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(store.bus.listenerCount, before, "the stream unsubscribed");
  } finally {
    await store.close();
  }
});

Deno.test("GET /v1/events?types= streams only the types asked for, and ends when the app's signal aborts", async () => {
  const stop = new AbortController();
  const { store, app } = await fixture({ app: { signal: stop.signal } });
  try {
    const res = await req(app, "/v1/events?types=warning,store.state");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    store.bus.publish({
      type: "snapshot.written",
      at: 1,
      storeId: "s",
      key: "k",
      highWaterMark: "",
      bytes: 1,
    });
    store.bus.publish({ type: "warning", at: 2, code: "test_warning", message: "hi" });
    let text = "";
    while (!text.includes("test_warning")) {
      const { done, value } = await reader.read();
      assert.equal(done, false);
      text += value;
    }
    stop.abort();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    assert.doesNotMatch(text, /snapshot\.written/);
    assert.match(
      text,
      /event: warning\ndata: \{"type":"warning","at":2,"code":"test_warning","message":"hi"\}\n\n/,
    );
    for (let i = 0; i < 100 && store.bus.listenerCount !== 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(store.bus.listenerCount, 0, "the stream unsubscribed");
  } finally {
    await store.close();
  }
});

// ---------------------------------------------------------------- errors

Deno.test("toHttpError() maps each error code to its status, with Retry-After where a retry helps", async () => {
  const cases: Array<[unknown, number, string, string | null]> = [
    [new ArtifactNotFoundError("ns", "k"), 404, "not_found", null],
    [new InvalidArgumentError("bad"), 400, "invalid_argument", null],
    [new InvalidKeyError("../x", "escapes"), 400, "invalid_key", null],
    [new RecoveryKitInvalidError("wrong_header", "nope"), 400, "recovery_kit_invalid", null],
    [new LeaseHeldError("Verify on h (pid 1)", 0), 409, "lease_held", null],
    [new MaintenanceModeError("offline", "RebuildIndex on h"), 503, "maintenance_mode", "5"],
    [new StoreCorruptedError(["store.json: missing"]), 503, "store_corrupted", null],
    [new ReadOnlyStoreError(), 403, "read_only", null],
    [new PreconditionFailedError("k"), 412, "precondition_failed", null],
    [new TransientError("503 from S3"), 503, "transient", "1"],
    [new CapsaError("brand_new" as ErrorCode, "x"), 500, "brand_new", null],
    [
      new CapsaError("brand_new_retryable" as ErrorCode, "x", true),
      503,
      "brand_new_retryable",
      "1",
    ],
    [new TypeError("boom"), 500, "internal", null],
    ["a string", 500, "internal", null],
  ];
  for (const [error, status, code, retryAfter] of cases) {
    const h = toHttpError(error);
    assert.equal(h.status, status, code);
    assert.equal(h.code, code);
    const res = h.toResponse();
    assert.equal(res.status, status);
    assert.equal(res.headers.get("Retry-After"), retryAfter, code);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
    if (code === "internal") assert.doesNotMatch(body.message, /boom|string/);
    else assert.equal(body.message, httpAdvice((error as Error).message));
  }
  const own = new HttpError("unauthorized", "short and stout");
  assert.equal(toHttpError(own), own);
  assert.equal(statusOf("not_found", true), 404);
  assert.equal(ERROR_STATUS.lease_held, 409);
  assert.equal(ERROR_STATUS.recovery_kit_invalid, 400);
});

Deno.test("POST /v1/maintenance/verify runs a verification job and reports its problems", async () => {
  const objects = new Map<string, Uint8Array>();
  const { store } = await initStore(new MemoryDriver({ objects }), { config: { packLingerMs: 1 } });
  try {
    const app = createApp(store, { token: TOKEN });
    await store.put("ns", "a", bytes(1, 5000));
    const ok = await req(app, "/v1/maintenance/verify", {
      method: "POST",
      body: JSON.stringify({ data: true }),
    });
    assert.equal(ok.status, 202);
    const sound = await poll(app, (await ok.json()).jobId);
    assert.equal(sound.state, "completed", JSON.stringify(sound.error));
    assert.deepEqual(sound.problems, []);
    const pack = [...objects.keys()].find((k) => k.startsWith("packs/"))!;
    objects.get(pack)![20]! ^= 0xff;
    const bad = await req(app, "/v1/maintenance/verify", {
      method: "POST",
      body: JSON.stringify({ data: true, subset: "1/1" }),
    });
    const job = await poll(app, (await bad.json()).jobId);
    assert.equal(job.state, "completed");
    assert.deepEqual(job.problems.map((p) => p.key), [pack]);
    assert.match(job.problems[0]!.reason, /^blob_hash_mismatch: /);
    const wrong = await req(app, "/v1/maintenance/verify", {
      method: "POST",
      body: JSON.stringify({ subset: "bogus" }),
    });
    assert.equal(wrong.status, 400);
  } finally {
    await store.close();
  }
});

Deno.test("POST /v1/maintenance/migrate and /move run as jobs; bad parameters are 400", async () => {
  const { store } = await initStore(new MemoryDriver(), { config: { packLingerMs: 1 } });
  const dir = await Deno.makeTempDir({ prefix: "capsa-http-move-" });
  try {
    const app = createApp(store, { token: TOKEN });
    await store.put("ns", "a", bytes(1, 3000));
    const bad = await req(app, "/v1/maintenance/migrate", {
      method: "POST",
      body: JSON.stringify({ manifestStorage: "Bogus" }),
    });
    assert.equal(bad.status, 400);
    const mig = await req(app, "/v1/maintenance/migrate", { method: "POST", body: "{}" });
    assert.equal(mig.status, 202);
    const migrated = await poll(app, (await mig.json()).jobId);
    assert.equal(migrated.state, "completed", JSON.stringify(migrated.error));
    assert.equal((migrated.stats as { toSchema: number }).toSchema, INDEX_SCHEMA_VERSION);
    assert.equal(
      (await req(app, "/v1/maintenance/move", { method: "POST", body: "{}" })).status,
      400,
    );
    const mv = await req(app, "/v1/maintenance/move", {
      method: "POST",
      body: JSON.stringify({ destination: `file://${dir}/moved`, parallelism: 2 }),
    });
    assert.equal(mv.status, 202);
    const moved = await poll(app, (await mv.json()).jobId);
    assert.equal(moved.state, "completed", JSON.stringify(moved.error));
    const { openLocalFs } = await import("../drivers/localfs/mod.ts");
    const there = await openStore(await openLocalFs(`${dir}/moved`, {}));
    assert.deepEqual(await there.get("ns", "a"), bytes(1, 3000));
    await there.close();
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
