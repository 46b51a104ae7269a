/**
 * The HTTP endpoint of a store, as a Hono app: objects, status, maintenance
 * jobs and events. {@linkcode createApp} builds it; `serve()` in
 * `./serve.ts` binds it to a socket.
 *
 * | method | path | answer |
 * | --- | --- | --- |
 * | GET | `/v1/health` | 200 `{ ok: true }`, no token needed |
 * | GET | `/v1/objects` | `{ namespaces }` |
 * | GET | `/v1/objects/:namespace?prefix&after&limit` | `{ items, cursor? }` (an {@linkcode ArtifactPage}) |
 * | GET, HEAD | `/v1/objects/:namespace/:key?version=` | the body (200, or 206 for a `Range`) |
 * | GET | `/v1/objects/:namespace/:key?versions` | `{ items }`: every version, newest first, deletions included |
 * | PUT | `/v1/objects/:namespace/:key` | 201 and the {@linkcode ArtifactInfo} |
 * | DELETE | `/v1/objects/:namespace/:key` | 204, or 404 when there is nothing to delete |
 * | GET | `/v1/status` | {@linkcode Store.status} |
 * | POST | `/v1/maintenance/:kind` (`rebuild`) | 202 `{ jobId }` |
 * | GET | `/v1/maintenance/jobs` | `{ items }`: every job kept |
 * | GET | `/v1/maintenance/jobs/:id` | the {@linkcode JobView} |
 * | DELETE | `/v1/maintenance/jobs/:id` | aborts it: 200 and the stopped job (202 if still stopping) |
 * | GET | `/v1/events?types=a,b` | server-sent events, one per bus event |
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
 * `%`, non-ASCII and edge spaces the same way.
 *
 * Maintenance: `POST /v1/maintenance/rebuild` takes a JSON body (every field
 * optional): `source`, `batchSize`, `parallelism`, `leaseTTL` (ms), `force`,
 * `recoveryKit` (the kit's text). It answers 202 once the agent holds the
 * maintenance lease; a bad configuration (400) or a lease held by another
 * (409) is answered at once, with no job. While a job of this app runs,
 * object writes through it answer 503 `maintenance_mode` like they would in
 * any other process (reads still work); once a job completes, writes that
 * were already under way when it started are read into the index.
 *
 * Events: one server-sent event per bus event, `event: <type>` and
 * `data: <the event as JSON>`, filtered by `?types=` when given; a comment
 * every 15 s keeps idle connections open. A client that falls 10,000 events
 * behind gets `event: events.dropped` with the count it missed. There is no
 * replay (`Last-Event-ID`): a client that reconnects sees new events only.
 *
 * Errors are JSON `{ code, message }`, with the status from
 * `ERROR_STATUS` (`./errors.ts`).
 *
 * @example Put and get through the app, no socket
 * ```ts
 * import { createApp } from "./app.ts";
 * import { initStore } from "../store/store.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const app = createApp(store, { token: "s3cret" });
 * const auth = { Authorization: "Bearer s3cret" };
 * await app.request("/v1/objects/docs/hello.txt", { method: "PUT", body: "hello", headers: auth });
 * const res = await app.request("/v1/objects/docs/hello.txt", { headers: auth });
 * console.log(res.status, await res.text()); // 200 "hello"
 * await store.close();
 * ```
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import {
  ArtifactNotFoundError,
  CapsaError,
  InvalidArgumentError,
  MaintenanceModeError,
} from "../errors.ts";
import type { CapsaEvent, CapsaEventType, EventBus } from "../store/events.ts";
import {
  type ArtifactInfo,
  type ArtifactPage,
  type GetOptions,
  readMaintenanceMode,
  type Store,
} from "../store/store.ts";
import { parseRange } from "./_range.ts";
import { HttpError, toHttpError } from "./errors.ts";
import { JobRegistry, type JobView } from "./jobs.ts";

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

const META_PREFIX = "x-capsa-meta-";
const OBJECT_ROUTE = "/v1/objects/:namespace/:key{.+}";
/** A ranged GET reads the store this many bytes at a time. */
const RANGE_WINDOW = 8 * 1024 * 1024;
/** The largest JSON body a maintenance request may have. */
const MAX_JSON_BODY = 256 * 1024;
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

function methodNotAllowed(allow: string): HttpError {
  return new HttpError("method_not_allowed", `allowed methods: ${allow}`, {
    headers: { Allow: allow },
  });
}

/** Percent-encodes what a header value cannot carry as is: `%`, non-ASCII, controls, edge spaces. */
function encodeMetaValue(value: string): string {
  const bytes = enc.encode(value);
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    const edgeSpace = b === 0x20 && (i === 0 || i === bytes.length - 1);
    out += b >= 0x20 && b < 0x7f && b !== 0x25 && !edgeSpace
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function decodeMetaValue(name: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidArgumentError(
      `header X-Capsa-Meta-${name}: malformed percent-encoding (send UTF-8 as %XX and "%" as %25)`,
    );
  }
}

function objectPath(namespace: string, key: string): string {
  return `/v1/objects/${encodeURIComponent(namespace)}/${
    key.split("/").map(encodeURIComponent).join("/")
  }`;
}

function etagOf(info: ArtifactInfo): string {
  return `"${info.digest}"`;
}

/** `If-None-Match`: `*` or a list of entity tags, compared weakly (RFC 9110 §13.1.2). */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

function objectHeaders(info: ArtifactInfo, pinned: boolean): Headers {
  const h = new Headers({
    "Content-Type": info.contentType === "" ? "application/octet-stream" : info.contentType,
    "ETag": etagOf(info),
    "Last-Modified": new Date(info.created).toUTCString(),
    "Accept-Ranges": "bytes",
    "X-Capsa-Version": info.version,
    // A version never changes; the current version of a key does.
    "Cache-Control": pinned ? "private, max-age=31536000, immutable" : "no-cache",
  });
  for (const [name, value] of Object.entries(info.metadata)) {
    h.set(META_PREFIX + name, encodeMetaValue(value));
  }
  return h;
}

/** Streams `[start, end)` of one version, a window at a time: memory stays bounded. */
function rangeStream(
  store: Store,
  namespace: string,
  key: string,
  version: string,
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  let at = start;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const bytes = await store.getRange(
        namespace,
        key,
        at,
        Math.min(RANGE_WINDOW, end - at),
        { version },
      );
      if (bytes.length === 0) {
        throw new CapsaError(
          "corrupt_object",
          `version ${version} of "${key}" ended at byte ${at}, before its size`,
        );
      }
      at += bytes.length;
      controller.enqueue(bytes);
      if (at >= end) controller.close();
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads the first piece of a body before the status is sent, so that a
 * failure to read (a missing or corrupt blob, an I/O error) is answered with
 * its own status rather than as a truncated 200.
 */
async function started(body: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>> {
  const reader = body.getReader();
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    first = await reader.read();
  } catch (e) {
    reader.releaseLock();
    await body.cancel().catch(() => {});
    throw e;
  }
  let pending: Uint8Array | undefined = first.done ? undefined : first.value;
  let done = first.done;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending) {
        controller.enqueue(pending);
        pending = undefined;
        if (done) controller.close();
        return;
      }
      if (done) return controller.close();
      const next = await reader.read();
      if (next.done) {
        done = true;
        controller.close();
      } else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  const tooLarge = () =>
    new HttpError("payload_too_large", `the JSON body must be at most ${MAX_JSON_BODY} bytes`);
  if (declared > MAX_JSON_BODY) throw tooLarge();
  let text = "";
  if (request.body) {
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const part of request.body) {
      size += part.length;
      if (size > MAX_JSON_BODY) throw tooLarge();
      parts.push(part);
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    text = new TextDecoder().decode(all);
  }
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`the body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError("the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function intParam(c: Context, name: string, min: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined) return undefined;
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    throw new InvalidArgumentError(
      `${name} must be an integer from ${min} to ${max}, got "${raw}"`,
    );
  }
  return n;
}

function versionOption(c: Context): GetOptions {
  const version = c.req.query("version");
  if (version === undefined) return {};
  if (version === "") throw new InvalidArgumentError("version must not be empty");
  return { version };
}

/**
 * Builds the HTTP endpoint of a store (routes in the module doc).
 *
 * @param store The store it serves.
 * @param options The bearer token, the event bus, the job registry, a
 *   shutdown signal.
 * @returns The Hono app: pass `app.fetch` to a server, or call `app.request()` in tests.
 * @throws {InvalidArgumentError} when `token` is the empty string.
 *
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 * import { initStore } from "../store/store.ts";
 * import { MemoryDriver } from "../drivers/memory.ts";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const app = createApp(store, { token: "s3cret" });
 * console.log((await app.request("/v1/health")).status); // 200
 * console.log((await app.request("/v1/status")).status); // 401
 * await store.close();
 * ```
 */
export function createApp(store: Store, options: AppOptions = {}): HttpApp {
  const { token } = options;
  if (token === "") throw new InvalidArgumentError("the bearer token must not be empty");
  const bus = options.bus ?? store.bus;
  const jobs = options.jobs ?? new JobRegistry(store, { bus });
  const closing = options.signal;
  const keepAliveMs = (options.keepAliveSeconds ?? 15) * 1000;
  const onInternalError = options.onInternalError ??
    ((e: unknown, r: Request) => console.error(`capsa http: ${r.method} ${r.url}:`, e));
  const expected = token === undefined ? undefined : sha256(token);

  const app = new Hono();

  app.onError((err, c) => {
    const h = toHttpError(err);
    if (h.code === "internal") onInternalError(err, c.req.raw);
    return h.toResponse();
  });
  app.notFound((c) =>
    new HttpError("not_found", `no route for ${c.req.method} ${c.req.path}`).toResponse()
  );

  // Registered before the token check, which therefore never runs for it.
  app.get("/v1/health", (c) => c.json({ ok: true }));

  app.use("*", async (c, next) => {
    if (expected === undefined) return await next();
    const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(c.req.header("Authorization") ?? "");
    if (!m) throw unauthorized("a bearer token is required (Authorization: Bearer TOKEN)", false);
    if (!sameDigest(await sha256(m[1]!), await expected)) {
      throw unauthorized("the bearer token is wrong", true);
    }
    return await next();
  });

  /** Writes through this app's handle are refused while one of its jobs holds the store. */
  const refuseWritesDuringJob = async (): Promise<void> => {
    const job = jobs.running();
    if (!job) return;
    const mode = await readMaintenanceMode(store.driver).catch(() => undefined);
    throw new MaintenanceModeError(mode?.mode ?? "offline", job.holder || job.agent);
  };

  // ------------------------------------------------------------- objects

  app.get("/v1/objects", (c) => c.json({ namespaces: store.namespaces() }));

  app.get("/v1/objects/:namespace", async (c) => {
    const prefix = c.req.query("prefix");
    const after = c.req.query("after");
    const limit = intParam(c, "limit", 1, 10_000);
    const page: ArtifactPage = await store.list(c.req.param("namespace"), {
      ...(prefix === undefined ? {} : { prefix }),
      ...(after === undefined ? {} : { after }),
      ...(limit === undefined ? {} : { limit }),
    });
    return c.json(page);
  });
  app.all("/v1/objects/:namespace", () => {
    throw methodNotAllowed("GET, HEAD");
  });

  app.get(OBJECT_ROUTE, async (c) => {
    const namespace = c.req.param("namespace");
    const key = c.req.param("key");
    if (c.req.query("versions") !== undefined) {
      const items = await store.versions(namespace, key);
      if (items.length === 0) throw new ArtifactNotFoundError(namespace, key);
      return c.json({ items });
    }
    const getOptions = versionOption(c);
    const info = await store.stat(namespace, key, getOptions);
    const headers = objectHeaders(info, getOptions.version !== undefined);
    const head = c.req.method === "HEAD";

    const inm = c.req.header("If-None-Match");
    if (inm !== undefined && noneMatch(inm, etagOf(info))) {
      headers.delete("Content-Type");
      return new Response(null, { status: 304, headers });
    }
    const ifRange = c.req.header("If-Range");
    const rangeApplies = ifRange === undefined || ifRange.trim() === etagOf(info) ||
      ifRange.trim() === headers.get("Last-Modified");
    const range = parseRange(rangeApplies ? c.req.header("Range") : undefined, info.size);
    if (range.kind === "unsatisfiable") {
      throw new HttpError(
        "range_not_satisfiable",
        `the range ${c.req.header("Range")} is outside the body (${info.size} bytes)`,
        { headers: { "Content-Range": `bytes */${info.size}` } },
      );
    }
    if (range.kind === "range") {
      headers.set("Content-Range", `bytes ${range.start}-${range.end}/${info.size}`);
      headers.set("Content-Length", String(range.end - range.start + 1));
      const body = head ? null : await started(
        rangeStream(store, namespace, key, info.version, range.start, range.end + 1),
      );
      return new Response(body, { status: 206, headers });
    }
    headers.set("Content-Length", String(info.size));
    const body = head
      ? null
      : await started(await store.getStream(namespace, key, { version: info.version }));
    return new Response(body, { status: 200, headers });
  });

  app.put(OBJECT_ROUTE, async (c) => {
    await refuseWritesDuringJob();
    const namespace = c.req.param("namespace");
    const key = c.req.param("key");
    const metadata: Record<string, string> = {};
    for (const [name, value] of c.req.raw.headers) {
      if (!name.startsWith(META_PREFIX)) continue;
      const metaName = name.slice(META_PREFIX.length);
      metadata[metaName] = decodeMetaValue(metaName, value);
    }
    const info = await store.put(namespace, key, c.req.raw.body ?? new Uint8Array(0), {
      contentType: c.req.header("Content-Type") ?? "",
      metadata,
    });
    return c.json(info, 201, {
      "ETag": etagOf(info),
      "X-Capsa-Version": info.version,
      "Location": `${objectPath(namespace, key)}?version=${info.version}`,
    });
  });

  app.delete(OBJECT_ROUTE, async (c) => {
    await refuseWritesDuringJob();
    const namespace = c.req.param("namespace");
    const key = c.req.param("key");
    if (!(await store.delete(namespace, key))) throw new ArtifactNotFoundError(namespace, key);
    return c.body(null, 204);
  });

  app.all(OBJECT_ROUTE, () => {
    throw methodNotAllowed("GET, HEAD, PUT, DELETE");
  });

  // -------------------------------------------------------------- status

  app.get("/v1/status", async (c) => c.json(await store.status()));

  // --------------------------------------------------------- maintenance

  app.get("/v1/maintenance/jobs", (c) => c.json({ items: jobs.list() }));

  app.get("/v1/maintenance/jobs/:id", (c) => {
    const id = c.req.param("id");
    const view: JobView | undefined = jobs.get(id);
    if (!view) throw new HttpError("not_found", `no maintenance job ${JSON.stringify(id)}`);
    return c.json(view);
  });

  app.delete("/v1/maintenance/jobs/:id", async (c) => {
    const view = await jobs.abort(c.req.param("id"));
    return c.json(view, view.state === "running" ? 202 : 200);
  });

  app.post("/v1/maintenance/:kind", async (c) => {
    const kind = c.req.param("kind");
    if (!jobs.has(kind)) {
      throw new HttpError(
        "not_found",
        `no maintenance job kind "${kind}" (known: ${jobs.kinds.join(", ")})`,
      );
    }
    const job = await jobs.start(kind, await readJsonObject(c.req.raw));
    return c.json({ jobId: job.id }, 202, { Location: `/v1/maintenance/jobs/${job.id}` });
  });

  // -------------------------------------------------------------- events

  app.get("/v1/events", (c) => {
    const types = c.req.query("types")?.split(",").map((t) => t.trim()).filter((t) => t !== "");
    return streamSSE(c, async (stream) => {
      // Subscribe first, before any await: no event after the response is lost.
      const queue: CapsaEvent[] = [];
      let dropped = 0;
      let wake: (() => void) | undefined;
      const off = bus.subscribe((event) => {
        if (queue.length >= 10_000) dropped++;
        else queue.push(event);
        wake?.();
      }, types === undefined ? {} : { types: types as CapsaEventType[] });
      let open = true;
      const stop = () => {
        open = false;
        wake?.();
      };
      // On shutdown, also drop what the client has not read: a client that
      // stopped reading must not hold the server open.
      const shut = () => {
        stop();
        stream.abort();
      };
      stream.onAbort(stop);
      closing?.addEventListener("abort", shut, { once: true });
      if (closing?.aborted) open = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await stream.write(": capsa events\n\n");
        while (open && !stream.aborted) {
          if (dropped > 0) {
            const count = dropped;
            dropped = 0;
            await stream.writeSSE({ event: "events.dropped", data: JSON.stringify({ count }) });
            continue;
          }
          const event = queue.shift();
          if (event) {
            await stream.writeSSE({ event: event.type, data: JSON.stringify(event) });
            continue;
          }
          const idle = await new Promise<boolean>((resolve) => {
            wake = () => resolve(false);
            timer = setTimeout(() => resolve(true), keepAliveMs);
          });
          wake = undefined;
          clearTimeout(timer);
          if (idle && open) await stream.write(": keep-alive\n\n");
        }
      } finally {
        off();
        clearTimeout(timer);
        closing?.removeEventListener("abort", shut);
      }
    });
  });

  return app;
}
