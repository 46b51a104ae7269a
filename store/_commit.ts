/**
 * Group commit: blobs and manifests of concurrent puts share one open pack,
 * written as one object. A pack holding manifests is sealed at once when no
 * pack is being written; otherwise the puts arriving meanwhile gather in it
 * and it is sealed when the write in flight completes, when it reaches its
 * target size, on flush, or after the linger at the latest.
 *
 * The rule it enforces (docs/FORMAT.md, W2): a manifest is added to a pack
 * only when every blob it names is durable already or travels in that same
 * pack. A put therefore resolves only after the pack carrying its manifest —
 * and every earlier pack holding its blobs — is durable and indexed.
 *
 * @module
 */

import type { Manifest } from "../format/manifest.ts";
import { type PackBlobEntry, type PackBlobInput, PackWriter } from "../format/pack.ts";
import type { BlobKind } from "../format/pack.ts";
import { AAD, type StoreKeys } from "../format/crypto.ts";
import { compressIfWorthIt } from "../format/compression.ts";

/** What the committer needs from its store. */
export interface CommitSink {
  /** Makes a new pack id (time-ordered). */
  newPackId(): string;
  /** Writes a sealed pack and indexes it; resolves when both are done. */
  writePack(sealed: SealedPack): Promise<void>;
}

/** A sealed pack, ready to be written. */
export interface SealedPack {
  /** Its id. */
  packId: string;
  /** Its bytes. */
  bytes: Uint8Array;
  /** The blobs in its TOC. */
  blobs: PackBlobEntry[];
  /** The manifests in its TOC. */
  manifests: Manifest[];
}

/**
 * What a trusted caller found trying to compress a blob (`put --from`'s
 * reader worker, docs/DESIGN.md §4.8): used only when `level` is the
 * committer's own.
 */
export interface CompressionTried {
  /** The zstd level tried. */
  level: number;
  /** `compressIfWorthIt(bytes, level)`: the zstd frame, or `null` when not worth it. */
  packed: Uint8Array | null;
}

/** Options of {@linkcode Committer}. */
export interface CommitterOptions {
  /** The store. */
  storeId: string;
  /** Its hash algorithm. */
  hash: "blake3" | "sha256";
  /** Seal a pack once it holds this many bytes. */
  packTargetSize: number;
  /** The zstd level of blobs and TOCs (`undefined`: stored as they are). */
  compressionLevel?: number | undefined;
  /** An encrypted store's keys: blobs and TOCs are sealed. */
  keys?: StoreKeys | undefined;
  /**
   * The largest blob a pack may be handed (the chunker's maximum or the chunk
   * threshold, whichever is larger; default 4 MiB): a pack that will be full
   * takes its buffer at once for the target size plus one such blob, so that it
   * never grows by copying.
   */
  maxBlobSize?: number;
  /** How long a pack with manifests waits for more before sealing (ms). */
  lingerMs: number;
  /** Carry manifests in the pack TOCs (`false` for `Local` manifest storage). */
  manifestsInToc: boolean;
  /** Sealed packs being written at once, at most (back-pressure; default 2). */
  maxInFlight?: number;
  /**
   * Seal packs only when they reach the target size (or on flush): no write
   * on idle, no linger. A write session's mode; `false` (group commit) by default.
   */
  fillPacks?: boolean;
}

/** How often a streaming put lets the event loop turn while packs are written (ms). */
const YIELD_EVERY_MS = 4;

/** Resolves on the next turn of the event loop (after pending I/O callbacks), not as a microtask. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A pack being filled or written. */
class PackSlot {
  readonly packId: string;
  /** Released once the pack is sealed: a put may hold the slot until it is durable. */
  writer: PackWriter | undefined;
  manifests: Manifest[] = [];
  entries: PackBlobEntry[] = [];
  readonly durable: Promise<void>;
  resolve!: () => void;
  reject!: (e: unknown) => void;
  sealed = false;
  timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param packId The pack's id.
   * @param options The committer's options.
   * @param firstBlob The size of the blob the pack is opened for (0: a manifest).
   * @param spare Buffers of written packs, one of which a large pack takes.
   */
  constructor(
    packId: string,
    options: CommitterOptions,
    firstBlob: number,
    spare: Uint8Array[],
  ) {
    this.packId = packId;
    const hint = sizeHint(options, firstBlob);
    this.writer = new PackWriter({
      packId,
      storeId: options.storeId,
      hash: options.hash,
      compressionLevel: options.compressionLevel,
      keys: options.keys,
      sizeHint: hint,
      buffer: hint >= LARGE_BLOB ? spare.pop() : undefined,
    });
    this.durable = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // Waiters attach their own handlers; this keeps an unobserved failure from crashing.
    this.durable.catch(() => {});
  }
}

/** Blobs this large mark a pack that will fill up: a large body streamed in chunks. */
const LARGE_BLOB = 256 * 1024;

/**
 * How large a new pack's buffer is taken. A pack that will be full (a write
 * session's, or one opened for a chunk of a large body) takes the target size
 * plus the largest blob at once: growing it by doubling from a small buffer
 * copies the pack about twice and, past the target, doubles it to twice the
 * target. A pack of small puts starts small (group commit writes many small
 * packs).
 * @param options The committer's options.
 * @param firstBlob The size of the blob the pack is opened for (0: a manifest).
 * @returns The size hint for the pack writer.
 */
function sizeHint(options: CommitterOptions, firstBlob: number): number {
  const full = options.packTargetSize + (options.maxBlobSize ?? 4 * 1024 * 1024) + 64 * 1024;
  if (options.fillPacks || firstBlob >= LARGE_BLOB) return Math.min(full, 128 * 1024 * 1024);
  return Math.min(full, 256 * 1024);
}

/** A handle on where a blob went: durability to wait for before naming it. */
export type BlobHandle = PackSlot | undefined;

/**
 * The group-commit engine of one store handle.
 */
export class Committer {
  #lastYield = 0;
  /** Buffers of large packs already written, for the next ones (at most two). */
  #spare: Uint8Array[] = [];
  #options: CommitterOptions;
  #sink: CommitSink;
  #open: PackSlot | undefined;
  #inFlight = new Set<Promise<void>>();
  /** Blobs in the open pack or in packs being written. */
  #pending = new Map<string, PackSlot>();
  #closed = false;

  /**
   * @param options Sizes and identity.
   * @param sink Where sealed packs go.
   */
  constructor(options: CommitterOptions, sink: CommitSink) {
    this.#options = options;
    this.#sink = sink;
  }

  /**
   * The slot already holding a blob (open or being written), if any.
   * @param blobId The blob id.
   * @returns Its slot.
   */
  pendingBlob(blobId: string): PackSlot | undefined {
    return this.#pending.get(blobId);
  }

  /** The open pack, opened for a blob of `firstBlob` bytes (0: a manifest) when there is none. */
  #slot(firstBlob = 0): PackSlot {
    if (this.#closed) throw new Error("committer is closed");
    this.#open ??= new PackSlot(this.#sink.newPackId(), this.#options, firstBlob, this.#spare);
    return this.#open;
  }

  /**
   * Adds a blob to the open pack (sealing it when full). Waits while too many
   * packs are being written, so memory stays bounded.
   * @param id The blob id. @param kind Its kind. @param bytes Its bytes.
   * @param tried Compression already tried on `bytes` (taken at this committer's level only).
   * @returns The slot holding it.
   */
  async addBlob(
    id: string,
    kind: BlobKind,
    bytes: Uint8Array,
    tried?: CompressionTried,
  ): Promise<PackSlot> {
    const known = this.#pending.get(id);
    if (known) return known;
    const level = this.#options.compressionLevel;
    // Compression a trusted caller already tried, at this committer's level only.
    const done = tried !== undefined && level !== undefined && tried.level === level
      ? tried.packed
      : undefined;
    // An encrypted store's blob is compressed here and sealed off the main thread (WebCrypto),
    // so that sealing overlaps the hashing and compression of the next one.
    const keys = this.#options.keys;
    let input: PackBlobInput = { id, kind, bytes };
    if (keys === undefined && done !== undefined) {
      // The pack writer stores these as they are, without trying zstd again.
      input = done === null
        ? { id, kind, bytes, compression: "none", rawLength: bytes.length }
        : { id, kind, bytes: done, compression: "zstd", rawLength: bytes.length };
    } else if (keys !== undefined) {
      const packed = done !== undefined
        ? done ?? undefined
        : level === undefined
        ? undefined
        : compressIfWorthIt(bytes, level);
      input = {
        id,
        kind,
        bytes: await keys.sealAsync(AAD.blob(id), packed ?? bytes),
        compression: packed === undefined ? "none" : "zstd",
        rawLength: bytes.length,
      };
    }
    await this.backPressure();
    for (;;) {
      const again = this.#pending.get(id);
      if (again) return again;
      // Checked again after every wait: other puts may have filled the pack meanwhile.
      if (!this.#options.fillPacks || !this.#open || !this.#full(this.#open)) break;
      if (!this.#sealIfFull()) await this.#race();
    }
    const slot = this.#slot(bytes.length);
    const writer = slot.writer!;
    slot.entries.push(writer.addBlob(input));
    this.#pending.set(id, slot);
    if (!this.#options.fillPacks && this.#full(slot)) this.#seal(slot);
    return slot;
  }

  #full(slot: PackSlot): boolean {
    return slot.writer!.isFull(this.#options.packTargetSize);
  }

  get #max(): number {
    return this.#options.maxInFlight ?? 2;
  }

  /** Waits until one of the packs being written is done. */
  async #race(): Promise<void> {
    await Promise.race([...this.#inFlight]).catch(() => {});
  }

  /**
   * A session's open pack is sealed once full, but only while fewer than
   * `maxInFlight` packs are being written; otherwise it stays open (taking
   * manifests, not blobs) until a write completes.
   */
  #sealIfFull(): boolean {
    const open = this.#open;
    if (!open || !this.#full(open) || this.#inFlight.size >= this.#max) return false;
    this.#seal(open);
    return true;
  }

  /**
   * Waits while too many sealed packs are being written (bounded memory). A
   * session (`fillPacks`) fills its open pack meanwhile and waits only once
   * it is full: it seals a full pack before the next blob (not after the blob
   * that filled it), so that the blob and manifest of a small artifact travel
   * together.
   */
  async backPressure(): Promise<void> {
    if (this.#options.fillPacks) {
      while (this.#open && this.#full(this.#open)) {
        if (!this.#sealIfFull()) await this.#race();
      }
    } else {
      while (this.#inFlight.size >= this.#max) await this.#race();
    }
    // While packs are being written, let the event loop turn: a put that streams a large body
    // otherwise keeps the thread in microtasks, and the writes' I/O steps wait for it.
    if (this.#inFlight.size > 0 && performance.now() - this.#lastYield >= YIELD_EVERY_MS) {
      await yieldToEventLoop();
      this.#lastYield = performance.now();
    }
  }

  /**
   * Commits a manifest: waits until every pack holding its blobs is durable
   * (or is the pack the manifest joins), adds it to the open pack and
   * resolves when that pack is durable and indexed.
   * @param manifest The manifest.
   * @param deps The slots returned for its blobs.
   */
  async commitManifest(manifest: Manifest, deps: Iterable<BlobHandle>): Promise<void> {
    await (await this.joinManifest(manifest, deps)).durable;
  }

  /**
   * {@linkcode Committer.commitManifest} in two steps: resolves once the
   * manifest is in a pack, with the promise of that pack's durability.
   * @param manifest The manifest.
   * @param deps The slots returned for its blobs.
   * @returns When the manifest is durable (wrapped: a bare promise would be awaited).
   */
  async joinManifest(
    manifest: Manifest,
    deps: Iterable<BlobHandle>,
  ): Promise<{ durable: Promise<void> }> {
    const waits = new Set<PackSlot>();
    for (const d of deps) if (d) waits.add(d);
    for (;;) {
      const open = this.#open;
      const outstanding = [...waits].filter((s) => s !== open || s.sealed);
      if (outstanding.length === 0) break;
      await Promise.all(outstanding.map((s) => s.durable));
      for (const s of outstanding) waits.delete(s);
    }
    // Only the current open pack (if any) remains among the dependencies: join it.
    const slot = this.#slot();
    const writer = slot.writer!;
    if (this.#options.manifestsInToc) writer.addManifest(manifest);
    slot.manifests.push(manifest);
    if (this.#options.fillPacks) {
      // A session's pack waits until it is full or the session flushes.
      this.#sealIfFull();
    } else if (this.#full(slot)) this.#seal(slot);
    else if (this.#inFlight.size === 0) {
      // Nothing being written: write now. Puts arriving meanwhile gather in the next
      // pack, which is sealed as soon as this write completes (natural group commit).
      this.#seal(slot);
    } else if (slot.timer === undefined) {
      slot.timer = setTimeout(() => this.#seal(slot), this.#options.lingerMs);
    }
    return { durable: slot.durable };
  }

  #seal(slot: PackSlot): void {
    if (slot.sealed) return;
    slot.sealed = true;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    if (this.#open === slot) this.#open = undefined;
    let sealed: SealedPack;
    try {
      const bytes = slot.writer!.finish();
      sealed = {
        packId: slot.packId,
        bytes,
        blobs: slot.entries,
        manifests: slot.manifests,
      };
      // The sealed pack owns the bytes now; the slot only signals durability.
      slot.writer = undefined;
      slot.entries = [];
      slot.manifests = [];
    } catch (e) {
      this.#forget(slot);
      slot.reject(e);
      return;
    }
    const write = this.#sink.writePack(sealed).then(
      () => {
        this.#forget(slot);
        slot.resolve();
        // The driver is done with the bytes once its put resolved (docs/DESIGN.md §8.1): a large
        // pack's buffer serves the next pack. Never after a failure, which may leave a read
        // of them in flight.
        const buffer = sealed.bytes.buffer;
        if (
          buffer instanceof ArrayBuffer && buffer.byteLength >= LARGE_BLOB &&
          this.#spare.length < 2
        ) {
          this.#spare.push(new Uint8Array(buffer));
        }
      },
      (e) => {
        this.#forget(slot);
        slot.reject(e);
      },
    );
    this.#inFlight.add(write);
    write.finally(() => {
      this.#inFlight.delete(write);
      const open = this.#open;
      if (this.#options.fillPacks) this.#sealIfFull();
      else if (open && open.manifests.length > 0 && this.#inFlight.size === 0) this.#seal(open);
    });
  }

  #forget(slot: PackSlot): void {
    for (const [id, s] of this.#pending) if (s === slot) this.#pending.delete(id);
  }

  /** Seals the open pack and waits for every pack being written. Failures are the puts' to report. */
  async flush(): Promise<void> {
    // The bound on packs being written holds here too (a closing session sealed its last pack
    // beside two in flight).
    while (this.#open && !this.#open.sealed && this.#inFlight.size >= this.#max) {
      await this.#race();
    }
    if (this.#open) this.#seal(this.#open);
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Flushes and refuses further work. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }
}
