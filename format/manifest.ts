/**
 * Manifests: the immutable record of one artifact version, or of its deletion.
 *
 * Every put of `(namespace, key)` commits a new manifest; a delete commits a
 * tombstone (`deleted: true`). A manifest names its body by the ordered list
 * of its blob ids (one `regular` blob, or the `chunk` blobs in body order), or
 * carries a small body inline. Manifests travel in the TOC of the pack
 * committed with them (see `pack.ts`) and in the host-side manifest log.
 *
 * On disk a manifest is a JSON object ({@linkcode ManifestJson}); the inline
 * body is base64 there. {@linkcode validateManifest} turns a parsed JSON value
 * into a {@linkcode Manifest}, refusing anything malformed with
 * {@linkcode CorruptObjectError}; {@linkcode manifestToJson} goes the other
 * way and refuses a malformed manifest with {@linkcode InvalidArgumentError}.
 *
 * @example A manifest's round trip through JSON
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestToJson, validateManifest, type Manifest } from "./manifest.ts";
 *
 * const m: Manifest = {
 *   id: "01arz3ndektsv4rrffq69g5fav",
 *   storeId: "0123456789abcdef0123456789abcdef",
 *   namespace: "builds",
 *   key: "app/1.0.0/app.tar.gz",
 *   created: 1469922850259,
 *   deleted: false,
 *   size: 5,
 *   digest: "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f",
 *   contentType: "text/plain",
 *   metadata: { commit: "abc123" },
 *   blobs: [],
 *   inline: new TextEncoder().encode("hello"),
 * };
 * const json = JSON.stringify(manifestToJson(m));
 * const back = validateManifest("packs/01arz/01arz3ndek…", JSON.parse(json));
 * assert.deepEqual([back.key, new TextDecoder().decode(back.inline)], ["app/1.0.0/app.tar.gz", "hello"]);
 * ```
 *
 * @module
 */

import { isStoreId } from "./fields.ts";
import { CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { isBlobId } from "./hashing.ts";
import { isUlid, MAX_ULID_TIME } from "./ulid.ts";

/** The longest namespace, in characters. */
export const MAX_NAMESPACE_LENGTH = 128;
/** The longest artifact key, in UTF-8 bytes (S3's own key limit). */
export const MAX_ARTIFACT_KEY_BYTES = 1024;
/** The most user metadata entries on one artifact version. */
export const MAX_METADATA_ENTRIES = 64;
/** The longest user metadata key, in characters. */
export const MAX_METADATA_KEY_LENGTH = 128;
/** The longest user metadata value, in UTF-8 bytes. */
export const MAX_METADATA_VALUE_BYTES = 2048;
/** The most user metadata in total (keys and values), in UTF-8 bytes. */
export const MAX_METADATA_BYTES = 8192;
/** The longest content type, in characters. */
export const MAX_CONTENT_TYPE_LENGTH = 255;
/** The largest body a manifest may carry inline. */
export const MAX_INLINE_BYTES = 64 * 1024;
/** The most blob ids one manifest may list (with 1 MiB chunks: about 500 GB). */
export const MAX_MANIFEST_BLOBS = 500_000;

/** One artifact version (or its tombstone), as the store handles it. */
export interface Manifest {
  /** The manifest id: a ULID, so versions of an artifact sort by time. */
  id: string;
  /** The id of the store this manifest belongs to (the descriptor's `storeId`). */
  storeId: string;
  /** The artifact's namespace (see {@linkcode validateNamespace}). */
  namespace: string;
  /** The artifact's key within its namespace (see {@linkcode validateArtifactKey}). */
  key: string;
  /** When the version was committed, in milliseconds since the epoch. */
  created: number;
  /** `true` for a tombstone: the artifact was deleted at this version. */
  deleted: boolean;
  /** The body's size in bytes (0 for a tombstone). */
  size: number;
  /** The whole body's digest with the store's hash algorithm, hex (`""` for a tombstone). */
  digest: string;
  /** The body's media type (`""` when unknown, and for a tombstone). */
  contentType: string;
  /** User metadata (see {@linkcode validateMetadata}); empty for a tombstone. */
  metadata: Record<string, string>;
  /** The body's blob ids in order; empty when the body is inline, and for a tombstone. */
  blobs: string[];
  /** The whole body, when it is small enough to live in the manifest. */
  inline?: Uint8Array;
}

/** A manifest as stored: JSON-safe, the inline body in base64. */
export interface ManifestJson {
  /** See {@linkcode Manifest.id}. */
  id: string;
  /** See {@linkcode Manifest.storeId}. */
  storeId: string;
  /** See {@linkcode Manifest.namespace}. */
  namespace: string;
  /** See {@linkcode Manifest.key}. */
  key: string;
  /** See {@linkcode Manifest.created}. */
  created: number;
  /** Present (and `true`) only on a tombstone. */
  deleted?: true;
  /** See {@linkcode Manifest.size}. */
  size: number;
  /** See {@linkcode Manifest.digest}. */
  digest: string;
  /** See {@linkcode Manifest.contentType}. */
  contentType: string;
  /** See {@linkcode Manifest.metadata}. */
  metadata: Record<string, string>;
  /** See {@linkcode Manifest.blobs}. */
  blobs: string[];
  /** The inline body, base64 (RFC 4648, padded); absent when the body is in blobs. */
  inline?: string;
}

/** Options of {@linkcode validateManifest}. */
export interface ValidateManifestOptions {
  /** When given, a manifest of another store is refused. */
  storeId?: string;
  /** How to name the manifest in errors, e.g. `"manifest 3"` (default `"manifest"`). */
  label?: string;
  /**
   * The value was just parsed by the caller and nothing else holds it: reuse
   * its `metadata` object and `blobs` array instead of copying them (default
   * `false`). Decoding a large TOC allocates markedly less this way.
   */
  adopt?: boolean;
  /**
   * Decode the inline body into this arena's shared memory rather than a
   * buffer of its own (for many manifests decoded at once and let go soon).
   */
  inlineArena?: InlineArena;
}

// A problem found while checking; turned into the caller's error type.
class Problem extends Error {}

const NAMESPACE_RE = /^[A-Za-z0-9._-]+$/;
const METADATA_KEY_RE = /^[A-Za-z0-9._-]+$/;
const CONTENT_TYPE_RE = /^[\x20-\x7e]*$/;
const KNOWN_FIELDS = new Set([
  "id",
  "storeId",
  "namespace",
  "key",
  "created",
  "deleted",
  "size",
  "digest",
  "contentType",
  "metadata",
  "blobs",
  "inline",
]);

function show(value: unknown): string {
  const s = typeof value === "string" ? JSON.stringify(value) : String(value);
  return s.length > 80 ? s.slice(0, 80) + "…" : s;
}

/**
 * The UTF-8 length of a string, or -1 when it holds a character UTF-8 cannot
 * carry (an unpaired surrogate) or a control character (C0, DEL, C1).
 */
function safeUtf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return -1;
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return -1;
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function namespaceProblem(ns: unknown): string | undefined {
  if (typeof ns !== "string") return "a namespace must be a string";
  if (ns.length === 0 || ns.length > MAX_NAMESPACE_LENGTH) {
    return `a namespace is 1 to ${MAX_NAMESPACE_LENGTH} characters, got ${ns.length}`;
  }
  if (!NAMESPACE_RE.test(ns)) {
    return `namespace ${show(ns)} may only hold letters, digits, '.', '_' and '-'`;
  }
  if (ns === "." || ns === "..") return `namespace ${show(ns)} is not allowed`;
  return undefined;
}

function artifactKeyProblem(key: unknown): string | undefined {
  if (typeof key !== "string") return "an artifact key must be a string";
  if (key.length === 0) return "an artifact key must not be empty";
  if (key.length > MAX_ARTIFACT_KEY_BYTES) {
    return `artifact key longer than ${MAX_ARTIFACT_KEY_BYTES} bytes`;
  }
  const n = safeUtf8Length(key);
  if (n < 0) {
    return `artifact key ${show(key)} holds a control character or an unpaired surrogate`;
  }
  if (n > MAX_ARTIFACT_KEY_BYTES) return `artifact key longer than ${MAX_ARTIFACT_KEY_BYTES} bytes`;
  return undefined;
}

function metadataProblem(metadata: unknown): string | undefined {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    return "metadata must be an object of strings";
  }
  let entries = 0;
  let total = 0;
  for (const k in metadata) {
    if (!Object.hasOwn(metadata, k)) continue;
    if (++entries > MAX_METADATA_ENTRIES) {
      return `more than ${MAX_METADATA_ENTRIES} metadata entries`;
    }
    if (k.length === 0 || k.length > MAX_METADATA_KEY_LENGTH || !METADATA_KEY_RE.test(k)) {
      return `metadata key ${
        show(k)
      } must be 1 to ${MAX_METADATA_KEY_LENGTH} letters, digits, '.', '_' or '-'`;
    }
    const v = (metadata as Record<string, unknown>)[k];
    if (typeof v !== "string") return `metadata value of ${show(k)} must be a string`;
    if (v.length > MAX_METADATA_VALUE_BYTES) {
      return `metadata value of ${show(k)} is longer than ${MAX_METADATA_VALUE_BYTES} bytes`;
    }
    const n = safeUtf8Length(v);
    if (n < 0) {
      return `metadata value of ${show(k)} holds a control character or an unpaired surrogate`;
    }
    if (n > MAX_METADATA_VALUE_BYTES) {
      return `metadata value of ${show(k)} is longer than ${MAX_METADATA_VALUE_BYTES} bytes`;
    }
    total += k.length + n;
    if (total > MAX_METADATA_BYTES) return `metadata larger than ${MAX_METADATA_BYTES} bytes`;
  }
  return undefined;
}

function contentTypeProblem(contentType: unknown): string | undefined {
  if (typeof contentType !== "string") return "contentType must be a string";
  if (contentType.length > MAX_CONTENT_TYPE_LENGTH) {
    return `contentType longer than ${MAX_CONTENT_TYPE_LENGTH} characters`;
  }
  if (!CONTENT_TYPE_RE.test(contentType)) {
    return `contentType ${show(contentType)} must be printable ASCII`;
  }
  return undefined;
}

/**
 * Checks a namespace: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
 *
 * @param namespace The namespace to check.
 * @throws {InvalidArgumentError} naming the rule broken.
 *
 * @example
 * ```ts
 * import { validateNamespace } from "./manifest.ts";
 * validateNamespace("builds"); // fine
 * try { validateNamespace("a/b"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function validateNamespace(namespace: string): void {
  const problem = namespaceProblem(namespace);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
}

/**
 * Checks an artifact key: 1 to 1024 UTF-8 bytes, no NUL or other control
 * character, no unpaired surrogate. Any other character, `/` included, is
 * allowed: keys are names inside the index, never paths on the Location.
 *
 * @param key The key to check.
 * @throws {InvalidArgumentError} naming the rule broken.
 *
 * @example
 * ```ts
 * import { validateArtifactKey } from "./manifest.ts";
 * validateArtifactKey("releases/1.0/app.tar.gz"); // fine
 * try { validateArtifactKey("a\u0000b"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function validateArtifactKey(key: string): void {
  const problem = artifactKeyProblem(key);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
}

/**
 * Checks user metadata: at most 64 entries; keys of 1 to 128 characters of
 * `[A-Za-z0-9._-]`; string values of at most 2048 UTF-8 bytes without control
 * characters; at most 8192 bytes in all.
 *
 * @param metadata The metadata to check.
 * @throws {InvalidArgumentError} naming the rule broken.
 *
 * @example
 * ```ts
 * import { validateMetadata } from "./manifest.ts";
 * validateMetadata({ commit: "abc123", "build.number": "42" }); // fine
 * ```
 */
export function validateMetadata(metadata: Record<string, string>): void {
  const problem = metadataProblem(metadata);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
}

/**
 * Checks a content type: printable ASCII, at most 255 characters (`""` means
 * unknown).
 *
 * @param contentType The content type to check.
 * @throws {InvalidArgumentError} naming the rule broken.
 *
 * @example
 * ```ts
 * import { validateContentType } from "./manifest.ts";
 * validateContentType("application/gzip"); // fine
 * ```
 */
export function validateContentType(contentType: string): void {
  const problem = contentTypeProblem(contentType);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function problem(check: string | undefined): void {
  if (check !== undefined) throw new Problem(check);
}

const UNSET = Symbol("unset");
const lastGood: { storeId: unknown; namespace: unknown; contentType: unknown } = {
  storeId: UNSET,
  namespace: UNSET,
  contentType: UNSET,
};

/** Checks the fields shared by both directions; throws Problem. */
function checkFields(m: {
  id: unknown;
  storeId: unknown;
  namespace: unknown;
  key: unknown;
  created: unknown;
  deleted: boolean;
  size: unknown;
  digest: unknown;
  contentType: unknown;
  metadata: unknown;
  blobs: unknown;
  inlineLength: number | undefined;
}): void {
  if (!isUlid(m.id)) throw new Problem(`id ${show(m.id)} is not a ULID`);
  // Store id, namespace and content type repeat from one manifest to the
  // next in a TOC: the last good value of each is remembered.
  if (m.storeId !== lastGood.storeId) {
    if (!isStoreId(m.storeId)) throw new Problem(`storeId ${show(m.storeId)} is not a store id`);
    lastGood.storeId = m.storeId;
  }
  if (m.namespace !== lastGood.namespace) {
    problem(namespaceProblem(m.namespace));
    lastGood.namespace = m.namespace;
  }
  problem(artifactKeyProblem(m.key));
  if (!isCount(m.created) || m.created > MAX_ULID_TIME) {
    throw new Problem(`created ${show(m.created)} is not a time in milliseconds`);
  }
  if (!isCount(m.size)) throw new Problem(`size ${show(m.size)} is not a non-negative integer`);
  if (m.contentType !== lastGood.contentType) {
    problem(contentTypeProblem(m.contentType));
    lastGood.contentType = m.contentType;
  }
  problem(metadataProblem(m.metadata));
  if (!Array.isArray(m.blobs)) throw new Problem("blobs must be an array of blob ids");
  if (m.blobs.length > MAX_MANIFEST_BLOBS) {
    throw new Problem(`more than ${MAX_MANIFEST_BLOBS} blobs`);
  }
  for (let i = 0; i < m.blobs.length; i++) {
    if (!isBlobId(m.blobs[i])) throw new Problem(`blob ${i} ${show(m.blobs[i])} is not a blob id`);
  }
  if (m.deleted) {
    if (m.size !== 0) throw new Problem("a tombstone must have size 0");
    if (m.digest !== "") throw new Problem("a tombstone must have an empty digest");
    if (m.contentType !== "") throw new Problem("a tombstone must have an empty contentType");
    if (Object.keys(m.metadata as object).length > 0) {
      throw new Problem("a tombstone must have no metadata");
    }
    if (m.blobs.length > 0) throw new Problem("a tombstone must list no blobs");
    if (m.inlineLength !== undefined) throw new Problem("a tombstone must have no inline body");
    return;
  }
  if (!isBlobId(m.digest)) throw new Problem(`digest ${show(m.digest)} is not a hex digest`);
  if (m.inlineLength !== undefined) {
    if (m.blobs.length > 0) throw new Problem("both an inline body and blobs");
    if (m.inlineLength !== m.size) {
      throw new Problem(`inline body is ${m.inlineLength} bytes, size says ${m.size}`);
    }
  } else if (m.blobs.length === 0) {
    throw new Problem("neither an inline body nor blobs");
  }
}

/**
 * Shared buffers for the inline bodies of many manifests decoded at once (a
 * pack's TOC): each body is decoded into a slice of a 256 KiB piece instead
 * of a buffer of its own. Allocating a small buffer per body cost five times
 * the decoding itself (1 against 0.2 µs for 140 bytes). The bodies share their
 * piece's memory: for values read once and let go, as when indexing a pack.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InlineArena, validateManifest } from "./manifest.ts";
 * const arena = new InlineArena();
 * const m = validateManifest("packs/p", {
 *   id: "01arz3ndektsv4rrffq69g5fav", storeId: "0123456789abcdef0123456789abcdef",
 *   namespace: "ns", key: "k", created: 1, size: 3,
 *   digest: "0".repeat(64), contentType: "", metadata: {}, blobs: [], inline: "YWJj",
 * }, { inlineArena: arena });
 * assert.deepEqual(m.inline, new TextEncoder().encode("abc"));
 * ```
 */
export class InlineArena {
  #piece = new Uint8Array(0);
  #at = 0;

  /** Room for at least `length` bytes, in the current piece or a new one. */
  reserve(length: number): Uint8Array {
    if (this.#piece.length - this.#at < length) {
      this.#piece = new Uint8Array(Math.max(length, ARENA_PIECE));
      this.#at = 0;
    }
    return this.#piece.subarray(this.#at);
  }

  /** Keeps the first `length` bytes of the last reservation. */
  take(length: number): Uint8Array {
    const bytes = this.#piece.subarray(this.#at, this.#at + length);
    this.#at += length;
    return bytes;
  }
}

/** The size of an {@linkcode InlineArena}'s pieces. */
const ARENA_PIECE = 256 * 1024;

function decodeInline(value: unknown, arena: InlineArena | undefined): Uint8Array {
  if (typeof value !== "string") throw new Problem("inline must be a base64 string");
  if (value.length > Math.ceil(MAX_INLINE_BYTES / 3) * 4) {
    throw new Problem(`inline body larger than ${MAX_INLINE_BYTES} bytes`);
  }
  if (value.length % 4 !== 0) throw new Problem("inline is not canonical base64");
  let bytes: Uint8Array;
  try {
    if (arena === undefined) {
      bytes = Uint8Array.fromBase64(value, { lastChunkHandling: "strict" });
    } else {
      const { written } = arena.reserve((value.length / 4) * 3).setFromBase64(value, {
        lastChunkHandling: "strict",
      });
      bytes = arena.take(written);
    }
  } catch {
    throw new Problem("inline is not canonical base64");
  }
  // Base64 decoding skips ASCII whitespace; canonical base64 has none, so it decodes to exactly
  // 3 bytes per 4 characters less the padding (a cheaper test than a pattern over the text).
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  if (bytes.length !== (value.length / 4) * 3 - padding) {
    throw new Problem("inline is not canonical base64");
  }
  if (bytes.length > MAX_INLINE_BYTES) {
    throw new Problem(`inline body larger than ${MAX_INLINE_BYTES} bytes`);
  }
  return bytes;
}

/**
 * Turns a parsed JSON value into a {@linkcode Manifest}, checking every field:
 * types, bounds, ids, the tombstone rules (`deleted: true` with size 0 and
 * nothing else), and that a live version has exactly one of an inline body or
 * a non-empty blob list. Unknown fields are refused: a format that grows gets
 * a new version.
 *
 * @param key The Location key of the object the manifest was read from (for errors).
 * @param value The parsed JSON value.
 * @param options The expected store id; the manifest's name in errors.
 * @returns The manifest (a fresh object; `metadata` and `blobs` are copies unless `adopt`).
 * @throws {CorruptObjectError} naming `key` and the problem.
 *
 * @example
 * ```ts
 * import { validateManifest } from "./manifest.ts";
 * import { CorruptObjectError } from "../errors.ts";
 * try {
 *   validateManifest("packs/01arz/01arz3ndektsv4rrffq69g5fav", { id: "nope" });
 * } catch (e) {
 *   console.log(e instanceof CorruptObjectError, (e as CorruptObjectError).reason);
 * }
 * ```
 */
export function validateManifest(
  key: string,
  value: unknown,
  options: ValidateManifestOptions = {},
): Manifest {
  const label = options.label ?? "manifest";
  try {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Problem("not a JSON object");
    }
    const v = value as Record<string, unknown>;
    // Every required field is type-checked below, so a count that matches
    // the fields expected proves there is no unknown one.
    let fields = 0;
    for (const _ in v) fields++;
    if (fields !== 10 + (v.deleted === undefined ? 0 : 1) + (v.inline === undefined ? 0 : 1)) {
      for (const field in v) {
        if (!KNOWN_FIELDS.has(field)) throw new Problem(`unknown field ${show(field)}`);
      }
    }
    if (v.deleted !== undefined && v.deleted !== true) {
      throw new Problem("deleted must be true when present");
    }
    const deleted = v.deleted === true;
    const inline = v.inline === undefined ? undefined : decodeInline(v.inline, options.inlineArena);
    checkFields({
      id: v.id,
      storeId: v.storeId,
      namespace: v.namespace,
      key: v.key,
      created: v.created,
      deleted,
      size: v.size,
      digest: v.digest,
      contentType: v.contentType,
      metadata: v.metadata,
      blobs: v.blobs,
      inlineLength: inline?.length,
    });
    if (options.storeId !== undefined && v.storeId !== options.storeId) {
      throw new Problem(`belongs to store ${show(v.storeId)}, expected ${show(options.storeId)}`);
    }
    const manifest: Manifest = {
      id: v.id as string,
      storeId: v.storeId as string,
      namespace: v.namespace as string,
      key: v.key as string,
      created: v.created as number,
      deleted,
      size: v.size as number,
      digest: v.digest as string,
      contentType: v.contentType as string,
      metadata: options.adopt === true
        ? v.metadata as Record<string, string>
        : Object.fromEntries(Object.entries(v.metadata as Record<string, string>)),
      blobs: options.adopt === true ? v.blobs as string[] : (v.blobs as string[]).slice(),
    };
    if (inline !== undefined) manifest.inline = inline;
    return manifest;
  } catch (e) {
    if (e instanceof Problem) {
      const id = typeof value === "object" && value !== null &&
          isUlid((value as Record<string, unknown>).id)
        ? ` ${(value as Record<string, unknown>).id}`
        : "";
      throw new CorruptObjectError(key, `${label}${id}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Checks a manifest about to be written and returns its JSON form.
 *
 * @param manifest The manifest.
 * @returns Its JSON-safe form (`deleted` and `inline` only when they apply).
 * @throws {InvalidArgumentError} when the manifest breaks a rule
 *   {@linkcode validateManifest} enforces.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestToJson } from "./manifest.ts";
 * const tombstone = manifestToJson({
 *   id: "01arz3ndektsv4rrffq69g5fav", storeId: "0123456789abcdef0123456789abcdef",
 *   namespace: "builds", key: "a",
 *   created: 1469922850259, deleted: true, size: 0, digest: "", contentType: "",
 *   metadata: {}, blobs: [],
 * });
 * assert.deepEqual(JSON.stringify(tombstone).includes('"deleted":true'), true);
 * ```
 */
export function manifestToJson(manifest: Manifest): ManifestJson {
  const m = manifest;
  try {
    if (typeof m !== "object" || m === null) throw new Problem("not an object");
    if (typeof m.deleted !== "boolean") throw new Problem("deleted must be a boolean");
    if (m.inline !== undefined && !(m.inline instanceof Uint8Array)) {
      throw new Problem("inline must be a Uint8Array");
    }
    if (m.inline !== undefined && m.inline.length > MAX_INLINE_BYTES) {
      throw new Problem(`inline body larger than ${MAX_INLINE_BYTES} bytes`);
    }
    checkFields({ ...m, inlineLength: m.inline?.length });
  } catch (e) {
    if (e instanceof Problem) {
      throw new InvalidArgumentError(`invalid manifest ${show(m?.id)}: ${e.message}`);
    }
    throw e;
  }
  const json: ManifestJson = {
    id: m.id,
    storeId: m.storeId,
    namespace: m.namespace,
    key: m.key,
    created: m.created,
    size: m.size,
    digest: m.digest,
    contentType: m.contentType,
    metadata: m.metadata,
    blobs: m.blobs,
  };
  if (m.deleted) json.deleted = true;
  if (m.inline !== undefined) json.inline = m.inline.toBase64();
  return json;
}
