/**
 * The HTTP endpoint of a store, as a Hono app. {@linkcode createApp} builds
 * it from the route modules of `./routes/` (health, objects, status,
 * maintenance, events) behind one bearer-token check; `serve()` in
 * `./serve.ts` binds it to a socket. Every route:
 *
 * | method | path | answer | module |
 * | --- | --- | --- | --- |
 * | GET | `/v1/health` | 200 `{ ok: true }`, no token needed | `routes/health.ts` |
 * | GET | `/v1/objects` | `{ namespaces }` | `routes/objects.ts` |
 * | GET, HEAD | `/v1/objects/:namespace?prefix&after&limit` | `{ items, after?, cursor? }` (an `ArtifactPage`: pass `after` back for the next page); other methods 405 | `routes/objects.ts` |
 * | POST | `/v1/objects/:namespace?batch&prefix=` | a tar body (`application/x-tar`): 200 `{ stored, failed, items }` (207 when some failed) once its packs are durable | `routes/batch.ts` |
 * | GET, HEAD | `/v1/objects/:namespace/:key?version=` | the body (200, or 206 for a `Range`; 304, 416) | `routes/objects.ts` |
 * | GET | `/v1/objects/:namespace/:key?versions` | `{ items }`: every version, newest first, deletions included | `routes/objects.ts` |
 * | PUT | `/v1/objects/:namespace/:key` | 201 and the `ArtifactInfo` | `routes/objects.ts` |
 * | DELETE | `/v1/objects/:namespace/:key` | 204, or 404 when there is nothing to delete; other methods 405 | `routes/objects.ts` |
 * | GET | `/v1/status` | `Store.status()` | `routes/status.ts` |
 * | POST | `/v1/maintenance/rebuild` | 202 `{ jobId }`: a RebuildIndexAgent | `routes/maintenance.ts` |
 * | POST | `/v1/maintenance/verify` | 202 `{ jobId }`: a VerificationAgent | `routes/maintenance.ts` |
 * | POST | `/v1/maintenance/migrate` | 202 `{ jobId }`: a MigrateIndexAgent | `routes/maintenance.ts` |
 * | POST | `/v1/maintenance/move` | 202 `{ jobId }`: a MoveStoreAgent | `routes/maintenance.ts` |
 * | POST | `/v1/maintenance/gc` | 202 `{ jobId }`: a GarbageCollectAgent (writes go on meanwhile) | `routes/maintenance.ts` |
 * | POST | `/v1/maintenance/:kind` | 202 `{ jobId }` for any other kind of the {@linkcode JobRegistry}; 404 for an unknown one | `routes/maintenance.ts` |
 * | GET | `/v1/maintenance/jobs` | `{ items }`: every job kept | `routes/maintenance.ts` |
 * | GET | `/v1/maintenance/jobs/:id` | the `JobView` | `routes/maintenance.ts` |
 * | DELETE | `/v1/maintenance/jobs/:id` | aborts it: 200 and the stopped job (202 if still stopping) | `routes/maintenance.ts` |
 * | GET | `/v1/events?types=a,b` | server-sent events, one per bus event | `routes/events.ts` |
 *
 * Objects: a key may hold `/`; percent-encode anything else a URL would
 * change (`?`, `#`, `%`, spaces). A segment `.` or `..` cannot be reached, as
 * URL parsers resolve them. GET and HEAD send `Content-Type` (the stored one,
 * else `application/octet-stream`), `Content-Length`, `ETag` (the quoted
 * digest of the whole body), `Last-Modified`, `X-Capsa-Version` and one
 * `X-Capsa-Meta-<name>` per metadata entry; they honour one `Range` of bytes
 * (`a-b`, `a-`, `-n`; several ranges are answered with the whole body),
 * `If-Range` and `If-None-Match`. PUT streams the request body into the
 * store (never held whole: memory stays within the store's chunk threshold
 * and chunk size); its `Content-Type` and `X-Capsa-Meta-*`
 * headers become the content type and metadata. Metadata names arrive
 * lowercased (HTTP header names are case-insensitive) and values are
 * percent-decoded, so any UTF-8 can be sent as `%XX`; answers percent-encode
 * `%`, non-ASCII and edge spaces the same way. A path whose percent-escapes
 * are not UTF-8 (`%E0%A4`) or decode to a control character (`%0A`) is 400
 * `invalid_argument`. A PUT whose body ends early (the client disconnected,
 * or sent less than its `Content-Length`) stores nothing and is 400
 * `incomplete_body`, logged as one line; a read that fails after its
 * response started (a damaged blob further in) ends the body short of its
 * `Content-Length`, so the client sees it cut, and is logged as one line.
 *
 * Batch upload: `POST /v1/objects/:namespace?batch` with a tar body
 * (ustar, pax, GNU long names) stores each regular file under its path
 * (after `prefix`, prepended as is) through one write session, so small
 * files fill packs; it answers once the last pack is durable, with one item
 * per entry (directories skipped; links, devices and bad paths are failed
 * items). It is not all-or-nothing: a tar found corrupt or cut short (400
 * `invalid_archive`, naming the entry's byte offset), or a limit passed
 * while reading (413 `payload_too_large`: `batchMaxBytes`,
 * `batchMaxEntries`), keeps the entries before that point and lists them in
 * the error body. `routes/batch.ts` has the rules.
 *
 * Maintenance: `POST /v1/maintenance/<kind>` takes a JSON object (at most
 * 256 KiB; every field optional unless said), read by the parser the CLI
 * uses too (`maintenance/options.ts`): an unknown field or a bad value is
 * 400 `invalid_argument` with the message the CLI gives for the same flag.
 * Durations are milliseconds or text like `"30m"`.
 *
 * | kind | fields |
 * | --- | --- |
 * | `rebuild` | `source` (`Auto`, `Snapshot`, `FullScan`), `batchSize`, `parallelism`, `leaseTTL`, `force`, `recoveryKit` (the kit's text) |
 * | `verify` | `data`, `subset` (`"n/m"` or `"P%"`), `seed` (with a percentage), `parallelism`, `leaseTTL`, `force` |
 * | `migrate` | `manifestStorage` (`Remote`, `Local`, `Replicated`), `leaseTTL`, `force` |
 * | `move` | `destination` (a Location URL, required), `parallelism`, `deleteSource`, `leaseTTL`, `force` |
 * | `gc` | `keepVersions`, `keepWithin`, `dropDeletedAfter`, `namespaces` (namespace → those three), `dryRun`, `maxUnused` (0–1 or `"5%"`), `repackSmall`, `grace`, `savePolicy`, `parallelism`, `leaseTTL`, `force` |
 *
 * A job answers 202 once its agent holds the maintenance lease; a bad
 * configuration (400) or a lease held by another (409) is answered at once,
 * with no job. While a job of this app runs, object writes through it
 * answer 503 `maintenance_mode` like they would in any other process (reads
 * still work), except during `gc`, which works beside writers; once a job
 * completes, writes that were already under way when it started are read
 * into the index.
 *
 * Events: one server-sent event per bus event, `event: <type>` and
 * `data: <the event as JSON>`, filtered by `?types=` when given; a comment
 * every 15 s keeps idle connections open. A client that falls 10,000 events
 * behind gets `event: events.dropped` with the count it missed. There is no
 * replay (`Last-Event-ID`): a client that reconnects sees new events only.
 *
 * Every route but `/v1/health` needs the bearer token when one is set (401
 * otherwise). Errors are JSON `{ code, message }`, with the status from
 * `ERROR_STATUS` (`./errors.ts`); an unknown route is 404 `not_found`.
 *
 * @example Put and get through the app, no socket
 * ```ts
 * import assert from "node:assert/strict";
 * import { createApp } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const app = createApp(store, { token: "s3cret" });
 * const auth = { Authorization: "Bearer s3cret" };
 * await app.request("/v1/objects/docs/hello.txt", { method: "PUT", body: "hello", headers: auth });
 * const res = await app.request("/v1/objects/docs/hello.txt", { headers: auth });
 * assert.deepEqual([res.status, await res.text()], [200, "hello"]);
 * await store.close();
 * ```
 *
 * @module
 */

import { Hono } from "hono";
import { InvalidArgumentError } from "../errors.ts";
import type { EventBus } from "../store/events.ts";
import type { Store } from "../store/store.ts";
import { HttpError, toHttpError } from "./errors.ts";
import { JobRegistry } from "./jobs.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { maintenanceRoutes, refuseWritesDuringJobs } from "./routes/maintenance.ts";
import {
  type BatchLimits,
  DEFAULT_BATCH_MAX_BYTES,
  DEFAULT_BATCH_MAX_ENTRIES,
} from "./routes/batch.ts";
import { objectRoutes } from "./routes/objects.ts";
import { statusRoutes } from "./routes/status.ts";

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /**
   * The bearer token every route but `/v1/health` requires. Without one the
   * app answers anyone: bind it to loopback only (`serve()` enforces this).
   */
  token?: string;
  /** The bus streamed by `/v1/events` and given to agents (default: the store's). */
  bus?: EventBus;
  /** The maintenance jobs (default: a new {@linkcode JobRegistry} on the store and bus). */
  jobs?: JobRegistry;
  /** When aborted, open event streams end (so a server can shut down). */
  signal?: AbortSignal;
  /** Seconds between keep-alive comments on an idle event stream (default 15). */
  keepAliveSeconds?: number;
  /** Called with every error answered as 500 `internal` (default: `console.error`). */
  onInternalError?: (error: unknown, request: Request) => void;
  /**
   * Where one-line notes about failed requests go (default: `console.error`,
   * prefixed `capsa http: METHOD URL:`): a client that dropped its request
   * body (answered 400 `incomplete_body`), a read that failed after its
   * response had started (the body is cut short).
   */
  log?: (line: string, request: Request) => void;
  /**
   * The most bytes of a batch upload's tar body (default 1 GiB); a
   * `Content-Length` over it is refused at once, a longer chunked body when
   * reading passes it (413 `payload_too_large`).
   */
  batchMaxBytes?: number;
  /** The most entries of a batch upload's tar, directories included (default 100,000). */
  batchMaxEntries?: number;
}

/**
 * What {@linkcode createApp} returns: a Hono app (`app instanceof Hono`),
 * typed by the two methods callers need, so capsa's public types do not
 * depend on Hono's. Mount it in a larger Hono app with
 * `parent.route("/capsa", app as Hono)`.
 */
export interface HttpApp {
  /**
   * Answers one request: hand this to a server (`Deno.serve(app.fetch)`).
   * @param request The request.
   * @returns The response.
   */
  fetch(request: Request): Response | Promise<Response>;
  /**
   * Answers a request built from a path or URL, without any socket: for tests.
   * @param input A path (`/v1/health`), a URL or a request.
   * @param init The request's method, headers and body.
   * @returns The response.
   */
  request(input: string | URL | Request, init?: RequestInit): Response | Promise<Response>;
}

const enc = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(text)));
}

/** Compares two digests of equal length in time independent of where they differ. */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

function unauthorized(message: string, invalidToken: boolean): HttpError {
  return new HttpError("unauthorized", message, {
    headers: {
      "WWW-Authenticate": invalidToken
        ? 'Bearer realm="capsa", error="invalid_token"'
        : 'Bearer realm="capsa"',
    },
  });
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Builds the HTTP endpoint of a store (routes in the module doc).
 *
 * @param store The store it serves.
 * @param options The bearer token, the event bus, the job registry, a
 *   shutdown signal.
 * @returns The Hono app: pass `app.fetch` to a server, or call `app.request()` in tests.
 * @throws {InvalidArgumentError} when `token` is empty or holds a space, a control or a non-ASCII
 *   character, or a batch limit is not a positive integer.
 *
 * @example Upload many files as one tar (one pack)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createApp } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { writeTarForTest } from "../tests/tar.ts"; // or the output of `tar -cf`
 *
 * const { store } = await initStore(new MemoryDriver());
 * const app = createApp(store, { batchMaxEntries: 1000 });
 * const files = Array.from({ length: 200 }, (_, i) => ({
 *   path: `docs/page-${i}.html`,
 *   body: new TextEncoder().encode(`<p>page ${i}</p>`),
 * }));
 * const res = await app.request("/v1/objects/site?batch&prefix=v1/", {
 *   method: "POST",
 *   headers: { "Content-Type": "application/x-tar" },
 *   body: writeTarForTest(files),
 * });
 * const { stored, failed } = await res.json();
 * assert.deepEqual([res.status, stored, failed], [200, 200, 0]);
 * assert.deepEqual(new TextDecoder().decode(await store.get("site", "v1/docs/page-7.html")), "<p>page 7</p>");
 * assert.deepEqual((await store.status()).counts?.packs, 1);
 * await store.close();
 * ```
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createApp } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const app = createApp(store, { token: "s3cret" });
 * assert.deepEqual((await app.request("/v1/health")).status, 200);
 * assert.deepEqual((await app.request("/v1/status")).status, 401);
 * await store.close();
 * ```
 */
export function createApp(store: Store, options: AppOptions = {}): HttpApp {
  const { token } = options;
  if (token === "") throw new InvalidArgumentError("the bearer token must not be empty");
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new InvalidArgumentError(
      "the bearer token may hold only visible ASCII characters (no space): " +
        "no client could send it in an Authorization header",
    );
  }
  const batchLimits: BatchLimits = {
    maxBytes: positiveInteger("batchMaxBytes", options.batchMaxBytes, DEFAULT_BATCH_MAX_BYTES),
    maxEntries: positiveInteger(
      "batchMaxEntries",
      options.batchMaxEntries,
      DEFAULT_BATCH_MAX_ENTRIES,
    ),
  };
  const bus = options.bus ?? store.bus;
  const jobs = options.jobs ?? new JobRegistry(store, { bus });
  const keepAliveMs = (options.keepAliveSeconds ?? 15) * 1000;
  const onInternalError = options.onInternalError ??
    ((e: unknown, r: Request) => console.error(`capsa http: ${r.method} ${r.url}:`, e));
  const log = options.log ??
    ((line: string, r: Request) => console.error(`capsa http: ${r.method} ${r.url}: ${line}`));
  const expected = token === undefined ? undefined : sha256(token);

  const app = new Hono();

  app.onError((err, c) => {
    const h = toHttpError(err);
    if (h.code === "internal") onInternalError(err, c.req.raw);
    else if (h.code === "incomplete_body") log(`${h.status} ${h.code}: ${h.message}`, c.req.raw);
    return h.toResponse();
  });
  app.notFound((c) =>
    new HttpError("not_found", `no route for ${c.req.method} ${c.req.path}`).toResponse()
  );

  // Added before the token check, which therefore never runs for it.
  healthRoutes(app);

  app.use("*", async (c, next) => {
    if (expected === undefined) return await next();
    const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(c.req.header("Authorization") ?? "");
    if (!m) throw unauthorized("a bearer token is required (Authorization: Bearer TOKEN)", false);
    if (!sameDigest(await sha256(m[1]!), await expected)) {
      throw unauthorized("the bearer token is wrong", true);
    }
    return await next();
  });

  objectRoutes(app, store, refuseWritesDuringJobs(store, jobs), log, batchLimits);
  statusRoutes(app, store);
  maintenanceRoutes(app, jobs);
  eventRoutes(app, bus, { closing: options.signal, keepAliveMs });

  return app;
}
