import assert from "node:assert/strict";
import { CapsaError } from "../../errors.ts";
import { type DriverUnderTest, testDriverConformance } from "../testing/conformance.ts";
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  TransientError,
} from "../driver.ts";
import { openS3, parseS3Url, type S3Driver, type S3Options, type S3RetryEvent } from "./mod.ts";
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from "../../tests/s3_server.ts";

// One server for the whole file, started by the first test that needs it and
// stopped by the last test. It runs detached (see tests/s3_server.ts), so no
// test holds its process or pipes and the sanitizers stay on everywhere.
let serverStarted: Promise<S3Server> | undefined;
function server(): Promise<S3Server> {
  if (serverStarted === undefined) {
    Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
    serverStarted = startS3Server({ createOnly: true });
  }
  return serverStarted;
}

let buckets = 0;
async function freshBucket(createOnly = true): Promise<{ s: S3Server; bucket: string }> {
  const s = await server();
  const bucket = `capsa-${Date.now().toString(36)}-${buckets++}`;
  await s.createBucket(bucket, { createOnly });
  return { s, bucket };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A conformance factory: a fresh bucket per test, drivers opened with the probe. */
function conformanceFactory(createOnly: boolean): () => Promise<DriverUnderTest> {
  return async () => {
    const { s, bucket } = await freshBucket(createOnly);
    const url = `s3://${bucket}/store?endpoint=${s.endpoint}`;
    const drivers: S3Driver[] = [];
    const open = async () => {
      const d = await openS3(url);
      drivers.push(d);
      return d;
    };
    const driver = await open();
    assert.equal(driver.capabilities.createOnly, createOnly, "the probe reports the server");
    return {
      driver,
      reopen: open,
      dispose: async () => {
        for (const d of drivers) await d.close();
        await s.deleteBucket(bucket);
      },
    };
  };
}

testDriverConformance("s3 (create-only)", conformanceFactory(true));
testDriverConformance("s3 (no create-only)", conformanceFactory(false), {
  skip: {
    "racing create-only puts of one key: exactly one wins":
      "the server ignores If-None-Match: *, so capabilities.createOnly is false and a HEAD check cannot exclude racing writers",
  },
});

// ---------------------------------------------------------------------------
// Location URLs

Deno.test("parseS3Url() reads bucket, prefix and parameters", () => {
  assert.deepEqual(parseS3Url("s3://backups"), { bucket: "backups", prefix: "" });
  assert.deepEqual(parseS3Url("s3://backups/"), { bucket: "backups", prefix: "" });
  assert.deepEqual(parseS3Url("s3://backups/capsa/main/"), {
    bucket: "backups",
    prefix: "capsa/main/",
  });
  assert.deepEqual(
    parseS3Url(
      "s3://my.bucket-1/a%20b?endpoint=http://127.0.0.1:9000&region=eu-west-1" +
        "&path-style=false&create-only=false",
    ),
    {
      bucket: "my.bucket-1",
      prefix: "a b/",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      forcePathStyle: false,
      createOnly: false,
    },
  );
  assert.equal(parseS3Url("s3://b12/x?create-only=probe").createOnly, "probe");
  assert.equal(parseS3Url(new URL("s3://b12/x?path-style=true")).forcePathStyle, true);
  assert.equal(
    parseS3Url("s3://b12?endpoint=https%3A%2F%2Fs3.example.com%2F").endpoint,
    "https://s3.example.com",
  );
});

Deno.test("parseS3Url() refuses malformed URLs with InvalidArgumentError", () => {
  const bad = [
    "not a url",
    "file:///tmp/x",
    "s3:///prefix-without-bucket",
    "s3://UPPER/x",
    "s3://ab/x",
    "s3://-bucket/x",
    "s3://bucket..name/x",
    "s3://192.168.1.1/x",
    "s3://bucket:9000/x",
    "s3://bucket/x#frag",
    "s3://bucket/a//b",
    "s3://bucket/a/../b",
    "s3://bucket/a%00b",
    "s3://bucket/%zz",
    "s3://bucket?unknown=1",
    "s3://bucket?endpoint=http://a&endpoint=http://b",
    "s3://bucket?endpoint=ftp://host",
    "s3://bucket?endpoint=http://host/path",
    "s3://bucket?endpoint=http://host?x=1",
    "s3://bucket?endpoint=nope",
    "s3://bucket?region=eu west",
    "s3://bucket?path-style=yes",
    "s3://bucket?create-only=maybe",
  ];
  for (const url of bad) {
    assert.throws(() => parseS3Url(url), InvalidArgumentError, url);
  }
});

Deno.test("parseS3Url() refuses credentials in the URL without repeating them", () => {
  for (
    const url of [
      "s3://AKIDSECRETUSER:wJalrSECRETKEY@bucket/prefix",
      "s3://AKIDSECRETUSER@bucket/prefix",
      "s3://bucket/prefix?endpoint=http://AKIDSECRETUSER:wJalrSECRETKEY@127.0.0.1:9000",
    ]
  ) {
    assert.throws(() => parseS3Url(url), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /credentials/);
      assert.doesNotMatch(e.message, /AKIDSECRETUSER|wJalrSECRETKEY/);
      return true;
    });
  }
});

Deno.test("openS3() refuses bad options and location prints no secret", async () => {
  await assert.rejects(
    openS3({ bucket: "b12", pageSize: 0, createOnly: false }),
    InvalidArgumentError,
  );
  await assert.rejects(
    openS3({ bucket: "b12", retry: { maxAttempts: 0 }, createOnly: false }),
    InvalidArgumentError,
  );
  const d = await openS3("s3://b12/p?endpoint=http://127.0.0.1:1&region=r1", { createOnly: false });
  try {
    assert.equal(d.kind, "s3");
    assert.equal(d.location, "s3://b12/p/?endpoint=http://127.0.0.1:1&region=r1");
    assert.doesNotMatch(d.location, new RegExp(S3_TEST_CREDENTIALS.secretAccessKey));
    assert.deepEqual(d.capabilities, { createOnly: false, durable: true });
    // location parses back to the same Location.
    const odd = await openS3("s3://b12/a%20b/c%23d?path-style=false", { createOnly: false });
    assert.equal(odd.location, "s3://b12/a%20b/c%23d/?path-style=false");
    assert.deepEqual(parseS3Url(odd.location), {
      bucket: "b12",
      prefix: "a b/c#d/",
      forcePathStyle: false,
    });
    await odd.close();
  } finally {
    await d.close();
  }
});

// ---------------------------------------------------------------------------
// Against the server

Deno.test("openS3() probes create-only support honestly, and leaves no probe key", async () => {
  for (const createOnly of [true, false]) {
    const { s, bucket } = await freshBucket(createOnly);
    const d = await openS3(`s3://${bucket}/p?endpoint=${s.endpoint}`);
    try {
      assert.equal(d.capabilities.createOnly, createOnly);
      assert.equal(await d.probeCreateOnly(), createOnly);
      const left: string[] = [];
      for await (const info of d.list("")) left.push(info.key);
      assert.deepEqual(left, []);
    } finally {
      await d.close();
      await s.deleteBucket(bucket);
    }
  }
});

Deno.test("openS3() trusts createOnly when set, and the fallback still refuses a visible key", async () => {
  const { s, bucket } = await freshBucket(false);
  const url = `s3://${bucket}?endpoint=${s.endpoint}`;
  const trusting = await openS3(url, { createOnly: true });
  const checking = await openS3(`${url}&create-only=false`);
  try {
    assert.equal(trusting.capabilities.createOnly, true);
    assert.equal(checking.capabilities.createOnly, false);
    await checking.put("k", enc.encode("1"), { ifAbsent: true });
    await assert.rejects(
      checking.put("k", enc.encode("2"), { ifAbsent: true }),
      PreconditionFailedError,
    );
    assert.equal(dec.decode(await checking.get("k")), "1");
  } finally {
    await trusting.close();
    await checking.close();
    await s.deleteBucket(bucket);
  }
});

Deno.test("openS3({ create }) creates a missing bucket, and refuses one otherwise", async () => {
  const s = await server();
  const bucket = `capsa-new-${Date.now().toString(36)}`;
  const url = `s3://${bucket}/p?endpoint=${s.endpoint}`;
  try {
    await assert.rejects(openS3(url), InvalidArgumentError);
    const d = await openS3(url, { create: true });
    await d.put("k", enc.encode("v"));
    await d.close();
    const again = await openS3(url, { create: true }); // exists: nothing to do
    assert.equal(dec.decode(await again.get("k")), "v");
    await again.close();
  } finally {
    await s.deleteBucket(bucket);
  }
});

Deno.test("S3Driver keeps two stores apart by key prefix in one bucket", async () => {
  const { s, bucket } = await freshBucket();
  const one = await openS3(`s3://${bucket}/stores/one?endpoint=${s.endpoint}`);
  const two = await openS3(`s3://${bucket}/stores/one-more/?endpoint=${s.endpoint}`);
  const root = await openS3(`s3://${bucket}?endpoint=${s.endpoint}`);
  try {
    await one.put("store.json", enc.encode("one"));
    await two.put("store.json", enc.encode("two"));
    await one.put("packs/1", enc.encode("p1"));
    assert.equal(dec.decode(await one.get("store.json")), "one");
    assert.equal(dec.decode(await two.get("store.json")), "two");
    await assert.rejects(two.get("packs/1"), NotFoundError);
    const keys = async (d: S3Driver) => {
      const out: string[] = [];
      for await (const info of d.list("")) out.push(info.key);
      return out;
    };
    assert.deepEqual(await keys(one), ["packs/1", "store.json"]);
    assert.deepEqual(await keys(two), ["store.json"]);
    assert.deepEqual(await keys(root), [
      "stores/one-more/store.json",
      "stores/one/packs/1",
      "stores/one/store.json",
    ]);
    await two.delete("packs/1");
    assert.equal(dec.decode(await one.get("packs/1")), "p1");
  } finally {
    for (const d of [one, two, root]) await d.close();
    await s.deleteBucket(bucket);
  }
});

Deno.test("S3Driver.list() follows continuation tokens page by page, with startAfter", async () => {
  const { s, bucket } = await freshBucket();
  const d = await openS3(`s3://${bucket}/p?endpoint=${s.endpoint}`, { pageSize: 3 });
  try {
    const keys = Array.from({ length: 40 }, (_, i) => `k/${String(i).padStart(3, "0")}`);
    await Promise.all(keys.map((k) => d.put(k, enc.encode(k))));
    await d.put("k0", enc.encode("x"));
    const list = async (prefix: string, startAfter?: string) => {
      const out: string[] = [];
      const opts = startAfter === undefined ? {} : { startAfter };
      for await (const info of d.list(prefix, opts)) out.push(info.key);
      return out;
    };
    assert.deepEqual(await list("k/"), keys);
    assert.deepEqual(await list("k/", "k/016"), keys.slice(17));
    assert.deepEqual(await list("", "k/038"), ["k/039", "k0"]);
    assert.deepEqual(await list("k/", "k/039"), []);
  } finally {
    await d.close();
    await s.deleteBucket(bucket);
  }
});

Deno.test("S3Driver stores a 5 MiB body byte for byte (no aws-chunked framing)", async () => {
  const { s, bucket } = await freshBucket();
  const d = await openS3(`s3://${bucket}?endpoint=${s.endpoint}`);
  try {
    const body = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919 + (i >>> 11)) & 0xff;
    await d.put("big", body);
    const back = await d.get("big");
    assert.equal(back.constructor, Uint8Array);
    assert.ok(back.length === body.length && back.every((x, i) => x === body[i]));
    // What the server stored on disk is the body itself.
    const onDisk = await Deno.readFile(`${s.dir}/data/${bucket}/big._S3rver_object`);
    assert.ok(onDisk.length === body.length && onDisk.every((x, i) => x === body[i]));
    const tail = await d.getRange("big", body.length - 10, 100);
    assert.deepEqual(tail, body.slice(body.length - 10));
  } finally {
    await d.close();
    await s.deleteBucket(bucket);
  }
});

// ---------------------------------------------------------------------------
// Errors and retries

/** Opens a driver on a fresh bucket with fast retries, recording every retry. */
async function faultDriver(options: Partial<S3Options> = {}) {
  const { s, bucket } = await freshBucket();
  const retries: S3RetryEvent[] = [];
  const d = await openS3(`s3://${bucket}/p?endpoint=${s.endpoint}`, {
    createOnly: true,
    retry: { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20 },
    onRetry: (e) => {
      retries.push(e);
    },
    ...options,
  });
  const done = async () => {
    await d.close();
    await s.deleteBucket(bucket);
  };
  return { s, bucket, d, retries, done };
}

Deno.test("S3Driver retries throttling, 5xx and dropped connections, then succeeds", async () => {
  const { s, d, retries, done } = await faultDriver();
  try {
    await s.injectFault({ status: 503, code: "SlowDown", count: 2 });
    await d.put("a", enc.encode("a"));
    assert.deepEqual(retries.map((r) => [r.operation, r.key, r.attempt]), [
      ["put", "a", 1],
      ["put", "a", 2],
    ]);
    retries.length = 0;
    await s.injectFault({ status: 429, code: "TooManyRequests" });
    await s.injectFault({ status: 500, code: "InternalError" });
    assert.equal(dec.decode(await d.get("a")), "a");
    assert.equal(retries.length, 2);
    retries.length = 0;
    // Connections dropped before any answer. Deno's HTTP client resends a
    // request once by itself when a reused keep-alive connection turns out to
    // be closed, so two drops are needed for the driver to see one.
    await s.injectFault({ reset: true, count: 2 });
    await d.put("b", enc.encode("b"));
    assert.ok(retries.length >= 1);
    assert.match(String(retries[0]?.error), /ECONNRESET|socket hang up|closed|reset/i);
    assert.equal(dec.decode(await d.get("b")), "b");
    retries.length = 0;
    await s.injectFault({ status: 502, code: "BadGateway" });
    const seen: string[] = [];
    for await (const info of d.list("")) seen.push(info.key);
    assert.deepEqual(seen, ["a", "b"]);
    assert.equal(retries.length, 1);
  } finally {
    await s.clearFaults();
    await done();
  }
});

Deno.test("S3Driver gives up with TransientError after the bounded attempts", async () => {
  const { s, d, retries, done } = await faultDriver();
  try {
    await s.injectFault({ status: 500, code: "InternalError", count: 4 });
    await assert.rejects(d.put("k", enc.encode("v")), (e: unknown) => {
      assert.ok(e instanceof TransientError, String(e));
      assert.equal(e.retryable, true);
      assert.match(e.message, /after 4 attempts/);
      assert.equal(
        (e.cause as { $metadata?: { httpStatusCode?: number } }).$metadata
          ?.httpStatusCode,
        500,
      );
      return true;
    });
    assert.equal(retries.length, 3);
    await assert.rejects(d.stat("k"), NotFoundError);
  } finally {
    await done();
  }
});

Deno.test("S3Driver maps 403 to PermissionDeniedError and a missing bucket to InvalidArgumentError, without retrying", async () => {
  const { s, d, retries, done } = await faultDriver();
  try {
    await s.injectFault({ status: 403, code: "AccessDenied" });
    await assert.rejects(d.get("k"), PermissionDeniedError);
    const gone = await openS3(`s3://no-such-bucket-here?endpoint=${s.endpoint}`, {
      createOnly: true,
    });
    try {
      await assert.rejects(gone.put("k", enc.encode("v")), InvalidArgumentError);
      await assert.rejects(
        (async () => {
          for await (const _ of gone.list("")) { /* nothing */ }
        })(),
        InvalidArgumentError,
      );
    } finally {
      await gone.close();
    }
    await s.injectFault({ status: 400, code: "InvalidArgument" });
    await assert.rejects(d.get("k"), (e: unknown) => {
      assert.ok(e instanceof CapsaError && e.code === "s3_error", String(e));
      return true;
    });
    assert.equal(retries.length, 0);
  } finally {
    await done();
  }
});

Deno.test("S3Driver reports credentials the server refuses as PermissionDeniedError, secret unsaid", async () => {
  const { s, bucket } = await freshBucket();
  const secret = "not-the-right-secret-0123456789";
  Deno.env.set("AWS_ACCESS_KEY_ID", "unknown-key");
  Deno.env.set("AWS_SECRET_ACCESS_KEY", secret);
  try {
    await assert.rejects(openS3(`s3://${bucket}?endpoint=${s.endpoint}`), (e: unknown) => {
      assert.ok(e instanceof PermissionDeniedError, String(e));
      assert.equal(
        (e.cause as { $metadata?: { httpStatusCode?: number } }).$metadata
          ?.httpStatusCode,
        403,
      );
      assert.doesNotMatch(`${e.message} ${String(e.cause)}`, new RegExp(secret));
      return true;
    });
  } finally {
    Deno.env.set("AWS_ACCESS_KEY_ID", S3_TEST_CREDENTIALS.accessKeyId);
    Deno.env.set("AWS_SECRET_ACCESS_KEY", S3_TEST_CREDENTIALS.secretAccessKey);
    await s.deleteBucket(bucket);
  }
});

Deno.test("S3Driver create-only put whose answer was lost still succeeds once", async () => {
  const { s, d, retries, done } = await faultDriver();
  try {
    // The first attempt lands but its answer is lost; the retry sees 412 and
    // reads the object back: it holds our bytes, so the put succeeded.
    await s.injectFault({ reset: true, after: true });
    await d.put("lease", enc.encode("ours"), { ifAbsent: true });
    assert.equal(retries.length, 1);
    assert.equal(dec.decode(await d.get("lease")), "ours");
    // Someone else's object is still refused.
    await s.injectFault({ reset: true });
    await assert.rejects(
      d.put("lease", enc.encode("theirs"), { ifAbsent: true }),
      PreconditionFailedError,
    );
  } finally {
    await done();
  }
});

Deno.test("S3Driver survives the server stopping mid-operation and restarting during the backoff", async () => {
  const { s, d, retries, done } = await faultDriver({
    retry: { maxAttempts: 6, baseDelayMs: 50, maxDelayMs: 200 },
    onRetry: async (e) => {
      retries.push(e);
      if (e.attempt === 1) await s.restart(); // back while the driver waits
    },
  });
  try {
    const body = new Uint8Array(256 * 1024).map((_, i) => i & 0xff);
    await s.setLatency(400);
    const put = d.put("packs/0001", body);
    await new Promise((r) => setTimeout(r, 150)); // the PUT is in flight
    await s.kill();
    await put;
    await s.setLatency(0);
    assert.ok(retries.length >= 1);
    const back = await d.get("packs/0001");
    assert.ok(back.length === body.length && back.every((x, i) => x === body[i]));
  } finally {
    await s.setLatency(0);
    await done();
  }
});

Deno.test("S3Driver with the server gone for good: TransientError, nothing half-written", async () => {
  const { s, d, retries, done } = await faultDriver({
    retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
  });
  try {
    await d.put("old", enc.encode("old"));
    await s.setLatency(300);
    const settled = Promise.allSettled([
      d.put("packs/0002", new Uint8Array(512 * 1024).fill(7)),
      d.put("old", new Uint8Array(512 * 1024).fill(8)),
    ]);
    await new Promise((r) => setTimeout(r, 100)); // both PUTs are in flight
    await s.kill();
    for (const r of await settled) {
      assert.equal(r.status, "rejected");
      const e = (r as PromiseRejectedResult).reason;
      assert.ok(e instanceof TransientError, String(e));
      assert.match(e.message, /after 3 attempts/);
    }
    assert.equal(retries.length, 4);
    await s.restart();
    await s.setLatency(0);
    await assert.rejects(d.stat("packs/0002"), NotFoundError);
    assert.equal(dec.decode(await d.get("old")), "old");
  } finally {
    await s.setLatency(0);
    await done();
  }
});

// ---------------------------------------------------------------------------
// Narrow permissions

/** The flags the README shows for an S3 Location (PORT: the endpoint's). */
function narrowFlags(port: number): string[] {
  return [
    `--allow-net=127.0.0.1:${port}`,
    "--allow-env=AWS_*,HOME,USERPROFILE,HOMEPATH,HOMEDRIVE,_X_AMZN_TRACE_ID",
    "--allow-sys=osRelease",
  ];
}

Deno.test("an S3 round trip runs with only --allow-net to the server, AWS_* env and osRelease", async () => {
  const { s, bucket } = await freshBucket();
  try {
    const fixture = new URL("../../tests/fixtures/s3_roundtrip.ts", import.meta.url);
    const config = new URL("../../deno.json", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        `--config=${decodeURIComponent(config.pathname)}`,
        ...narrowFlags(s.port),
        decodeURIComponent(fixture.pathname),
        `s3://${bucket}/narrow?endpoint=${s.endpoint}`,
      ],
      clearEnv: true,
      env: {
        AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
        // Without HOME the SDK asks the OS for the home directory (--allow-sys=uid).
        HOME: Deno.env.get("HOME") ?? "/nonexistent",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = dec.decode(out.stdout);
    assert.ok(out.success, `the round trip failed:\n${stdout}\n${dec.decode(out.stderr)}`);
    assert.equal(stdout.trim(), "ok true");
  } finally {
    await s.deleteBucket(bucket);
  }
});

Deno.test("the S3 test server stops (last test of this file)", async () => {
  if (serverStarted === undefined) return;
  const s = await serverStarted;
  serverStarted = undefined;
  await s.stop();
  await assert.rejects(Deno.stat(s.dir), Deno.errors.NotFound);
});
