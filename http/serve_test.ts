import assert from "node:assert/strict";
import { body } from "../tests/data.ts";
import { InvalidArgumentError } from "../errors.ts";
import { initStore } from "../store/store.ts";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import type { JobView } from "./jobs.ts";
import { isLoopback, serve } from "./serve.ts";
import { LEASE_KEY } from "../layout.ts";

const TOKEN = "serve-test-token";
const AUTH = { Authorization: `Bearer ${TOKEN}` };

const bytes = (size: number) => body(size, size);

Deno.test("serve() on 127.0.0.1 answers a fetch round trip, then shuts down: event streams end, jobs stop", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty, { config: { packLingerMs: 1 } });
  const stop = new AbortController();
  try {
    let listened: Deno.NetAddr | undefined;
    const server = serve(store, {
      hostname: "127.0.0.1",
      port: 0,
      token: TOKEN,
      signal: stop.signal,
      onListen: (addr) => (listened = addr),
    });
    assert.equal(server.addr.hostname, "127.0.0.1");
    assert.ok(server.addr.port > 0);
    assert.deepEqual(listened, server.addr);
    assert.equal(server.url, `http://127.0.0.1:${server.addr.port}`);

    const health = await fetch(`${server.url}/v1/health`);
    assert.deepEqual(await health.json(), { ok: true });
    const denied = await fetch(`${server.url}/v1/status`);
    assert.equal(denied.status, 401);
    await denied.body?.cancel();

    const body = bytes(1_500_000);
    const put = await fetch(`${server.url}/v1/objects/ns/dir/file.bin`, {
      method: "PUT",
      body,
      headers: { ...AUTH, "Content-Type": "application/x-test", "X-Capsa-Meta-Origin": "test" },
    });
    assert.equal(put.status, 201);
    const info = await put.json();
    assert.equal(info.size, body.length);

    const get = await fetch(`${server.url}/v1/objects/ns/dir/file.bin`, { headers: AUTH });
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("Content-Length"), String(body.length));
    assert.equal(get.headers.get("Content-Type"), "application/x-test");
    assert.equal(get.headers.get("X-Capsa-Meta-Origin"), "test");
    assert.deepEqual(new Uint8Array(await get.arrayBuffer()), body);
    const range = await fetch(`${server.url}/v1/objects/ns/dir/file.bin`, {
      headers: { ...AUTH, Range: "bytes=-10" },
    });
    assert.equal(range.status, 206);
    assert.deepEqual(new Uint8Array(await range.arrayBuffer()), body.slice(-10));

    // An open event stream and a running job must not keep the server up.
    const events = await fetch(`${server.url}/v1/events`, { headers: AUTH });
    assert.equal(events.headers.get("Content-Type"), "text/event-stream");
    const reader = events.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /^: capsa events/);
    faulty.inject({
      methods: ["get", "getRange"],
      key: /^packs\//,
      latencyMs: 200,
      latencyOnly: true,
    });
    const started = await fetch(`${server.url}/v1/maintenance/rebuild`, {
      method: "POST",
      body: JSON.stringify({ source: "FullScan" }),
      headers: AUTH,
    });
    assert.equal(started.status, 202);
    const { jobId } = await started.json();

    const dec = new TextDecoder();
    let text = "";
    while (!text.includes("event: maintenance.started")) {
      const { done, value } = await reader.read();
      assert.equal(done, false);
      text += dec.decode(value);
    }

    stop.abort();
    await server.finished;
    for (;;) {
      const { done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
    }
    assert.equal(await store.driver.stat(LEASE_KEY).then(() => true, () => false), false);
    await assert.rejects(fetch(`${server.url}/v1/health`), TypeError, "the port is closed");
    assert.ok(jobId);
  } finally {
    await store.close();
  }
});

Deno.test("serve() shutdown() aborts a running job, releases its lease and resolves finished", async () => {
  const faulty = new FaultyDriver(new MemoryDriver());
  const { store } = await initStore(faulty, { config: { packLingerMs: 1 } });
  try {
    await store.put("ns", "k", bytes(1000));
    const server = serve(store, { port: 0 });
    faulty.inject({
      methods: ["get", "getRange"],
      key: /^packs\//,
      latencyMs: 200,
      latencyOnly: true,
    });
    const res = await fetch(`${server.url}/v1/maintenance/rebuild`, { method: "POST" });
    assert.equal(res.status, 202, "no token needed on loopback without one");
    const { jobId } = await res.json();
    const seen: JobView = await (await fetch(`${server.url}/v1/maintenance/jobs/${jobId}`)).json();
    assert.equal(seen.state, "running");
    await server.shutdown();
    assert.equal(await store.driver.stat(LEASE_KEY).then(() => true, () => false), false);
  } finally {
    await store.close();
  }
});

Deno.test("serve() refuses to listen beyond loopback without a token, before binding anything", async () => {
  const { store } = await initStore(new MemoryDriver());
  try {
    for (const hostname of ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "example.com"]) {
      assert.throws(
        () => serve(store, { hostname, port: 0 }),
        (e: unknown) =>
          e instanceof InvalidArgumentError && /without a bearer token/.test(e.message),
        hostname,
      );
    }
    assert.throws(() => serve(store, { port: 0, token: "" }), InvalidArgumentError);
    assert.throws(() => serve(store, { port: 70000 }), InvalidArgumentError);
    assert.throws(() => serve(store, { port: 1.5 }), InvalidArgumentError);
  } finally {
    await store.close();
  }
});

Deno.test("isLoopback() accepts localhost, 127.0.0.0/8 and ::1 only", () => {
  for (
    const h of [
      "127.0.0.1",
      "127.1.2.3",
      "localhost",
      "LOCALHOST",
      "::1",
      "[::1]",
      "::ffff:127.0.0.1",
    ]
  ) {
    assert.equal(isLoopback(h), true, h);
  }
  for (
    const h of [
      "0.0.0.0",
      "::",
      "128.0.0.1",
      "127.0.0.256",
      "192.168.0.1",
      "localhost.evil.com",
      "127.0.0.1.nip.io",
      "",
    ]
  ) {
    assert.equal(isLoopback(h), false, h);
  }
});
