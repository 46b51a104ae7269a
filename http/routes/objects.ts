/**
 * The object routes: list namespaces and keys, read (with `Range`,
 * `If-Range`, `If-None-Match`), write (streamed), delete, list the
 * versions of a key, and upload a tar of many (`./batch.ts`). `http/app.ts` lists every route and its answers.
 *
 * @module
 */

import type { Context, Hono } from "hono";
import { ArtifactNotFoundError, CapsaError, InvalidArgumentError } from "../../errors.ts";
import type { ArtifactInfo, ArtifactPage, GetOptions, Store } from "../../store/store.ts";
import { parseRange } from "../_range.ts";
import { HttpError } from "../errors.ts";
import { requestBody } from "../_body.ts";
import { type BatchLimits, batchUpload } from "./batch.ts";

const META_PREFIX = "x-capsa-meta-";
const OBJECT_ROUTE = "/v1/objects/:namespace/:key{.+}";
/** A ranged GET reads the store this many bytes at a time. */
const RANGE_WINDOW = 8 * 1024 * 1024;
const enc = new TextEncoder();

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
 * its own status rather than as a truncated 200. A failure after that (the
 * status is sent) is reported through `late` as one line and ends the body
 * early: every such response declares its `Content-Length`, so the client
 * sees a truncated body and the connection is closed, never wrong bytes.
 */
async function started(
  body: ReadableStream<Uint8Array>,
  late: (error: unknown) => void,
): Promise<ReadableStream<Uint8Array>> {
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
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (e) {
        late(e);
        done = true;
        controller.close(); // short of Content-Length: the client sees the body cut
        return;
      }
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

/**
 * Refuses an object path whose percent-escapes are not UTF-8 (`%E0%A4`:
 * decoded leniently it would name the literal key `%E0%A4`, which
 * `%25E0%25A4` names too) or that decodes to a control character (`%0A`):
 * no namespace or key holds one. Both are 400 `invalid_argument`.
 */
function checkObjectPath(rawPath: string): void {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new InvalidArgumentError(
      `the path ${rawPath} holds a percent-escape that is not UTF-8: ` +
        "encode namespaces and keys as UTF-8, and a literal % as %25",
    );
  }
  // deno-lint-ignore no-control-regex
  const control = /[\u0000-\u001f\u007f]/.exec(decoded);
  if (control) {
    throw new InvalidArgumentError(
      `the path ${rawPath} decodes to a control character (U+${
        control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")
      }): no namespace or key may hold one`,
    );
  }
}

/** A PUT's body: a read that fails is the client's `incomplete_body` (400). */
function putBody(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  return requestBody(body, {
    ended: () =>
      "the request body ended before it was complete (the client disconnected or sent " +
      "less than its Content-Length): nothing was stored; send it again",
  });
}

/**
 * Adds the object routes to `app`.
 * @param app The app.
 * @param store The store served.
 * @param refuseWrites Throws while writes through this app are refused (a job holds the store).
 * @param log Where one-line notes go (a read that failed after its response started).
 * @param batchLimits The limits of a batch upload (`routes/batch.ts`).
 */
export function objectRoutes(
  app: Hono,
  store: Store,
  refuseWrites: () => Promise<void>,
  log: (line: string, request: Request) => void,
  batchLimits: BatchLimits,
): void {
  // Before routing: a path Hono would route oddly or decode leniently is the client's error.
  app.use("/v1/objects/*", async (c, next) => {
    checkObjectPath(new URL(c.req.url).pathname);
    await next();
  });

  app.get("/v1/objects", async (c) => c.json({ namespaces: await store.namespaces() }));

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
  app.post("/v1/objects/:namespace", (c) => batchUpload(c, store, refuseWrites, batchLimits, log));
  app.all("/v1/objects/:namespace", () => {
    throw methodNotAllowed("GET, HEAD, POST");
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
    const lateFailure = (e: unknown) => {
      const what = e instanceof CapsaError ? `${e.code}: ${e.message}` : String(e);
      log(`the response was cut after it started: ${what}`, c.req.raw);
    };
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
        lateFailure,
      );
      return new Response(body, { status: 206, headers });
    }
    headers.set("Content-Length", String(info.size));
    const body = head ? null : await started(
      await store.getStream(namespace, key, { version: info.version }),
      lateFailure,
    );
    return new Response(body, { status: 200, headers });
  });

  app.put(OBJECT_ROUTE, async (c) => {
    await refuseWrites();
    const namespace = c.req.param("namespace");
    const key = c.req.param("key");
    const metadata: Record<string, string> = {};
    for (const [name, value] of c.req.raw.headers) {
      if (!name.startsWith(META_PREFIX)) continue;
      const metaName = name.slice(META_PREFIX.length);
      metadata[metaName] = decodeMetaValue(metaName, value);
    }
    const body = c.req.raw.body;
    const info = await store.put(namespace, key, body ? putBody(body) : new Uint8Array(0), {
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
    await refuseWrites();
    const namespace = c.req.param("namespace");
    const key = c.req.param("key");
    if (!(await store.delete(namespace, key))) throw new ArtifactNotFoundError(namespace, key);
    return c.body(null, 204);
  });

  app.all(OBJECT_ROUTE, () => {
    throw methodNotAllowed("GET, HEAD, PUT, DELETE");
  });
}
