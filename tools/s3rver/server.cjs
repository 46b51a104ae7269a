"use strict";
/**
 * The S3-compatible server capsa's tests run on loopback: s3rver 3.7.1 with a
 * request middleware and two store patches that close its gaps.
 *
 * Started by tests/s3_server.ts as
 *
 *   node --openssl-legacy-provider tools/s3rver/server.cjs --daemon '<config JSON>'
 *
 * With `--daemon` this process is only a launcher: it starts the server as a
 * detached process, waits until it listens, prints `{"port":…,"pid":…}` on
 * stdout and exits, so the caller holds no child process or pipe while the
 * server runs (Deno's test sanitizers stay satisfied across tests). Without
 * `--daemon` it is the server itself, in the foreground.
 *
 * Config (JSON): dir (data directory, required), host (default 127.0.0.1),
 * port (0 = pick a free one), createOnly (default for new buckets), buckets
 * ({name: createOnly} created at start), latencyMs, ownerPid (exit once that
 * process is gone, first removing the path removeOnOrphan if given),
 * accessKeyId and secretAccessKey (an extra key pair accepted besides
 * S3RVER/S3RVER), logFile.
 *
 * Gaps of s3rver closed here:
 * - `If-None-Match: *` on PUT: 412 when the key exists, for buckets created
 *   with createOnly; ignored (as a server without support does) otherwise.
 * - `If-Match` on PUT, GET and HEAD: 412 on an ETag mismatch, 404 on PUT of a
 *   missing key.
 * - Suffix ranges `bytes=-N` return the last N bytes (s3rver returned the
 *   head); a range starting at or past the end (also on an empty object) is
 *   416 InvalidRange.
 * - Atomic puts: the body goes to a temp file renamed into place, and a
 *   per-key lock orders writes against reads, so a reader never sees a
 *   partial object and a crash mid-body leaves the old object.
 * - Key segments longer than a file name allows (s3rver failed on them).
 * - Listings in UTF-8 byte order (s3rver listed in directory-walk order,
 *   which broke ordering and pagination for keys like "a", "a-b", "a/b").
 *
 * Control routes for tests (never valid S3 paths: no bucket name starts with
 * "_"): GET /__harness/health; PUT|DELETE /__harness/buckets/<name>
 * [?createOnly=true|false]; PUT /__harness/latency?ms=N; PUT
 * /__harness/fault?count=N&(status=S&code=C | reset=true)[&after=true] makes
 * the next N S3 requests fail with that answer or a dropped connection
 * (after=true: the request is carried out first, then its answer is lost);
 * DELETE /__harness/fault clears them.
 */

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");
const { spawn } = require("child_process");

const S3rver = require("s3rver");
const S3Error = require("s3rver/lib/models/error");
const S3Object = require("s3rver/lib/models/object");
const FilesystemStore = require("s3rver/lib/stores/filesystem");
const AWSAccount = require("s3rver/lib/models/account");

const OBJECT_SUFFIX = "._S3rver_object";

function parseConfig() {
  const json = process.argv.find((a, i) => i >= 2 && a.startsWith("{"));
  if (json === undefined) {
    throw new Error("usage: server.cjs [--daemon] '<config JSON>'");
  }
  const config = JSON.parse(json);
  if (typeof config.dir !== "string" || config.dir === "") {
    throw new Error("config.dir is required");
  }
  return {
    host: "127.0.0.1",
    port: 0,
    createOnly: true,
    buckets: {},
    latencyMs: 0,
    ...config,
  };
}

// ---------------------------------------------------------------------------
// Launcher: start the server detached, report its port and pid, exit.

function launch(config) {
  const args = [...process.execArgv, __filename, JSON.stringify(config)];
  const log = config.logFile ? fs.openSync(config.logFile, "a") : "ignore";
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", log, log, "ipc"],
  });
  const fail = (message) => {
    process.stderr.write(`s3rver harness: ${message}\n`);
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    process.exit(1);
  };
  const timer = setTimeout(
    () => fail("the server did not start within 30 s"),
    30_000,
  );
  child.once("error", (e) => fail(`cannot start the server: ${e.message}`));
  child.once(
    "exit",
    (code, signal) => fail(`the server exited early (${signal ?? code})`),
  );
  child.once("message", (message) => {
    clearTimeout(timer);
    if (!message || message.error) fail(message ? message.error : "no message");
    child.removeAllListeners("exit");
    child.disconnect();
    child.unref();
    process.stdout.write(
      JSON.stringify({ port: message.port, pid: child.pid }) + "\n",
    );
  });
}

// ---------------------------------------------------------------------------
// Store patches: long key segments, atomic puts, byte-ordered listings.

function byteCompare(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

// s3rver maps each key segment to a file or directory name, so a segment
// longer than the file system's name limit (255 bytes) failed. A long segment
// is stored as a chain of directories, each piece but the last ending with
// CONTINUED (a control character, which capsa never puts in keys).
const CONTINUED = "\u0001";
const PIECE_BYTES = 200;

function encodeSegment(segment) {
  if (Buffer.byteLength(segment) <= PIECE_BYTES) return segment;
  const pieces = [];
  let piece = "";
  for (const ch of segment) {
    if (Buffer.byteLength(piece + ch) > PIECE_BYTES) {
      pieces.push(piece + CONTINUED);
      piece = "";
    }
    piece += ch;
  }
  pieces.push(piece);
  return pieces.join("/");
}

FilesystemStore.encodeKeyPath = (key) => key.split("/").map(encodeSegment).join("/");
FilesystemStore.decodeKeyPath = (keyPath) => keyPath.split(CONTINUED + "/").join("");

FilesystemStore.prototype.deleteObject = async function deleteObject(
  bucket,
  key,
) {
  const objectPath = this.getResourcePath(bucket, key, "object");
  await Promise.all(
    [
      objectPath,
      `${objectPath}.md5`,
      this.getResourcePath(bucket, key, "metadata.json"),
    ].map(
      (p) => fs.promises.rm(p, { force: true }),
    ),
  );
  // Remove the directories the key leaves empty, up to the bucket.
  const bucketPath = this.getBucketPath(bucket);
  for (
    let dir = path.dirname(objectPath);
    dir.startsWith(bucketPath + path.sep);
  ) {
    try {
      await fs.promises.rmdir(dir);
    } catch {
      break; // not empty (or already gone)
    }
    dir = path.dirname(dir);
  }
};

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, "object");
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const tmp = `${objectPath}.tmp-${crypto.randomBytes(8).toString("hex")}`;
  const md5 = crypto.createHash("md5");
  let size = 0;
  try {
    await new Promise((resolve, reject) => {
      const out = fs.createWriteStream(tmp);
      const src = object.content;
      let ended = false;
      out.on("error", reject);
      out.on("finish", resolve);
      if (Buffer.isBuffer(src)) {
        md5.update(src);
        size = src.length;
        out.end(src);
        return;
      }
      src.on("data", (chunk) => {
        md5.update(chunk);
        size += chunk.length;
        if (!out.write(chunk)) src.pause();
      });
      out.on("drain", () => src.resume());
      src.on("end", () => {
        ended = true;
        out.end();
      });
      src.on("error", (e) => {
        out.destroy();
        reject(e);
      });
      src.on("close", () => {
        if (!ended) {
          out.destroy();
          reject(new Error("the request closed before its body ended"));
        }
      });
    });
    const declared = object.metadata["content-length"];
    if (declared !== undefined && Number(declared) !== size) {
      throw new S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
      );
    }
    const digest = md5.digest("hex");
    // A stale .md5 must never describe the new content: drop it, swap the
    // object in atomically, then write the new metadata.
    await fs.promises.rm(`${objectPath}.md5`, { force: true });
    await fs.promises.rename(tmp, objectPath);
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
};

FilesystemStore.prototype.listObjects = async function listObjects(
  bucket,
  options,
) {
  const { delimiter = "", startAfter = "", prefix = "", maxKeys = Infinity } = options;
  const bucketPath = this.getBucketPath(bucket);
  const keys = [];
  const walk = (dir, keyPrefix) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if (e.code === "ENOENT") return;
      throw e;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) {
        const sub = entry.name.endsWith(CONTINUED)
          ? keyPrefix + entry.name.slice(0, -CONTINUED.length)
          : keyPrefix + entry.name + "/";
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) {
          walk(path.join(dir, entry.name), sub);
        }
      } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
        const key = keyPrefix + entry.name.slice(0, -OBJECT_SUFFIX.length);
        if (
          key.startsWith(prefix) &&
          (startAfter === "" || byteCompare(key, startAfter) > 0)
        ) {
          keys.push(key);
        }
      }
    }
  };
  walk(bucketPath, "");
  keys.sort(byteCompare);

  const page = [];
  const commonPrefixes = new Set();
  let isTruncated = false;
  for (const key of keys) {
    if (delimiter) {
      const i = key.indexOf(delimiter, prefix.length);
      if (i !== -1) {
        commonPrefixes.add(key.slice(0, i + delimiter.length));
        continue;
      }
    }
    if (page.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    page.push(key);
  }
  const metadata = await Promise.all(
    page.map((key) =>
      this.getMetadata(bucket, key).catch((e) => {
        if (e.code === "ENOENT") return undefined;
        throw e;
      })
    ),
  );
  const objects = [];
  page.forEach((key, i) => {
    if (metadata[i] !== undefined) {
      objects.push(new S3Object(bucket, key, null, metadata[i]));
    }
  });
  return {
    objects,
    commonPrefixes: [...commonPrefixes].sort(byteCompare),
    isTruncated,
  };
};

// ---------------------------------------------------------------------------
// Per-key readers/writer locks: conditional checks and writes of one key run
// alone, and reads never overlap a write of the same key.

class KeyLocks {
  constructor() {
    this.locks = new Map();
  }

  acquire(key, exclusive) {
    let lock = this.locks.get(key);
    if (lock === undefined) {
      lock = { readers: 0, writer: false, queue: [] };
      this.locks.set(key, lock);
    }
    return new Promise((resolve) => {
      lock.queue.push({ exclusive, resolve });
      this.#pump(key, lock);
    });
  }

  #pump(key, lock) {
    while (lock.queue.length > 0) {
      const next = lock.queue[0];
      if (lock.writer) break;
      if (next.exclusive && lock.readers > 0) break;
      lock.queue.shift();
      if (next.exclusive) lock.writer = true;
      else lock.readers++;
      let released = false;
      next.resolve(() => {
        if (released) return;
        released = true;
        if (next.exclusive) lock.writer = false;
        else lock.readers--;
        this.#pump(key, lock);
      });
    }
    if (!lock.writer && lock.readers === 0 && lock.queue.length === 0) {
      this.locks.delete(key);
    }
  }
}

// ---------------------------------------------------------------------------
// The middleware in front of s3rver.

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function etagsMatch(header, etag) {
  const strip = (t) => t.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
  const want = strip(etag);
  return header.split(",").some((t) => t.trim() === "*" || strip(t) === want);
}

function preconditionFailed(condition) {
  return new S3Error(
    "PreconditionFailed",
    "At least one of the pre-conditions you specified did not hold",
    { Condition: condition },
  );
}

function parseObjectPath(rawPath) {
  const parts = rawPath.split("/");
  // "/bucket/key/with/slashes" → ["", "bucket", "key", "with", "slashes"]
  if (parts.length < 3 || parts[1] === "") return undefined;
  const key = parts.slice(2).join("/");
  if (key === "") return undefined;
  try {
    return {
      bucket: decodeURIComponent(parts[1]),
      key: decodeURIComponent(key),
    };
  } catch {
    return undefined;
  }
}

/** True when the query string names a plain object operation (no subresource). */
function plainObjectQuery(query) {
  return Object.keys(query).every((k) => k === "x-id");
}

function createMiddleware(state, store) {
  const locks = new KeyLocks();

  async function control(ctx) {
    const rest = ctx.path.slice("/__harness/".length);
    const q = ctx.query;
    if (ctx.method === "GET" && rest === "health") {
      ctx.body = JSON.stringify({ ok: true, pid: process.pid });
    } else if (
      rest.startsWith("buckets/") &&
      (ctx.method === "PUT" || ctx.method === "DELETE")
    ) {
      const name = decodeURIComponent(rest.slice("buckets/".length));
      if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
        ctx.status = 400;
        ctx.body = `invalid bucket name ${JSON.stringify(name)}`;
        return;
      }
      if (ctx.method === "PUT") {
        await store.putBucket(name);
        state.buckets.set(
          name,
          q.createOnly === undefined ? state.createOnly : q.createOnly === "true",
        );
      } else {
        await store.deleteBucket(name);
        state.buckets.delete(name);
      }
      ctx.status = 204;
    } else if (ctx.method === "PUT" && rest === "latency") {
      state.latencyMs = Math.max(0, Number(q.ms) || 0);
      ctx.status = 204;
    } else if (ctx.method === "PUT" && rest === "fault") {
      state.faults.push({
        count: Math.max(1, Number(q.count) || 1),
        reset: q.reset === "true",
        after: q.after === "true",
        status: Number(q.status) || 503,
        code: q.code || "SlowDown",
      });
      ctx.status = 204;
    } else if (ctx.method === "DELETE" && rest === "fault") {
      state.faults.length = 0;
      ctx.status = 204;
    } else {
      ctx.status = 404;
      ctx.body = "unknown harness route";
    }
  }

  /** Takes the next injected fault for this request, if any. */
  function takeFault() {
    const f = state.faults[0];
    if (f === undefined) return undefined;
    if (--f.count <= 0) state.faults.shift();
    return f;
  }

  /** Answers the request with a fault: an error, or a dropped connection. */
  function fault(ctx, f) {
    if (f.reset) {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    ctx.status = f.status;
    ctx.type = "application/xml";
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${f.code}</Code><Message>injected by the test harness</Message></Error>`;
    if (f.status === 503 || f.status === 429) ctx.set("Retry-After", "0");
  }

  async function metadataOrUndefined(bucket, key) {
    try {
      return await store.getMetadata(bucket, key);
    } catch (e) {
      if (e.code === "ENOENT" || e.code === "ENOTDIR") return undefined;
      throw e;
    }
  }

  async function checkPut(ctx, bucket, key) {
    const ifNoneMatch = ctx.headers["if-none-match"];
    const ifMatch = ctx.headers["if-match"];
    if (ifNoneMatch !== undefined) {
      const honoured = state.buckets.get(bucket) ?? state.createOnly;
      if (!honoured) {
        delete ctx.headers["if-none-match"];
      } else if (ifNoneMatch.trim() !== "*") {
        throw new S3Error(
          "NotImplemented",
          "A header you provided implies functionality that is not implemented",
          { Header: "If-None-Match" },
        );
      } else if (await store.existsObject(bucket, key)) {
        throw preconditionFailed("If-None-Match");
      }
    }
    if (ifMatch !== undefined) {
      const meta = await metadataOrUndefined(bucket, key);
      if (meta === undefined) {
        throw new S3Error("NoSuchKey", "The specified key does not exist.", {
          Key: key,
        });
      }
      if (!etagsMatch(ifMatch, meta.etag)) throw preconditionFailed("If-Match");
    }
  }

  async function checkRead(ctx, bucket, key) {
    const ifMatch = ctx.headers["if-match"];
    const range = ctx.headers["range"];
    if (ifMatch === undefined && range === undefined) return;
    const meta = await metadataOrUndefined(bucket, key);
    if (meta === undefined) return; // s3rver answers 404 itself
    if (ifMatch !== undefined && !etagsMatch(ifMatch, meta.etag)) {
      throw preconditionFailed("If-Match");
    }
    if (range === undefined) return;
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (m === null) return; // multi-range or malformed: S3 ignores it, so does s3rver
    const size = Number(meta["content-length"]);
    const invalid = () =>
      new S3Error("InvalidRange", "The requested range is not satisfiable", {
        RangeRequested: range,
        ActualObjectSize: size,
      });
    if (m[1] === "") {
      if (m[2] === "") return;
      const n = Number(m[2]);
      if (n === 0 || size === 0) throw invalid();
      ctx.req.headers["range"] = `bytes=${Math.max(0, size - n)}-`;
    } else if (Number(m[1]) >= size) {
      throw invalid();
    }
  }

  async function harness(ctx, next) {
    if (ctx.path.startsWith("/__harness/")) return control(ctx);
    if (state.latencyMs > 0) await sleep(state.latencyMs);
    const f = takeFault();
    if (f !== undefined && !f.after) return fault(ctx, f);
    if (f !== undefined) {
      // The request is carried out, then its answer is lost.
      await handle(ctx, next);
      return fault(ctx, f);
    }
    return handle(ctx, next);
  }

  async function handle(ctx, next) {
    const target = parseObjectPath(ctx.path);
    if (target === undefined || !plainObjectQuery(ctx.query)) return next();
    const { bucket, key } = target;
    const write = ctx.method === "PUT" || ctx.method === "DELETE";
    const read = ctx.method === "GET" || ctx.method === "HEAD";
    if (!write && !read) return next();
    const release = await locks.acquire(`${bucket}/${key}`, write);
    if (ctx.req.socket.destroyed) {
      // The client went away while waiting: nothing to answer, nothing to hold.
      release();
      ctx.respond = false;
      return;
    }
    ctx.res.once("finish", release);
    ctx.res.once("close", release);
    try {
      if (
        ctx.method === "PUT" && ctx.headers["x-amz-copy-source"] === undefined
      ) {
        await checkPut(ctx, bucket, key);
      } else if (read) {
        await checkRead(ctx, bucket, key);
      }
      await next();
    } catch (e) {
      release();
      throw e;
    }
  }

  return harness;
}

// ---------------------------------------------------------------------------
// Server

async function serve(config) {
  if (config.accessKeyId && config.secretAccessKey) {
    AWSAccount.DUMMY_ACCOUNT.createKeyPair(
      config.accessKeyId,
      config.secretAccessKey,
    );
  }
  fs.mkdirSync(config.dir, { recursive: true });
  const app = new S3rver({
    directory: config.dir,
    silent: true,
    resetOnClose: false,
  });
  const state = {
    createOnly: config.createOnly,
    buckets: new Map(Object.entries(config.buckets)),
    latencyMs: config.latencyMs,
    faults: [],
  };
  for (const name of state.buckets.keys()) await app.store.putBucket(name);
  // Koa composes `app.middleware` per callback(): put ours first.
  app.middleware.unshift(createMiddleware(state, app.store));
  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 30_000;

  let port = config.port;
  for (let attempt = 1;; attempt++) {
    try {
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, config.host, () => {
          server.removeListener("error", reject);
          resolve();
        });
      });
      break;
    } catch (e) {
      // A restart on the same port can race the previous process's exit.
      if (e.code !== "EADDRINUSE" || attempt >= 50) throw e;
      await sleep(100);
    }
  }
  port = server.address().port;

  if (config.ownerPid) {
    const watch = setInterval(() => {
      try {
        process.kill(config.ownerPid, 0);
      } catch (e) {
        if (e.code !== "ESRCH") return;
        clearInterval(watch);
        if (config.removeOnOrphan) {
          fs.rmSync(config.removeOnOrphan, { recursive: true, force: true });
        }
        process.exit(0);
      }
    }, 500);
    watch.unref();
  }
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => process.exit(0));
  }

  if (process.send) process.send({ port });
  else process.stdout.write(JSON.stringify({ port, pid: process.pid }) + "\n");
}

function main() {
  let config;
  try {
    config = parseConfig();
  } catch (e) {
    process.stderr.write(`s3rver harness: ${e.message}\n`);
    process.exit(2);
  }
  if (process.argv.includes("--daemon")) return launch(config);
  serve(config).catch((e) => {
    if (process.send) process.send({ error: e.message });
    process.stderr.write(`s3rver harness: ${e.stack}\n`);
    process.exit(1);
  });
}

main();
