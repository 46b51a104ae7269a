/**
 * The write path (`docs/FORMAT.md` §2): a body is cut into inline / regular /
 * chunked, its blobs are deduplicated against the index and the open pack,
 * and its manifest is committed through the group committer of `_commit.ts`.
 * A put resolves only once the pack carrying its manifest is durable and
 * indexed. Blobs larger than a pack are written loose, before any pack names
 * them.
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { InvalidArgumentError, TransientError } from "../errors.ts";
import { Chunker } from "../format/chunker.ts";
import { compressionLevelOf, type StoreConfig } from "../format/config.ts";
import type { Descriptor } from "../format/descriptor.ts";
import { AAD, chunkListHasher, type StoreKeys } from "../format/crypto.ts";
import { createHasher, type HashAlgorithm, hashBytes, type Hasher } from "../format/hashing.ts";
import { encodeManifestLogEntry } from "../format/manifest_log.ts";
import {
  type Manifest,
  validateArtifactKey,
  validateContentType,
  validateMetadata,
  validateNamespace,
} from "../format/manifest.ts";
import { type UlidGenerator, ulidTime } from "../format/ulid.ts";
import { MAX_COMMIT_MS } from "../index/pack_indexer.ts";
import type { ManifestRecord, StoreIndex } from "../index/store_index.ts";
import { looseBlobKey, manifestLogKey, packKey } from "../layout.ts";
import { type BlobHandle, Committer, type CompressionTried, type SealedPack } from "./_commit.ts";
import type { EventBus } from "./events.ts";
import type { GateKind } from "./gate.ts";
import { concat, infoOf } from "./read.ts";
import type { ArtifactInfo, Body, PutOptions } from "./types.ts";

/** How many chunks of one body an encrypted store seals at once, at most (their bytes are held). */
const OUTSTANDING_BLOBS = 4;

/** What a live handle serves from. */
export interface Live {
  /** The index. */
  index: StoreIndex;
  /** The descriptor. */
  descriptor: Descriptor;
  /** The config in force. */
  config: StoreConfig;
  /** An encrypted store's keys. */
  keys: StoreKeys | undefined;
}

/** What the write path needs from its store handle. */
export interface WriteContext {
  /** The Location. */
  readonly driver: Driver;
  /** The host storage, if any (the manifest log). */
  readonly host: Driver | undefined;
  /** Where events go. */
  readonly bus: EventBus;
  /** The clock. */
  readonly clock: () => number;
  /** The clock pack ids are drawn from: the handle's, corrected to the Location's. */
  readonly packClock: () => number;
  /** The handle's id generator (manifest and pack ids). */
  readonly ids: UlidGenerator;
  /** The handle's index, descriptor and config; throws when it cannot serve. */
  live(): Live;
  /** The maintenance gate. */
  check(kind: GateKind): Promise<void>;
  /** Measures the handle's clock against the Location's when due (before pack ids are drawn). */
  syncClock(): Promise<void>;
  /** Called after each pack is written and indexed. */
  packWritten(config: StoreConfig): void;
}

async function* chunksOf(body: Body): AsyncGenerator<Uint8Array> {
  if (typeof body === "string") {
    yield new TextEncoder().encode(body); // a string is its UTF-8 bytes
    return;
  }
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (!(value instanceof Uint8Array)) {
        throw new InvalidArgumentError("a body stream must yield Uint8Array chunks");
      }
      if (value.length > 0) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** A put whose blobs are stored, its manifest not yet committed. */
export interface Prepared {
  /** The manifest to commit. */
  manifest: Manifest;
  /** The packs its blobs wait in. */
  deps: Set<BlobHandle>;
}

/**
 * A body a trusted caller inside capsa (`put --from`'s reader worker) read,
 * hashed and tried to compress already, so that the session does not do it
 * again (docs/DESIGN.md §4.8). Internal: never taken from outside capsa.
 * Each part is used only where it holds for the session: the digest in an
 * unencrypted store of `algorithm`, for a body stored as one regular blob;
 * the compression at the session's own zstd level.
 */
export interface PreparedBody {
  /** The body. */
  bytes: Uint8Array;
  /** Its digest (hex), unkeyed, with {@linkcode PreparedBody.algorithm}. */
  digest?: string | undefined;
  /** The algorithm of `digest`. */
  algorithm?: HashAlgorithm | undefined;
  /** What trying to compress `bytes` gave. */
  compression?: CompressionTried | undefined;
}

/** What a session lets a trusted caller compute off its thread ({@linkcode PreparedBody}). */
export interface SessionHashing {
  /** The algorithm of body digests: `undefined` in an encrypted store (its digests are keyed). */
  algorithm: HashAlgorithm | undefined;
  /** The zstd level blobs are tried at (`undefined`: stored as they are). */
  level: number | undefined;
  /** Bodies up to this size are inline (never compressed on their own). */
  inlineThreshold: number;
  /** Bodies up to this size are one regular blob. */
  chunkThreshold: number;
}

/** A write session's side of the pipeline (see `store/batch.ts`). */
export interface SessionWriter {
  /** The session's committer (packs sealed when full). */
  committer: Committer;
  /** What the session's puts are hashed and compressed with. */
  hashing: SessionHashing;
  /** Checks a put and stores its blobs in the session's packs. */
  put(
    namespace: string,
    key: string,
    body: Body,
    options: PutOptions,
    prepared?: PreparedBody,
  ): Promise<Prepared>;
}

/** The put and delete pipeline of one store handle. */
export class Writer {
  readonly #ctx: WriteContext;
  #committer: Committer | undefined;
  readonly #loosePending = new Map<string, Promise<void>>();

  /** @param ctx The store handle's side of the pipeline. */
  constructor(ctx: WriteContext) {
    this.#ctx = ctx;
  }

  /** Forgets the committer (after the index was replaced); the next write makes a new one. */
  reset(): void {
    this.#committer = undefined;
  }

  /** Seals the open pack and waits until every pending put is durable. */
  async flush(): Promise<void> {
    await this.#committer?.flush();
  }

  /** Flushes and stops the committer. */
  async close(): Promise<void> {
    await this.#committer?.close();
  }

  #commit(): Committer {
    this.#committer ??= this.#newCommitter(false);
    return this.#committer;
  }

  #newCommitter(fillPacks: boolean): Committer {
    const { descriptor, config, keys } = this.#ctx.live();
    return new Committer(
      {
        storeId: descriptor.storeId,
        hash: descriptor.hash,
        packTargetSize: config.packTargetSize,
        maxBlobSize: Math.max(descriptor.chunking.max, config.chunkThreshold),
        compressionLevel: compressionLevelOf(config),
        keys,
        lingerMs: config.packLingerMs,
        manifestsInToc: config.manifestStorage !== "Local",
        fillPacks,
      },
      {
        newPackId: () => this.#ctx.ids.next(),
        writePack: (sealed) => this.#writePack(sealed),
      },
    );
  }

  /**
   * A write session: its own committer, whose packs are sealed only when
   * full (or when the session closes).
   * @returns The session's side of the pipeline.
   */
  session(): SessionWriter {
    const committer = this.#newCommitter(true);
    const { descriptor, config, keys } = this.#ctx.live();
    return {
      committer,
      hashing: {
        algorithm: keys === undefined ? descriptor.hash : undefined,
        level: compressionLevelOf(config),
        inlineThreshold: config.inlineThreshold,
        chunkThreshold: config.chunkThreshold,
      },
      put: (namespace, key, body, options, prepared) =>
        this.#prepare(namespace, key, prepared?.bytes ?? body, options, committer, prepared),
    };
  }

  async #writePack(sealed: SealedPack): Promise<void> {
    const ctx = this.#ctx;
    const { index, descriptor, config, keys } = ctx.live();
    await ctx.check("commit");
    const logged = config.manifestStorage !== "Remote" && sealed.manifests.length > 0;
    // Refused before the pack is written: a pack whose manifests cannot be logged is an orphan.
    if (logged && !ctx.host) {
      throw new InvalidArgumentError(
        `manifestStorage ${config.manifestStorage} needs host storage`,
      );
    }
    // Pack ids are unique: create-only where it is race-free, so nothing is ever overwritten.
    await ctx.driver.put(packKey(sealed.packId), sealed.bytes, {
      ifAbsent: ctx.driver.capabilities.createOnly,
    });
    // A pack that became durable long after its id was drawn may sort before
    // the high-water mark of a lister that looked meanwhile: refuse to
    // acknowledge it (docs/FORMAT.md §7). Its puts fail; they may still show.
    const took = ctx.packClock() - ulidTime(sealed.packId);
    if (took > MAX_COMMIT_MS) {
      throw new TransientError(
        `pack ${sealed.packId} took ${Math.round(took / 1000)} s to commit, more than ` +
          `${MAX_COMMIT_MS / 1000} s: its puts are not acknowledged; retry them`,
      );
    }
    if (logged) {
      await ctx.host!.put(
        manifestLogKey(sealed.packId),
        encodeManifestLogEntry(
          descriptor.storeId,
          sealed.packId,
          sealed.manifests,
          compressionLevelOf(config),
          keys,
        ),
      );
    }
    index.indexPack({
      pack: {
        packId: sealed.packId,
        size: sealed.bytes.length,
        blobCount: sealed.blobs.length,
        manifestCount: config.manifestStorage === "Local" ? 0 : sealed.manifests.length,
      },
      blobs: sealed.blobs.map((b) => ({
        blobId: b.id,
        kind: b.kind,
        rawSize: b.rawLength,
        storedSize: b.storedLength,
        packId: sealed.packId,
        offset: b.offset,
      })),
      manifests: sealed.manifests.map((m): ManifestRecord => ({ ...m, packId: sealed.packId })),
    });
    ctx.bus.publish({
      type: "pack.written",
      at: ctx.clock(),
      storeId: descriptor.storeId,
      packId: sealed.packId,
      bytes: sealed.bytes.length,
      blobs: sealed.blobs.length,
      manifests: sealed.manifests.length,
    });
    ctx.packWritten(config);
  }

  /** Stores a blob unless the index or the open pack has it; returns the pack it waits on. */
  async #storeBlob(
    id: string,
    kind: "regular" | "chunk",
    bytes: Uint8Array,
    committer: Committer,
    tried?: CompressionTried,
  ): Promise<BlobHandle> {
    const { index, config, keys } = this.#ctx.live();
    if (index.canDeduplicate(id)) return undefined;
    const pending = committer.pendingBlob(id);
    if (pending) return pending;
    if (bytes.length <= config.packTargetSize) {
      return await committer.addBlob(id, kind, bytes, tried);
    }
    // Too large for any pack: written loose, before any pack naming it.
    let writing = this.#loosePending.get(id);
    if (!writing) {
      writing = this.#writeLoose(index, id, kind, bytes, keys).finally(() =>
        this.#loosePending.delete(id)
      );
      this.#loosePending.set(id, writing);
    }
    await writing;
    return undefined;
  }

  async #writeLoose(
    index: StoreIndex,
    id: string,
    kind: "regular" | "chunk",
    raw: Uint8Array,
    keys: StoreKeys | undefined,
  ): Promise<void> {
    const driver = this.#ctx.driver;
    const key = looseBlobKey(id);
    // A loose blob of an encrypted store is sealed, its id as associated data.
    const bytes = keys === undefined ? raw : await keys.sealAsync(AAD.blob(id), raw);
    const exists = await driver.stat(key).then((i) => i.size === bytes.length, (e) => {
      if (e instanceof NotFoundError) return false;
      throw e;
    });
    if (!exists) await driver.put(key, bytes);
    index.registerLooseBlob({
      blobId: id,
      kind,
      rawSize: raw.length,
      storedSize: bytes.length,
      packId: null,
      offset: null,
    });
  }

  /**
   * Writes a new version of an artifact; resolves once its manifest is durable.
   * @param namespace The namespace. @param key The key.
   * @param body The body. @param options Content type and metadata.
   * @returns The new version.
   */
  async put(
    namespace: string,
    key: string,
    body: Body,
    options: PutOptions,
  ): Promise<ArtifactInfo> {
    const committer = this.#commit();
    const { manifest, deps } = await this.#prepare(namespace, key, body, options, committer);
    await committer.commitManifest(manifest, deps);
    return infoOf(manifest);
  }

  /**
   * Checks a put, cuts its body into blobs and stores them through
   * `committer`; the manifest is the caller's to commit. `prepared` (a
   * session's trusted caller only) is `body` already hashed and tried.
   */
  async #prepare(
    namespace: string,
    key: string,
    body: Body,
    options: PutOptions,
    committer: Committer,
    prepared?: PreparedBody,
  ): Promise<Prepared> {
    const ctx = this.#ctx;
    const { descriptor, config, keys } = ctx.live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    const metadata = options.metadata ?? {};
    validateMetadata(metadata);
    const contentType = options.contentType ?? "";
    if (contentType !== "") validateContentType(contentType);
    await ctx.check("write");
    await ctx.syncClock();

    // An encrypted store's ids and digests are keyed (docs/FORMAT.md §9.2).
    const hashOf = keys === undefined
      ? (b: Uint8Array) => hashBytes(descriptor.hash, b)
      : (b: Uint8Array) => keys.ids.bytes(b);
    // The packs this put waits on (a set: many chunks share a pack).
    const deps = new Set<BlobHandle>();
    const blobs: string[] = [];
    let size = 0;
    let inline: Uint8Array | undefined;
    let digest: string;
    // An encrypted store seals each chunk off the main thread: up to OUTSTANDING_BLOBS chunks
    // are then stored at once, so the thread hashes and cuts the next ones meanwhile. Their order
    // in the manifest is the order they were cut; a failure fails the put once all have settled.
    const outstanding: Promise<void>[] = [];
    let failure: { error: unknown } | undefined;
    const settle = async (keep: number) => {
      while (outstanding.length > keep) await outstanding.shift();
      if (failure !== undefined) throw failure.error;
    };
    // An encrypted store's chunked body is digested from its chunk ids (docs/FORMAT.md §9.2): the
    // body is hashed once. A plain store's digest is the hash of the whole body, as b3sum gives it.
    const list = keys === undefined ? undefined : chunkListHasher(keys.ids);
    const storeChunks = async (chunks: Iterable<Uint8Array>) => {
      for (const c of chunks) {
        const id = hashOf(c);
        blobs.push(id);
        list?.update(Uint8Array.fromHex(id));
        if (keys === undefined) {
          deps.add(await this.#storeBlob(id, "chunk", c, committer));
          continue;
        }
        outstanding.push(
          this.#storeBlob(id, "chunk", c, committer).then(
            (handle) => void deps.add(handle),
            (error) => void (failure ??= { error }),
          ),
        );
        await settle(OUTSTANDING_BLOBS - 1);
      }
    };

    // Hold bytes until the body is known to exceed the chunk threshold.
    const head: Uint8Array[] = [];
    let headBytes = 0;
    let chunker: Chunker | undefined;
    let whole: Hasher | undefined;
    if (body instanceof Uint8Array && body.length <= config.chunkThreshold) {
      // The common small body, held whole without an async generator (one costs several
      // promises a put, many of them in a put of many small files).
      size = headBytes = body.length;
      head.push(body);
    } else {
      for await (const piece of chunksOf(body)) {
        size += piece.length;
        if (!chunker) {
          head.push(piece);
          headBytes += piece.length;
          if (headBytes <= config.chunkThreshold) continue;
          chunker = new Chunker(descriptor.chunking);
          whole = list === undefined ? createHasher(descriptor.hash) : undefined;
          for (const h of head.splice(0)) {
            whole?.update(h);
            await storeChunks(chunker.push(h));
          }
          continue;
        }
        whole?.update(piece);
        await storeChunks(chunker.push(piece));
      }
    }
    if (chunker) {
      const last = chunker.finish();
      if (last && last.length > 0) await storeChunks([last]);
      await settle(0);
      digest = (whole ?? list!).digestHex();
    } else {
      const bytes = concat(head, headBytes);
      // A digest computed off the thread: the hash of these very bytes (they were handed over,
      // not shared), with this store's algorithm, unkeyed (so never in an encrypted store).
      const known = prepared?.bytes === bytes && keys === undefined &&
          prepared.algorithm === descriptor.hash
        ? prepared.digest
        : undefined;
      digest = known ?? hashOf(bytes);
      if (bytes.length <= config.inlineThreshold) inline = bytes.slice();
      else {
        blobs.push(digest);
        const tried = prepared?.bytes === bytes ? prepared.compression : undefined;
        deps.add(await this.#storeBlob(digest, "regular", bytes, committer, tried));
      }
    }

    const manifest: Manifest = {
      id: ctx.ids.next(),
      storeId: descriptor.storeId,
      namespace,
      key,
      created: ctx.clock(),
      deleted: false,
      size,
      digest,
      contentType,
      metadata: { ...metadata },
      blobs,
    };
    if (inline) manifest.inline = inline;
    return { manifest, deps };
  }

  /**
   * Commits a tombstone for an artifact that has a current version.
   * @param namespace The namespace. @param key The key.
   * @returns `true` when a tombstone was written, `false` when there was nothing to delete.
   */
  async delete(namespace: string, key: string): Promise<boolean> {
    const ctx = this.#ctx;
    const { index, descriptor } = ctx.live();
    validateNamespace(namespace);
    validateArtifactKey(key);
    await ctx.check("write");
    if (!index.current(namespace, key)) return false;
    await ctx.syncClock();
    const tombstone: Manifest = {
      id: ctx.ids.next(),
      storeId: descriptor.storeId,
      namespace,
      key,
      created: ctx.clock(),
      deleted: true,
      size: 0,
      digest: "",
      contentType: "",
      metadata: {},
      blobs: [],
    };
    await this.#commit().commitManifest(tombstone, []);
    return true;
  }
}

/**
 * A hasher of body digests as the write path computes them (`ArtifactInfo.digest`),
 * to compare a local file with a stored version without reading the version.
 * Plain store: the hash of the body. Encrypted store: the keyed hash of the
 * body when it is at most the chunk threshold, else of its chunk ids
 * (docs/FORMAT.md §9.2), so the file is cut as a put would cut it.
 * @param live The store's descriptor, config and keys.
 * @returns A fresh hasher.
 */
export function bodyDigestHasher(live: Pick<Live, "descriptor" | "config" | "keys">): Hasher {
  const { descriptor, config, keys } = live;
  if (keys === undefined) return createHasher(descriptor.hash);
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let chunker: Chunker | undefined;
  let list: Hasher | undefined;
  let finished = false;
  const feed = (chunks: Iterable<Uint8Array>) => {
    for (const c of chunks) list!.update(Uint8Array.fromHex(keys.ids.bytes(c)));
  };
  const hasher: Hasher = {
    algorithm: descriptor.hash,
    update(bytes: Uint8Array) {
      if (finished) throw new InvalidArgumentError("hasher already finished");
      if (chunker === undefined) {
        head.push(bytes.slice());
        headBytes += bytes.length;
        if (headBytes <= config.chunkThreshold) return hasher;
        chunker = new Chunker(descriptor.chunking);
        list = chunkListHasher(keys.ids);
        for (const h of head.splice(0)) feed(chunker.push(h));
        return hasher;
      }
      feed(chunker.push(bytes));
      return hasher;
    },
    digestHex() {
      if (finished) throw new InvalidArgumentError("hasher already finished");
      finished = true;
      if (chunker === undefined) return keys.ids.bytes(concat(head, headBytes));
      const last = chunker.finish();
      if (last && last.length > 0) feed([last]);
      return list!.digestHex();
    },
  };
  return hasher;
}
