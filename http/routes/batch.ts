/**
 * The batch upload, `POST /v1/objects/:namespace?batch[&prefix=P]`: a tar
 * body whose regular files become artifacts, stored through one write
 * session (`Store.batch()`), so that many small files land in full packs
 * instead of one pack per PUT. `http/app.ts` lists the route with the others;
 * the rules are here and in docs/OPERATIONS.md ("Batch upload").
 *
 * - **Entries.** Each regular file becomes the artifact `P` + its path (a
 *   leading `./` removed; `P` is prepended as is, so end it with `/` for a
 *   folder). Directories are skipped. Symbolic and hard links, devices,
 *   FIFOs and other kinds are not stored: each is a failed item of the
 *   answer (`invalid_argument`), as is a path that is not UTF-8, is
 *   absolute, holds an empty, `.` or `..` segment (no URL of the endpoint
 *   could reach it) or is not a valid key.
 * - **Streaming.** The body is read once, front to back: a file up to the
 *   store's `chunkThreshold` is read whole, a larger one is streamed into the
 *   session. Memory stays within the session's three packs plus one such file.
 * - **The answer** comes once the session's last pack is durable and
 *   indexed: 200 `{ stored, failed, items }` when every entry was stored,
 *   207 with the same body when some failed; `items` lists every entry but
 *   directories, in archive order, each `{ key, version, size }` or
 *   `{ key, offset, error: { code, message } }`.
 * - **Not all-or-nothing.** Each pack of a session is a commit of its own.
 *   When the tar turns out corrupt or cut short (400 `invalid_archive`,
 *   naming the entry's byte offset), the client disconnects (400
 *   `incomplete_body`) or a limit is passed while reading (413
 *   `payload_too_large`), the entries before that point are stored, the
 *   entry at it and everything after are not, and the error body carries
 *   `stored`, `failed` and `items` besides `code` and `message`. A
 *   `Content-Length` over the limit is refused before anything is read.
 *
 * @module
 */

import type { Context } from "hono";
import { InvalidArgumentError } from "../../errors.ts";
import { validateArtifactKey, validateNamespace } from "../../format/manifest.ts";
import { readTar, type TarEntry } from "../../format/tar.ts";
import type { BatchSummary } from "../../store/batch.ts";
import type { Store } from "../../store/store.ts";
import { HttpError, toHttpError } from "../errors.ts";
import { requestBody } from "../_body.ts";

/** The default of `AppOptions.batchMaxBytes`: 1 GiB. */
export const DEFAULT_BATCH_MAX_BYTES = 1024 * 1024 * 1024;
/** The default of `AppOptions.batchMaxEntries`. */
export const DEFAULT_BATCH_MAX_ENTRIES = 100_000;
/** A file this size or smaller is read whole when the store has no config at hand. */
const FALLBACK_WHOLE_BYTES = 1024 * 1024;

/** The limits of one batch upload. */
export interface BatchLimits {
  /** The most bytes a tar body may have. */
  maxBytes: number;
  /** The most entries (of any kind, directories included) a tar may have. */
  maxEntries: number;
}

/** One item of the answer. */
export interface BatchItem {
  /** The artifact key (the prefix included). */
  key: string;
  /** The new version, when stored. */
  version?: string;
  /** The body size, when stored. */
  size?: number;
  /** The byte offset of the entry in the tar, when it failed. */
  offset?: number;
  /** Why it was not stored. */
  error?: { code: string; message: string };
}

const TAR_TYPES = new Set(["application/x-tar", "application/tar"]);

const KIND_NAMES: Record<TarEntry["type"], string> = {
  file: "a regular file",
  directory: "a directory",
  symlink: "a symbolic link",
  hardlink: "a hard link",
  "character-device": "a character device",
  "block-device": "a block device",
  fifo: "a FIFO",
  other: "an entry of an unsupported type",
};

/**
 * Why a path cannot be a key of an uploaded entry: it is absolute, or has a
 * segment no URL of the endpoint can reach (empty, `.`, `..`), or is not a
 * valid artifact key.
 */
function keyProblem(key: string): string | undefined {
  if (key.startsWith("/")) return `${JSON.stringify(key)} is an absolute path`;
  if (key.split("/").some((s) => s === "" || s === "." || s === "..")) {
    return `${JSON.stringify(key)} holds an empty, "." or ".." segment, which no URL could reach`;
  }
  try {
    validateArtifactKey(key);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return undefined;
}

/** Why an entry is not stored, or undefined when it is a file to store under `key`. */
function entryProblem(entry: TarEntry, key: string): string | undefined {
  if (entry.type !== "file") {
    const kind = KIND_NAMES[entry.type] +
      (entry.type === "other" ? ` (type flag ${JSON.stringify(entry.typeflag)})` : "");
    const target = entry.linkpath ? ` to ${JSON.stringify(entry.linkpath)}` : "";
    return `${kind}${target} is not stored: only regular files are`;
  }
  if (!entry.pathIsUtf8) return `the path ${JSON.stringify(entry.path)} is not UTF-8`;
  const problem = keyProblem(key);
  return problem === undefined ? undefined : `not a valid key: ${problem}`;
}

/** The body, counted against `maxBytes`; a failed read is the client's `incomplete_body`. */
function limitedBody(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
): ReadableStream<Uint8Array> {
  return requestBody(body, {
    maxBytes,
    ended: (seen) =>
      `the request body ended after ${seen} bytes, before it was complete ` +
      "(the client disconnected or sent less than its Content-Length)",
    tooLarge: (max) =>
      `the tar body is over ${max} bytes, the limit of a batch upload: send it in parts`,
  });
}

function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}

/**
 * Answers `POST /v1/objects/:namespace?batch` (module doc).
 * @param c The request's context.
 * @param store The store written.
 * @param refuseWrites Throws while writes through this app are refused.
 * @param limits The body and entry limits.
 * @param log Where one-line notes go (a client that disconnected).
 * @returns The answer.
 */
export async function batchUpload(
  c: Context,
  store: Store,
  refuseWrites: () => Promise<void>,
  limits: BatchLimits,
  log: (line: string, request: Request) => void,
): Promise<Response> {
  if (c.req.query("batch") === undefined) {
    throw new InvalidArgumentError(
      "POST on a namespace is the batch upload: add ?batch to the URL and send a tar " +
        "(Content-Type: application/x-tar)",
    );
  }
  await refuseWrites();
  const namespace = c.req.param("namespace")!;
  validateNamespace(namespace);
  const prefix = c.req.query("prefix") ?? "";
  if (prefix !== "") {
    const problem = keyProblem(`${prefix}x`);
    if (problem !== undefined) {
      throw new InvalidArgumentError(
        `prefix ${JSON.stringify(prefix)} cannot start keys: ${problem}`,
      );
    }
  }
  const type = mediaType(c.req.header("Content-Type"));
  if (!TAR_TYPES.has(type)) {
    throw new InvalidArgumentError(
      `a batch upload takes a tar body with Content-Type: application/x-tar, got ${
        JSON.stringify(type || "none")
      }`,
    );
  }
  const declared = c.req.header("Content-Length");
  if (declared !== undefined && Number(declared) > limits.maxBytes) {
    throw new HttpError(
      "payload_too_large",
      `the tar body is ${declared} bytes, over ${limits.maxBytes}, the limit of a batch upload: ` +
        "nothing was read; send it in parts",
    );
  }

  const whole = store.config?.chunkThreshold ?? FALLBACK_WHOLE_BYTES;
  const raw = c.req.raw.body ?? new ReadableStream<Uint8Array>({ start: (s) => s.close() });
  const items: BatchItem[] = [];
  /** For each put of the session, its place in `items`. */
  const placeOfPut: number[] = [];
  const batch = store.batch();
  let entries = 0;
  let stopped: unknown;
  try {
    for await (const entry of readTar(limitedBody(raw, limits.maxBytes))) {
      if (++entries > limits.maxEntries) {
        throw new HttpError(
          "payload_too_large",
          `the tar holds more than ${limits.maxEntries} entries, the limit of a batch upload ` +
            `(the entry at byte ${entry.offset} is one too many): send it in parts`,
        );
      }
      if (entry.type === "directory") continue;
      const key = prefix + entry.path.replace(/^(?:\.\/)+/, "");
      const problem = entryProblem(entry, key);
      if (problem !== undefined) {
        items.push({
          key,
          offset: entry.offset,
          error: { code: "invalid_argument", message: problem },
        });
        continue;
      }
      const body = entry.size <= whole ? await entry.bytes() : entry.stream();
      placeOfPut.push(items.length);
      items.push({ key, offset: entry.offset });
      await batch.put(namespace, key, body);
    }
  } catch (e) {
    stopped = e;
  }
  const summary: BatchSummary = await batch.close();
  summary.results.forEach((result, i) => {
    const item = items[placeOfPut[i]!]!;
    if (result.ok) {
      delete item.offset;
      item.version = result.info.version;
      item.size = result.info.size;
    } else {
      const h = toHttpError(result.error);
      item.error = { code: h.code, message: h.message };
    }
  });
  const stored = summary.stored;
  const failed = items.length - stored;
  if (stopped === undefined) {
    return c.json({ stored, failed, items }, failed === 0 ? 200 : 207);
  }
  const h = toHttpError(stopped);
  if (h.code === "internal") throw stopped;
  const message = `${h.message}; the ${stored} entries before it were stored (listed in items)`;
  if (h.code === "incomplete_body") log(`${h.status} ${h.code}: ${message}`, c.req.raw);
  return c.json(
    { code: h.code, message, stored, failed, items },
    h.status as 400,
    h.headers as Record<string, string>,
  );
}
