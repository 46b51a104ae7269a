/**
 * The read path: finding a manifest in the index, reading its blobs (each
 * checked against its id), and assembling a body whole, as a stream, or as a
 * byte range; listing pages. The Store facade checks the handle and the
 * maintenance gate first, then calls these.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { ArtifactNotFoundError, CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { type HashAlgorithm, hashBytes } from "../format/hashing.ts";
import type { Manifest } from "../format/manifest.ts";
import { type PackSource, readBlobFromPack } from "../format/pack.ts";
import { AAD, type StoreKeys } from "../format/crypto.ts";
import type { ManifestRecord, StoreIndex } from "../index/store_index.ts";
import { looseBlobKey, packKey } from "../layout.ts";
import type { ArtifactInfo, ArtifactPage, ListArtifactsOptions } from "./types.ts";

/** Reads one blob by id (the facade's, so that a closed handle refuses). */
export type BlobReader = (blobId: string) => Promise<Uint8Array>;

/**
 * Joins byte arrays.
 * @param parts The arrays.
 * @param total Their total length.
 * @returns One array (the only part itself when there is one).
 */
export function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length === total) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * What the API says about a manifest.
 * @param m The manifest.
 * @returns Its info.
 */
export function infoOf(m: Manifest): ArtifactInfo {
  return {
    namespace: m.namespace,
    key: m.key,
    version: m.id,
    size: m.size,
    digest: m.digest,
    created: m.created,
    contentType: m.contentType,
    metadata: { ...m.metadata },
    deleted: m.deleted,
  };
}

/**
 * The current manifest of an artifact, or the version asked for.
 * @param index The index.
 * @param namespace The namespace. @param key The key.
 * @param version A version id, or `undefined` for the current one.
 * @returns The manifest.
 * @throws {ArtifactNotFoundError} when there is none (or the version is a deletion).
 */
export function findManifest(
  index: StoreIndex,
  namespace: string,
  key: string,
  version: string | undefined,
): ManifestRecord {
  if (version === undefined) {
    const m = index.current(namespace, key);
    if (!m) throw new ArtifactNotFoundError(namespace, key);
    return m;
  }
  const m = index.version(namespace, key, version);
  if (!m || m.deleted) throw new ArtifactNotFoundError(namespace, key, version);
  return m;
}

/**
 * Reads one blob, from its pack or as a loose blob, checking its bytes against its id.
 * @param driver The Location.
 * @param index The index.
 * @param hash The store's hash.
 * @param blobId The blob id.
 * @param keys An encrypted store's keys.
 * @param packs Where pack ranges are read (default the driver; a handle's read-ahead).
 * @returns Its bytes.
 * @throws {CorruptObjectError} when the bytes do not match the id, or the blob exists nowhere.
 */
export async function readBlob(
  driver: Driver,
  index: StoreIndex,
  hash: HashAlgorithm,
  blobId: string,
  keys?: StoreKeys,
  packs: PackSource = driver,
): Promise<Uint8Array> {
  const rec = index.blob(blobId);
  if (rec && rec.packId !== null && rec.offset !== null) {
    return await readBlobFromPack(packs, {
      key: packKey(rec.packId),
      id: blobId,
      offset: rec.offset,
      storedLength: rec.storedSize,
      // The index keeps both sizes; they differ only for a zstd blob (FORMAT.md §5.5.7).
      rawLength: rec.rawSize,
    }, { hash, keys });
  }
  // Loose blobs live at a key derived from their id, indexed or not.
  const key = looseBlobKey(blobId);
  const bytes = await driver.get(key).catch((e) => {
    if (e instanceof NotFoundError) {
      throw new CorruptObjectError(key, `blob ${blobId} is named by a manifest but exists nowhere`);
    }
    throw e;
  });
  let raw = bytes;
  if (keys !== undefined) {
    raw = await keys.openAsync(AAD.blob(blobId), bytes) ??
      (() => {
        throw new CorruptObjectError(key, "the sealed blob fails authentication (tampered)");
      })();
  }
  const actual = keys === undefined ? hashBytes(hash, raw) : keys.ids.bytes(raw);
  if (actual !== blobId) {
    throw new CorruptObjectError(key, `blob does not match its id (its hash is ${actual})`);
  }
  return raw;
}

/**
 * A whole body in memory.
 * @param m The manifest.
 * @param read Reads a blob.
 * @returns The body.
 * @throws {CorruptObjectError} when the blobs do not add up to the manifest's size.
 */
export async function readBody(m: Manifest, read: BlobReader): Promise<Uint8Array> {
  if (m.inline) return m.inline.slice();
  const parts: Uint8Array[] = [];
  for (const id of m.blobs) parts.push(await read(id));
  const body = concat(parts, m.size);
  if (body.length !== m.size) {
    throw new CorruptObjectError(
      `manifest ${m.id}`,
      `blobs total ${body.length} bytes, the manifest says ${m.size}`,
    );
  }
  return body;
}

/**
 * A body as a stream, one blob at a time: memory stays at one chunk.
 * @param m The manifest.
 * @param read Reads a blob.
 * @returns The stream.
 */
export function streamBody(m: Manifest, read: BlobReader): ReadableStream<Uint8Array> {
  if (m.inline) {
    const bytes = m.inline.slice();
    return new ReadableStream({
      start(c) {
        c.enqueue(bytes);
        c.close();
      },
    });
  }
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull: async (c) => {
      if (i >= m.blobs.length) return c.close();
      c.enqueue(await read(m.blobs[i++]!));
    },
  }, { highWaterMark: 1 });
}

/**
 * Checks a byte range's numbers.
 * @param offset The start. @param length The length.
 * @throws {InvalidArgumentError} unless both are non-negative safe integers.
 */
export function validateByteRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`range must be non-negative integers, got ${offset}+${length}`);
  }
}

/**
 * `length` bytes from `offset` of a body, clipped at its end; only the blobs
 * covering the range are read.
 * @param m The manifest.
 * @param offset The start. @param length The length.
 * @param sizeOf A blob's raw size from the index, when it knows it.
 * @param read Reads a blob.
 * @returns The bytes.
 */
export async function readBodyRange(
  m: Manifest,
  offset: number,
  length: number,
  sizeOf: (blobId: string) => number | undefined,
  read: BlobReader,
): Promise<Uint8Array> {
  const end = Math.min(m.size, offset + length);
  if (offset >= end) return new Uint8Array(0);
  if (m.inline) return m.inline.slice(offset, end);
  const out = new Uint8Array(end - offset);
  let at = 0;
  for (const id of m.blobs) {
    const size = sizeOf(id) ?? (await read(id)).length;
    const from = Math.max(offset, at);
    const to = Math.min(end, at + size);
    if (from < to) {
      const bytes = await read(id);
      out.set(bytes.subarray(from - at, to - at), from - offset);
    }
    at += size;
    if (at >= end) break;
  }
  return out;
}

/**
 * One page of the live artifacts of a namespace, in key order.
 * @param index The index.
 * @param namespace The namespace.
 * @param options Prefix, cursor and page size (default 1000, at most 10,000).
 * @returns The page, with a cursor unless it is the last.
 */
export function listPage(
  index: StoreIndex,
  namespace: string,
  options: ListArtifactsOptions,
): ArtifactPage {
  const limit = Math.max(1, Math.min(options.limit ?? 1000, 10_000));
  const rows = index.list(namespace, {
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.after === undefined ? {} : { after: options.after }),
    limit,
  });
  const page: ArtifactPage = { items: rows.map(infoOf) };
  if (rows.length === limit) page.after = page.cursor = rows[rows.length - 1]!.key;
  return page;
}
