/**
 * Where the StoreIndex is kept between processes (`docs/FORMAT.md` §3): index
 * snapshots on the Location and the host cache in the host storage. Both use
 * the snapshot codec of `format/snapshot.ts`; this module does their I/O.
 *
 * {@linkcode writeIndexSnapshot} is the one snapshot writer: the store's
 * periodic and on-demand snapshots, the end of a rebuild and a migration all
 * go through it. It prunes to the `snapshotsKept` of the config it is given,
 * which callers take from the config in force *now* (a rebuild passes the
 * config it resolved, not the one the handle opened with).
 *
 * @module
 */

import { type Driver, NotFoundError } from "../drivers/driver.ts";
import { CapsaError, CorruptObjectError } from "../errors.ts";
import type { StoreConfig } from "../format/config.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  frameSnapshot,
  frameSnapshotInPlace,
  MAX_SNAPSHOT_BYTES,
  openSnapshot,
  readSnapshotHead,
  SNAPSHOT_HEAD_BYTES,
  SNAPSHOT_VERSION,
  SNAPSHOT_ZSTD_PARAMS,
} from "../format/snapshot.ts";
import { UlidGenerator } from "../format/ulid.ts";
import { StoreIndex } from "../index/store_index.ts";
import { Database } from "../index/_sqlite.ts";
import { schemaVersionOf } from "../index/schema.ts";
import {
  checkStampedFile,
  holdWorkCopy,
  isSqliteHeader,
  removeOrphans,
  stampFile,
  workPath,
} from "../index/_cache_file.ts";
import { createZstdCompress, createZstdDecompress } from "node:zlib";
import {
  ZSTD_CONTINUE,
  ZSTD_END,
  type ZstdHandle,
  zstdHandleOf,
  zstdHandleWorks,
} from "../format/compression.ts";
import { fsError } from "../drivers/localfs/errors.ts";
import { HOST_CACHE_KEY, SNAPSHOT_PREFIX } from "../layout.ts";
import type { StoreKeys } from "../format/crypto.ts";
import type { EventBus } from "./events.ts";
import type { IndexSource } from "./types.ts";

/** How much of a database file is read, or a snapshot body fed, at once. */
const PIECE = 4 * 1024 * 1024;

/**
 * Encodes an index as a snapshot (and as the host cache of a host storage
 * that is not a local directory). A file-backed index is read and compressed
 * piece by piece, so memory stays bounded by the compressed size; the pieces
 * are read while the event loop goes on, so a write to the index between two
 * of them would leave a snapshot mixing pages of two states of the database
 * (rows that were never together, in tables that pass SQLite's own checks).
 * The index's change count is compared before and after: when it moved, the
 * snapshot is taken again from a copy of the file read in one synchronous
 * call, during which no write can run (docs/DESIGN.md §5.1, "Index files").
 * @param index The index.
 * @param storeId The store.
 * @param createdAt When (ms).
 * @param keys An encrypted store's keys: the snapshot is sealed.
 * @returns The snapshot's bytes.
 */
export async function encodeIndexSnapshot(
  index: StoreIndex,
  storeId: string,
  createdAt: number,
  keys?: StoreKeys,
): Promise<Uint8Array> {
  const headerNow = () => ({
    storeId,
    schemaVersion: index.schemaVersion,
    highWaterMark: index.highWaterMark(),
    createdAt,
  });
  const file = index.file;
  if (file === undefined || keys !== undefined) {
    return encodeSnapshot(headerNow(), index.export(), keys);
  }
  const changes = index.changes;
  const header = headerNow();
  let snapshot: Uint8Array;
  {
    using f = await Deno.open(file, { read: true });
    const { size } = await f.stat();
    snapshot = await compressFramed(header, size, (buffer) => f.read(buffer));
  }
  if (index.changes === changes && index.file === file) return snapshot;
  // Written to while it was read: one state, copied whole before anything else runs.
  const copy = Deno.readFileSync(file);
  const again = headerNow();
  let at = 0;
  return await compressFramed(again, copy.length, (buffer) => {
    const n = Math.min(buffer.length, copy.length - at);
    if (n === 0) return Promise.resolve(null);
    buffer.set(copy.subarray(at, at + n));
    at += n;
    return Promise.resolve(n);
  });
}

/**
 * zstd-compresses what `read` fills pieces with into a framed snapshot. With
 * the compressor's handle ({@linkcode ZstdHandle}) the frame is written
 * straight into one buffer sized for the worst case (memory is only paid for
 * where it is written), with room before it for the snapshot's header: no
 * output piece is made, and the body is not copied again to be framed (a
 * 58 MB snapshot: 0.3 s less; docs/DESIGN.md §5.1). Without it, the stream's
 * pieces are framed by copying.
 * @param header The snapshot's header, but the sizes.
 * @param sizeHint The database's expected size.
 * @param read Fills a buffer, returns the bytes read (`null` at the end).
 * @returns The snapshot's bytes.
 */
async function compressFramed(
  header: Parameters<typeof frameSnapshot>[0],
  sizeHint: number,
  read: (buffer: Uint8Array) => Promise<number | null>,
): Promise<Uint8Array> {
  const z = createZstdCompress({ params: SNAPSHOT_ZSTD_PARAMS, chunkSize: PIECE });
  const direct = directZstd(z);
  if (direct === undefined) {
    z.destroy();
    let dbBytes = 0;
    const pieces = await compressPieces(async (buffer) => {
      const n = await read(buffer);
      if (n !== null) dbBytes += n;
      return n;
    });
    return frameSnapshot(header, dbBytes, pieces);
  }
  const { handle, state } = direct;
  // zstd's worst case is the input plus 1/256 and a little; a database that grew while it was
  // read grows the buffer.
  let out = new Uint8Array(SNAPSHOT_HEAD_BYTES + sizeHint + (sizeHint >>> 7) + PIECE);
  let at = SNAPSHOT_HEAD_BYTES;
  let dbBytes = 0;
  const input = new Uint8Array(PIECE);
  const compress = (directive: number, length: number) => {
    let inOffset = 0;
    let inLength = length;
    for (;;) {
      // (Bounded whatever the handle does: zstd never doubles its input.)
      if (at > 2 * (dbBytes + sizeHint) + 16 * PIECE) throw new Error("zstd output runs away");
      if (out.length - at < PIECE) {
        const grown = new Uint8Array(out.length * 2);
        grown.set(out.subarray(0, at));
        out = grown;
      }
      const room = out.length - at;
      handle.writeSync(directive, input, inOffset, inLength, out, at, room);
      const [outLeft, inLeft] = [state[0]!, state[1]!];
      at += room - outLeft;
      inOffset += inLength - inLeft;
      inLength = inLeft;
      // All input taken and room left over: nothing more to write for this directive.
      if (inLeft === 0 && outLeft !== 0) return;
    }
  };
  try {
    for (;;) {
      const n = await read(input);
      if (n === null) break;
      dbBytes += n;
      compress(ZSTD_CONTINUE, n);
    }
    compress(ZSTD_END, 0);
  } finally {
    z.destroy();
  }
  return frameSnapshotInPlace(header, dbBytes, out, SNAPSHOT_HEAD_BYTES, at - SNAPSHOT_HEAD_BYTES);
}

/** zstd-compresses what `read` fills pieces with (in pieces as large as the input's). */
async function compressPieces(
  read: (buffer: Uint8Array) => Promise<number | null>,
): Promise<Uint8Array[]> {
  // Output in pieces as large as the input's: with 1 MiB pieces the compression of a
  // 97 MB database took twice as long (0.8 against 0.4 s; BENCHMARKS.md).
  const z = createZstdCompress({ params: SNAPSHOT_ZSTD_PARAMS, chunkSize: PIECE });
  const out: Uint8Array[] = [];
  z.on("data", (c: Uint8Array) => out.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    z.on("end", resolve);
    z.on("error", reject);
  });
  // One input buffer, reused once the compressor has taken each piece (fresh pages cost).
  const buffer = new Uint8Array(PIECE);
  for (;;) {
    const n = await read(buffer);
    if (n === null) break;
    await new Promise<void>((resolve, reject) =>
      z.write(buffer.subarray(0, n), (e) => (e ? reject(e) : resolve()))
    );
  }
  z.end();
  await ended;
  return out;
}

/**
 * The local directory of a host storage's index files (`<host>/index`),
 * made when missing: the host cache lives there as a SQLite file opened in
 * place (docs/FORMAT.md §3). `undefined` when the host storage is not a local
 * directory, or its `index` entry is not a real directory: the index then
 * lives in memory and the host cache is kept in the snapshot encoding.
 * @param host The host storage.
 * @returns The directory's path, or `undefined`.
 */
export async function hostIndexDir(
  host: Driver | undefined,
  keys?: StoreKeys,
): Promise<string | undefined> {
  // An encrypted store keeps no plain SQLite file on the host: its index lives
  // in memory and its host cache is a sealed snapshot (docs/FORMAT.md §9.4).
  if (host === undefined || host.kind !== "localfs" || keys !== undefined) return undefined;
  const dir = `${host.location}/${HOST_CACHE_KEY.slice(0, HOST_CACHE_KEY.lastIndexOf("/"))}`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    const info = await Deno.lstat(dir);
    return info.isDirectory && !info.isSymlink ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The path of the host cache file in a host index directory. */
function cacheFile(dir: string): string {
  return `${dir}/${HOST_CACHE_KEY.slice(HOST_CACHE_KEY.lastIndexOf("/") + 1)}`;
}

/**
 * Decompressions under way, each told of a zstd error that Deno's node:zlib
 * throws instead of emitting. When a stream's output takes more than one
 * output piece, an error found after the first (a damaged block, the
 * frame's checksum) is thrown from an asynchronous continuation: uncaught, it
 * would end the process, where a damaged snapshot must only be rejected. While
 * one is under way, such an error is taken from the global `error` event
 * (and kept from ending the process) and fails every decompression under way
 * (two at once is rare, and a spurious failure only means the next older
 * snapshot, or the packs, are read instead).
 */
const decompressing = new Set<(e: Error) => void>();

function onUncaughtZstdError(event: ErrorEvent): void {
  const e: unknown = event.error;
  if (!(e instanceof Error) || !e.message.startsWith("Zstd decompress error")) return;
  if (decompressing.size === 0) return;
  event.preventDefault();
  for (const fail of decompressing) fail(e);
}

/**
 * How snapshots are read into working copies: whether the decompressor's
 * handle may be used ({@linkcode ZstdHandle}), from what size a snapshot is
 * read in ranges, how large each range is and how many are read ahead.
 * Tests change them to run every path on small snapshots; nothing else
 * should.
 */
export const snapshotReading: {
  direct: boolean;
  rangedFrom: number;
  range: number;
  ahead: number;
} = {
  direct: true,
  rangedFrom: 8 * 1024 * 1024,
  range: 1024 * 1024,
  ahead: 4,
};

function directZstd(z: object): ZstdHandle | undefined {
  return snapshotReading.direct ? zstdHandleOf(z) : undefined;
}

/**
 * Whether snapshots are compressed and decompressed through the zstd
 * handle in this runtime (its check passed, {@linkcode zstdHandleOf}),
 * rather than through the streams.
 * @returns `true` when the handle is used.
 */
export function zstdHandleInUse(): boolean {
  return snapshotReading.direct && zstdHandleWorks();
}

/**
 * Decompresses a version 2 snapshot's body into a file, piece by piece,
 * checking the zstd frame's checksum and the announced length.
 * @param body The body in consecutive pieces (an array's, or ranges read as
 *   they are needed).
 */
async function decompressToFile(
  key: string,
  body: AsyncIterable<Uint8Array>,
  dbBytes: number,
  path: string,
): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  // Output is gathered into two reused 4 MiB buffers, each written while the other fills. On
  // this kind of VM a page costs most the first time it is touched (by the program, then again
  // by the kernel copying from it): fresh output buffers would be paid for page by page
  // (BENCHMARKS.md). The file's writes overlap the decompression, not follow it: the file
  // system's time to place a fresh file's blocks (long on ext4 after large deletions) is then
  // mostly hidden behind the decompressor's.
  const buffers = [new Uint8Array(PIECE), new Uint8Array(PIECE)];
  let out = buffers[0]!;
  let filled = 0;
  let written = 0;
  let writing: Promise<void> = Promise.resolve();
  const writeAll = async (bytes: Uint8Array) => {
    let at = 0;
    while (at < bytes.length) at += await file.write(bytes.subarray(at));
  };
  const flush = async () => {
    if (filled === 0) return;
    await writing; // (the other buffer's write: it is free again once that is done)
    writing = writeAll(out.subarray(0, filled));
    writing.catch(() => {}); // (awaited by the next flush or at the end)
    out = out === buffers[0] ? buffers[1]! : buffers[0]!;
    filled = 0;
  };
  const tooLong = () => new CorruptObjectError(key, "more database bytes than announced");
  const damaged = (failure: unknown) =>
    new CorruptObjectError(
      key,
      `the compressed database is damaged (zstd: ${(failure as Error).message})`,
      { cause: failure },
    );
  const IN = 512 * 1024; // (compressed: some 3 MB of output a piece)
  // With the stream, output comes in 64 KiB pieces (small ones are recycled by the allocator).
  const z = createZstdDecompress({ chunkSize: 64 * 1024 });
  const direct = directZstd(z);
  try {
    if (direct !== undefined) await viaHandle(direct);
    else await viaStream();
    await writing;
  } finally {
    z.destroy(); // (a stream left mid-way, by a throw, must not go on and throw later)
    await writing.catch(() => {}); // (no write left running when the file closes)
  }
  if (written !== dbBytes) {
    throw new CorruptObjectError(
      key,
      `length mismatch: ${written} database bytes decompressed, the header announces ${dbBytes}`,
    );
  }

  async function viaHandle({ handle, state }: ZstdHandle): Promise<void> {
    for await (const input of body) {
      let inOffset = 0;
      let inLength = input.length;
      for (;;) {
        const room = out.length - filled;
        try {
          handle.writeSync(ZSTD_CONTINUE, input, inOffset, inLength, out, filled, room);
        } catch (e) {
          throw damaged(e);
        }
        const [outLeft, inLeft] = [state[0]!, state[1]!];
        const produced = room - outLeft;
        filled += produced;
        written += produced;
        if (written > dbBytes) throw tooLong();
        inOffset += inLength - inLeft;
        inLength = inLeft;
        if (filled === out.length) await flush();
        // All input taken and room left over: the decompressor wants more input.
        if (inLeft === 0 && outLeft !== 0) break;
      }
    }
    await flush();
  }

  async function viaStream(): Promise<void> {
    let failure: unknown;
    const pending: Uint8Array[] = [];
    z.on("data", (c: Uint8Array) => pending.push(c));
    let fail = (_e: unknown) => {};
    const ended = new Promise<void>((resolve) => {
      fail = (e: unknown) => {
        failure ??= e;
        resolve();
      };
      z.on("end", resolve);
      z.on("error", fail);
    });
    if (decompressing.size === 0) globalThis.addEventListener("error", onUncaughtZstdError);
    decompressing.add(fail);
    try {
      await decompressPieces();
    } finally {
      z.destroy();
      decompressing.delete(fail);
      if (decompressing.size === 0) globalThis.removeEventListener("error", onUncaughtZstdError);
    }
    if (failure !== undefined) throw damaged(failure);

    async function decompressPieces(): Promise<void> {
      const drain = async () => {
        while (pending.length > 0) {
          const c = pending.shift()!;
          written += c.length;
          if (written > dbBytes) throw tooLong();
          for (let from = 0; from < c.length;) {
            const n = Math.min(out.length - filled, c.length - from);
            out.set(c.subarray(from, from + n), filled);
            filled += n;
            from += n;
            if (filled === out.length) await flush();
          }
        }
      };
      for await (const input of body) {
        for (let at = 0; at < input.length && failure === undefined; at += IN) {
          // After an error the stream never calls back: the error ends the wait too.
          await Promise.race([
            new Promise<void>((resolve) =>
              z.write(input.subarray(at, Math.min(input.length, at + IN)), () => resolve())
            ),
            ended,
          ]);
          await drain();
        }
        if (failure !== undefined) break;
      }
      if (failure === undefined) z.end();
      await ended;
      await drain();
      await flush();
    }
  }
}

/**
 * Loads an index from a snapshot's bytes (or a host cache in the snapshot
 * encoding): into a working copy in `dir` when given (decompressed straight
 * into the file), else in memory.
 * @param key The object's name, for errors.
 * @param bytes Its bytes.
 * @param storeId The store.
 * @param dir The host index directory, if any.
 * @returns The index.
 * @throws {CorruptObjectError} when it fails a check.
 */
export async function indexFromSnapshot(
  key: string,
  bytes: Uint8Array,
  storeId: string,
  dir: string | undefined,
  keys?: StoreKeys,
): Promise<StoreIndex> {
  if (dir === undefined || keys !== undefined) {
    const { db } = decodeSnapshot(key, bytes, storeId, keys);
    return await StoreIndex.load(db, { storeId, key });
  }
  const { header, version, body } = openSnapshot(key, bytes, storeId);
  return await intoWorkCopy(key, storeId, dir, async (path) => {
    if (version === 1) await Deno.writeFile(path, body);
    else await decompressToFile(key, arrayPieces(body), header.dbBytes, path);
    return body.length === 0;
  });
}

/** A whole body as one piece (the decompressor cuts its inputs itself). */
async function* arrayPieces(body: Uint8Array): AsyncGenerator<Uint8Array> {
  yield body;
}

/**
 * Loads an index from a snapshot on the Location into a working copy in
 * `dir`, reading its body in ranges (1 MiB) while it is decompressed: the
 * next ranges (four) are read while the one before is decompressed, and no buffer
 * of the whole snapshot is made (a 58 MB snapshot of 1,000,000 artifacts:
 * its read no longer waits apart, and 58 MB of fresh memory are not
 * touched; docs/DESIGN.md §5.1). An encrypted or version 1 snapshot is read
 * whole ({@linkcode indexFromSnapshot}).
 * @param driver The Location.
 * @param key The snapshot's key.
 * @param size Its size (from `stat`).
 * @param storeId The store.
 * @param dir The host index directory.
 * @returns The index.
 * @throws {CorruptObjectError} when it fails a check (a body shorter than
 *   announced included).
 * @throws {NotFoundError} when it was deleted meanwhile.
 */
async function indexFromSnapshotRanges(
  driver: Driver,
  key: string,
  size: number,
  storeId: string,
  dir: string,
): Promise<StoreIndex> {
  const head = await driver.getRange(key, 0, Math.min(size, SNAPSHOT_HEAD_BYTES));
  const { header, version, bodyOffset } = readSnapshotHead(key, head, size, storeId);
  if (version !== SNAPSHOT_VERSION || header.cipher !== undefined) {
    return await indexFromSnapshot(key, await driver.get(key), storeId, dir);
  }
  if (header.dbBytes > MAX_SNAPSHOT_BYTES) {
    throw new CorruptObjectError(key, `${header.dbBytes} database bytes is more than any index`);
  }
  return await intoWorkCopy(key, storeId, dir, async (path) => {
    await decompressToFile(key, rangePieces(), header.dbBytes, path);
    return size === bodyOffset;
  });
  async function* rangePieces(): AsyncGenerator<Uint8Array> {
    yield head.subarray(bodyOffset);
    const { range, ahead } = snapshotReading;
    // Up to `ahead` ranges in flight: a remote Location's latency is paid once per few ranges,
    // not once per range (a local one costs nothing more).
    const inFlight: Promise<Uint8Array>[] = [];
    let next = head.length;
    const request = () => {
      const from = next;
      const want = Math.min(range, size - from);
      next += want;
      const p = driver.getRange(key, from, want).then((piece) => {
        if (piece.length !== want) {
          throw new CorruptObjectError(
            key,
            `truncated while read: ${piece.length} bytes at ${from}, ${want} expected`,
          );
        }
        return piece;
      });
      p.catch(() => {}); // (awaited below; a reader stopped early must not leave it unhandled)
      inFlight.push(p);
    };
    while (inFlight.length < ahead && next < size) request();
    while (inFlight.length > 0) {
      const piece = await inFlight.shift()!;
      if (next < size) request();
      yield piece;
    }
  }
}

/**
 * Fills a new working copy in `dir` and opens it as an index; on failure
 * the copy is deleted.
 * @param fill Writes the database into the path; returns `true` when it is empty.
 */
async function intoWorkCopy(
  key: string,
  storeId: string,
  dir: string,
  fill: (path: string) => Promise<boolean>,
): Promise<StoreIndex> {
  const path = workPath(dir);
  const held = holdWorkCopy(path, true);
  try {
    const empty = await fill(path);
    const head = empty ? new Uint8Array() : await readHead(path);
    if (!isSqliteHeader(head)) throw new CorruptObjectError(key, "not a SQLite database");
  } catch (e) {
    held.close();
    await Deno.remove(path).catch(() => {});
    throw e;
  }
  // openFile deletes the working copy when it refuses it.
  return await StoreIndex.openFile(path, { storeId, key, workDir: dir, published: false, held });
}

async function readHead(path: string): Promise<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  const b = new Uint8Array(16);
  const n = await f.read(b);
  return b.subarray(0, n ?? 0);
}

/**
 * The snapshot keys of a store, newest first. A failed listing throws: it is
 * never taken to mean "no snapshot".
 * @param driver The Location.
 * @returns The keys.
 */
export async function listSnapshots(driver: Driver): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of driver.list(SNAPSHOT_PREFIX)) keys.push(info.key);
  return keys.reverse();
}

/**
 * Deletes every snapshot but the newest `keep`, and never `except`.
 * @param driver The Location.
 * @param keep How many to keep (the config's `snapshotsKept`).
 * @param except A snapshot never deleted (the one just written, whatever its clock said).
 */
export async function pruneSnapshots(driver: Driver, keep: number, except?: string): Promise<void> {
  for (const key of (await listSnapshots(driver)).slice(keep)) {
    if (key !== except) await driver.delete(key);
  }
}

/** Options of {@linkcode writeIndexSnapshot}. */
export interface WriteSnapshotOptions {
  /** The store. */
  storeId: string;
  /** The config in force now: its `snapshotsKept` bounds the pruning. */
  config: Pick<StoreConfig, "snapshotsKept">;
  /** The clock. */
  clock: () => number;
  /** The id generator of the snapshot key (default: a new one on `clock`). */
  ids?: UlidGenerator;
  /** Prune older snapshots after writing (default `true`). */
  prune?: boolean;
  /** An encrypted store's keys. */
  keys?: StoreKeys | undefined;
  /**
   * Called once the snapshot's bytes are taken from the index, before they
   * are written: from then on the index may change, or be published as the
   * host cache, while the write goes on.
   */
  onEncoded?: () => void;
}

/** What {@linkcode writeIndexSnapshot} wrote. */
export interface WrittenSnapshot {
  /** The snapshot's key. */
  key: string;
  /** Its bytes (a caller may write the same bytes as the host cache). */
  bytes: Uint8Array;
  /** The high-water mark it carries. */
  highWaterMark: string;
}

/**
 * Writes an index snapshot to the Location, then keeps only the newest
 * `config.snapshotsKept` (the new one always stays).
 * @param driver The Location.
 * @param index The index.
 * @param options The store, the config in force, the clock.
 * @returns The key, bytes and high-water mark written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * import { StoreIndex } from "../index/store_index.ts";
 * import { listSnapshots, writeIndexSnapshot } from "./persistence.ts";
 *
 * const driver = new MemoryDriver();
 * const index = await StoreIndex.create("s1");
 * for (let i = 0; i < 3; i++) {
 *   await writeIndexSnapshot(driver, index, { storeId: "s1", config: { snapshotsKept: 2 }, clock: Date.now });
 * }
 * assert.equal((await listSnapshots(driver)).length, 2);
 * index.close();
 * ```
 */
export async function writeIndexSnapshot(
  driver: Driver,
  index: StoreIndex,
  options: WriteSnapshotOptions,
): Promise<WrittenSnapshot> {
  const ids = options.ids ?? new UlidGenerator({ clock: options.clock });
  const key = SNAPSHOT_PREFIX + ids.next();
  const highWaterMark = index.highWaterMark();
  const bytes = await encodeIndexSnapshot(index, options.storeId, options.clock(), options.keys);
  options.onEncoded?.();
  await driver.put(key, bytes);
  if (options.prune ?? true) await pruneSnapshots(driver, options.config.snapshotsKept, key);
  return { key, bytes, highWaterMark };
}

/** What {@linkcode loadNewestIndex} found. */
export interface IndexFound {
  /** The snapshot used, or `undefined` when none was valid. */
  key: string | undefined;
  /** The loaded index (when `key` is set). */
  index: StoreIndex | undefined;
  /** Snapshots newer than the one used (or all) that failed a check, with why. */
  rejected: Array<{ key: string; reason: string }>;
}

/**
 * Loads the newest snapshot that passes every check — its frame, checksum and
 * store id, and then the database itself. Corrupt ones are skipped and
 * reported; an I/O failure is thrown, never treated as "absent".
 * @param driver The Location.
 * @param storeId The store.
 * @param dir A host index directory ({@linkcode hostIndexDir}): the snapshot
 *   is decompressed into a working copy there instead of into memory.
 * @returns The index and its snapshot key, or none, with the rejected snapshots.
 */
export async function loadNewestIndex(
  driver: Driver,
  storeId: string,
  dir?: string,
  keys?: StoreKeys,
): Promise<IndexFound> {
  const rejected: Array<{ key: string; reason: string }> = [];
  for (const key of await listSnapshots(driver)) {
    let bytes: Uint8Array;
    try {
      const info = await driver.stat(key);
      if (info.size > MAX_SNAPSHOT_BYTES) {
        rejected.push({ key, reason: `${info.size} bytes is larger than any snapshot` });
        continue;
      }
      if (dir !== undefined && keys === undefined && info.size > snapshotReading.rangedFrom) {
        try {
          const index = await indexFromSnapshotRanges(driver, key, info.size, storeId, dir);
          return { key, index, rejected };
        } catch (e) {
          if (!(e instanceof CorruptObjectError)) throw e;
          rejected.push({ key, reason: e.reason });
          continue;
        }
      }
      bytes = await driver.get(key);
    } catch (e) {
      if (e instanceof NotFoundError) continue; // deleted by a concurrent prune
      throw e;
    }
    try {
      return { key, index: await indexFromSnapshot(key, bytes, storeId, dir, keys), rejected };
    } catch (e) {
      if (!(e instanceof CorruptObjectError)) throw e;
      rejected.push({ key, reason: e.reason });
    }
  }
  return { key: undefined, index: undefined, rejected };
}

/** What {@linkcode loadIndex} found. */
export interface LoadedIndex {
  /** The index (empty when nothing usable was found). */
  index: StoreIndex;
  /** Where it came from. */
  source: IndexSource;
  /** `host:index/cache` or the snapshot's key; `undefined` for an empty start. */
  loadedFrom: string | undefined;
}

/**
 * Loads the index at open: the host cache, else the newest valid snapshot,
 * else an empty one. A damaged cache or snapshot is only a warning event.
 * @param driver The Location.
 * @param host The host storage, if any.
 * @param context The store id, and where warnings go.
 * @returns The index and its source (not yet caught up).
 */
export async function loadIndex(
  driver: Driver,
  host: Driver | undefined,
  context: { storeId: string; bus: EventBus; clock: () => number; keys?: StoreKeys | undefined },
): Promise<LoadedIndex> {
  const { storeId, bus, clock, keys } = context;
  const warn = (code: string, message: string) =>
    bus.publish({ type: "warning", at: clock(), storeId, code, message });
  const dir = await hostIndexDir(host, keys);
  if (host) {
    const where = `host:${HOST_CACHE_KEY}`;
    try {
      const index = dir === undefined
        ? await hostCacheFromDriver(host, storeId, where, keys)
        : await hostCacheFromFile(dir, storeId, where).catch((e) => {
          throw fsError(e, HOST_CACHE_KEY, "read");
        });
      return { index, source: "host-cache", loadedFrom: where };
    } catch (e) {
      if (!(e instanceof NotFoundError)) {
        if (!(e instanceof CapsaError)) throw e;
        // A damaged cache is only a cache: note it and fall back to a snapshot.
        warn(
          "host_cache_unusable",
          `the host cache of the index is unusable (${e.message}); loading from the Location`,
        );
      }
    }
  }
  const found = await loadNewestIndex(driver, storeId, dir, keys);
  for (const r of found.rejected) {
    warn("snapshot_rejected", `index snapshot ${r.key} is unusable: ${r.reason}`);
  }
  if (found.index) return { index: found.index, source: "snapshot", loadedFrom: found.key };
  return {
    index: await StoreIndex.create(storeId, dir === undefined ? {} : { dir }),
    source: "empty",
    loadedFrom: undefined,
  };
}

/**
 * The schema version of a host cache kept as a SQLite file, read from its
 * meta table (read-only, in place).
 * @param host The host storage.
 * @returns The version, or `undefined` when there is no such file (absent,
 *   in the snapshot encoding, unreadable, or a host that is not a local directory).
 */
export async function hostCacheFileVersion(host: Driver): Promise<number | undefined> {
  if (host.kind !== "localfs") return undefined;
  const path = `${host.location}/${HOST_CACHE_KEY}`;
  try {
    if (!isSqliteHeader(await readHead(path))) return undefined;
    const db = new Database({ path, readOnly: true });
    try {
      const v = schemaVersionOf(db);
      return v === 0 ? undefined : v;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** The host cache kept in the snapshot encoding through the host driver. */
async function hostCacheFromDriver(
  host: Driver,
  storeId: string,
  where: string,
  keys: StoreKeys | undefined,
) {
  const { header, db } = decodeSnapshot(where, await host.get(HOST_CACHE_KEY), storeId, keys);
  const index = await StoreIndex.load(db, { storeId, key: where });
  // Unchanged (not migrated): closing need not write the cache again.
  if (index.schemaVersion === header.schemaVersion) index.markHostCacheCurrent();
  return index;
}

/**
 * The host cache kept as a SQLite file: checked (stamp, whole pages) and
 * opened in place, read-only. A cache still in the snapshot encoding (an
 * older capsa wrote it) is decompressed into a working copy.
 */
async function hostCacheFromFile(dir: string, storeId: string, where: string) {
  await removeOrphans(dir);
  const path = cacheFile(dir);
  if (!isSqliteHeader(await readHead(path))) {
    return await indexFromSnapshot(where, await Deno.readFile(path), storeId, dir);
  }
  await checkStampedFile(path, where);
  const index = await StoreIndex.openFile(path, {
    storeId,
    key: where,
    workDir: dir,
    published: true,
  });
  // Unchanged (not migrated): closing need not write the cache again.
  if (index.published) index.markHostCacheCurrent();
  return index;
}

/**
 * Writes the host cache of an index, unless it already holds the index as it
 * is. In a local host directory the cache is a SQLite file: a file-backed
 * index is published in place ({@linkcode StoreIndex.publish}: stamp, then
 * rename), an in-memory one written to a working copy first; elsewhere the
 * snapshot encoding is written with the host driver's atomic put.
 * @param host The host storage.
 * @param index The index.
 * @param context The store and the time for the snapshot encoding.
 */
export async function saveHostCache(
  host: Driver,
  index: StoreIndex,
  context: { storeId: string; createdAt: number; keys?: StoreKeys | undefined },
): Promise<void> {
  if (index.hostCacheCurrent) return;
  const changes = index.changes;
  const dir = await hostIndexDir(host, context.keys);
  if (dir === undefined) {
    await host.put(
      HOST_CACHE_KEY,
      await encodeIndexSnapshot(index, context.storeId, context.createdAt, context.keys),
    );
    index.markHostCacheCurrent(changes);
    return;
  }
  try {
    await saveCacheFile(dir, index, host.capabilities.durable);
  } catch (e) {
    throw fsError(e, HOST_CACHE_KEY, "write");
  }
  index.markHostCacheCurrent(changes);
}

/** Publishes an index as the cache file of a host index directory. */
async function saveCacheFile(dir: string, index: StoreIndex, durable: boolean): Promise<void> {
  const file = index.file;
  if (file !== undefined && file.startsWith(`${dir}/`)) {
    if (!index.published) await index.publish(cacheFile(dir), durable);
    return;
  }
  const work = workPath(dir);
  try {
    await Deno.writeFile(work, index.export());
    await stampFile(work, durable);
    await Deno.rename(work, cacheFile(dir));
  } catch (e) {
    await Deno.remove(work).catch(() => {});
    throw e;
  }
}

/**
 * When a store handle takes its next periodic snapshot: after
 * `snapshotEveryPacks` packs, or `snapshotIntervalMs` after the last one.
 */
export class SnapshotSchedule {
  #packs = 0;
  #lastAt = 0;
  readonly #clock: () => number;

  /** @param clock The handle's clock. */
  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /**
   * Counts a pack written.
   * @param config The config in force.
   * @returns Whether a snapshot is due.
   */
  packWritten(config: Pick<StoreConfig, "snapshotEveryPacks" | "snapshotIntervalMs">): boolean {
    this.#packs++;
    const byCount = config.snapshotEveryPacks > 0 && this.#packs >= config.snapshotEveryPacks;
    const byTime = config.snapshotIntervalMs > 0 && this.#lastAt > 0 &&
      this.#clock() - this.#lastAt >= config.snapshotIntervalMs;
    if (this.#lastAt === 0) this.#lastAt = this.#clock();
    return byCount || byTime;
  }

  /** Notes a snapshot written: both counts start again. */
  snapshotWritten(): void {
    this.#packs = 0;
    this.#lastAt = this.#clock();
  }
}
