/**
 * Reading files for `capsa put --from` off the main thread: a worker opens,
 * `fstat`s and reads each small regular file, hashes it and tries to
 * compress it, and hands the results over in batches (their bytes
 * transferred, not copied), in file order, a bounded number of batches ahead
 * of the main thread, which packs and indexes them (docs/DESIGN.md §4.8).
 *
 * The worker runs this very module: `new Worker(import.meta.url)`. In the
 * bundled CLI (`deno task bundle`) that URL is the bundle itself, which then
 * runs in the worker too; `cli.ts` does not start the CLI there, and this
 * module answers the reader's messages. Where no worker can start (no read
 * permission on the module's file, no file URL, a worker that fails), the
 * files are read on the main thread as before.
 *
 * @module
 */

import { compressIfWorthIt } from "../format/compression.ts";
import { type HashAlgorithm, hashBytes } from "../format/hashing.ts";

/**
 * Files up to this size are opened, measured (`fstat`) and read with
 * synchronous calls, their metadata taken from that `fstat`: less than an
 * async call's round trip, and one `lstat` fewer than measuring them while
 * listing (200,000 files of 1–4 KiB: 3.5 s against 4.1–4.7 s to measure and
 * read them). A larger read goes on while the files before it are hashed and
 * packed.
 */
export const SYNC_READ_BYTES = 64 * 1024;

/** What `put --from` uses of a file's `fstat` (a `Deno.FileInfo` is one). */
export interface FileStat {
  /** Whether it is a regular file. */
  isFile: boolean;
  /** Whether it is a directory. */
  isDirectory: boolean;
  /** Whether it is a symbolic link. */
  isSymlink: boolean;
  /** Its size. */
  size: number;
  /** Its permission and type bits (`null` where the platform has none). */
  mode: number | null;
  /** Its modification time. */
  mtime: Date | null;
}

/** A regular file opened by {@linkcode openRegular}. */
export interface OpenedFile {
  /** Its `fstat`, taken once it was open. */
  info: FileStat;
  /** Its bytes, when it is at most {@linkcode SYNC_READ_BYTES} long (and a file). */
  bytes?: Uint8Array;
  /** The digest of `bytes` with `algorithm` (unkeyed), when the reader computed it. */
  digest?: string;
  /** The algorithm of `digest`. */
  algorithm?: HashAlgorithm;
  /** What trying to compress `bytes` at `level` gave (the frame, or `null`: not worth it). */
  compression?: { level: number; packed: Uint8Array | null };
  /**
   * The file's `lstat` matched the size, mode and time it was expected to
   * have ({@linkcode statSignature}): it was neither opened nor read, and
   * `info` is that `lstat`.
   */
  matched?: boolean;
}

/**
 * A regular file's size, permission bits and modification time as one
 * string: `put --from` skips reading a file whose `lstat` gives the
 * signature of its key's current version (docs/DESIGN.md §4.8).
 * @param size The size. @param mode The permission bits as recorded (octal text).
 * @param mtime The modification time as recorded (milliseconds, as text).
 * @returns The signature.
 */
export function signatureOf(size: number, mode: string, mtime: string): string {
  return `${size}:${mode}:${mtime}`;
}

/**
 * {@linkcode signatureOf} a regular file's `lstat` (or `fstat`), its mode
 * and time as `put --from` records them; `undefined` for anything else, or
 * where the platform gives no mode or time.
 * @param info The file's `lstat`.
 * @returns Its signature.
 */
export function statSignature(info: FileStat): string | undefined {
  if (!info.isFile || info.mode === null || info.mtime === null) return undefined;
  return signatureOf(info.size, (info.mode & 0o7777).toString(8), String(info.mtime.getTime()));
}

/**
 * Where `expected` is the signature of the file's current version: its
 * `lstat` when that matches (one system call; the file is not read), else
 * `undefined`.
 * @param path The file. @param expected The signature it had when stored.
 * @returns The matching file, unread.
 */
export function matchStat(
  path: string,
  expected: string | null | undefined,
): OpenedFile | undefined {
  if (expected === null || expected === undefined) return undefined;
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return undefined; // opened (and failed) as any other file
  }
  return statSignature(info) === expected ? { info, matched: true } : undefined;
}

/**
 * Opens a file, takes its `fstat` and, when it is at most
 * {@linkcode SYNC_READ_BYTES} long, reads it to its end, all synchronously;
 * closes it again. A path that is no longer a regular file is returned
 * unread (reading it then fails as it should).
 * @param path The file.
 * @returns Its `fstat` and its bytes.
 */
export function openRegular(path: string): OpenedFile {
  const file = Deno.openSync(path, { read: true });
  try {
    const info = file.statSync();
    if (!info.isFile || info.size > SYNC_READ_BYTES) return { info };
    return { info, bytes: readToEnd(file, info.size) };
  } finally {
    file.close();
  }
}

/** Where {@linkcode readToEnd} looks past the expected end (reused: the reads are synchronous). */
const PAST_END = new Uint8Array(64 * 1024);

/**
 * Reads an open file to its end, expecting `size` bytes. The first read asks
 * for one byte more than `size`: when exactly `size` come back, that is the
 * end (a regular file reads short only at its end), and no second read is
 * needed to find it (one system call less per file: 0.7 s of 200,000 small
 * files). A file that grew or shrank meanwhile is read on to its end as it
 * is now.
 * @param file The file.
 * @param size Its size from `fstat`.
 * @returns Its bytes (a view of exactly their length).
 */
export function readToEnd(file: Deno.FsFile, size: number): Uint8Array {
  let buf = new Uint8Array(size + 1);
  let n = 0;
  const first = file.readSync(buf);
  if (first === null) return buf.subarray(0, 0);
  n = first;
  if (n === size) return buf.subarray(0, size);
  for (;;) {
    if (n < buf.length) {
      const k = file.readSync(buf.subarray(n));
      if (k === null) return buf.subarray(0, n);
      n += k;
      continue;
    }
    const k = file.readSync(PAST_END);
    if (k === null) return buf;
    const grown = new Uint8Array(Math.max(2 * buf.length, n + k));
    grown.set(buf);
    grown.set(PAST_END.subarray(0, k), n);
    buf = grown;
    n += k;
  }
}

/** What the reader computes besides reading: the session's side (`sessionHashing`). */
export interface ReaderHashing {
  /** Hash each body with this (none: an encrypted store, whose digests are keyed). */
  algorithm: HashAlgorithm | undefined;
  /** Try to compress each body at this zstd level (none: no compression). */
  level: number | undefined;
  /** Bodies up to this size are inline: not compressed on their own. */
  inlineThreshold: number;
  /** Bodies above this size are chunked: not compressed whole. */
  chunkThreshold: number;
}

/** A file as {@linkcode openRegular} gives it, hashed and tried as `hashing` says. */
function readOne(path: string, hashing: ReaderHashing): OpenedFile {
  const opened = openRegular(path);
  const bytes = opened.bytes;
  if (bytes === undefined) return opened;
  if (hashing.algorithm !== undefined) {
    opened.digest = hashBytes(hashing.algorithm, bytes);
    opened.algorithm = hashing.algorithm;
  }
  const level = hashing.level;
  if (
    level !== undefined && bytes.length > hashing.inlineThreshold &&
    bytes.length <= hashing.chunkThreshold
  ) {
    opened.compression = { level, packed: compressIfWorthIt(bytes, level) ?? null };
  }
  return opened;
}

// ------------------------------------------------------------------ messages

/** The worker's name: the module answers only in a worker of this name. */
const WORKER_NAME = "capsa-tree-reader";
/** At most this many files in one batch. */
const BATCH_FILES = 256;
/** A batch is sent once its bytes reach this. */
const BATCH_BYTES = 1024 * 1024;
/**
 * A batch's buffer holds this much: a batch is sent once past {@linkcode BATCH_BYTES}, its last
 * file at most {@linkcode SYNC_READ_BYTES} long, and its zstd frame shorter (a file that grew
 * while read gets a buffer of its own size).
 */
const BATCH_CAPACITY = BATCH_BYTES + 2 * SYNC_READ_BYTES;
/**
 * Batches sent and not yet given back by the main thread, at most (backpressure): a batch is
 * given back, its buffer with it, once each of its files was stored (or failed, or was
 * unchanged). The buffers go round: a fresh one costs a page fault per 4 KiB here. Enough of
 * them that the worker reads on while the main thread seals and indexes a pack (100–150 ms in
 * one go for a pack of 6,000 small files): with 6, each thread waited for the other 3 s of a
 * 200,000-file put; with 24 (about 26 MiB), the put took 0.5–1 s less (alternated runs).
 */
export const BATCHES_AHEAD = 24;

/** A worker not loaded after this long is given up: the files are read on the main thread. */
const READY_WITHIN_MS = 20_000;

/** An error as it crosses to the main thread. */
interface WireError {
  name: string;
  message: string;
  code?: string;
}

/**
 * The files of a batch as numbers, {@linkcode META_FIELDS} per file, in one
 * transferred array: no object per file crosses the threads (thousands of
 * them arrive ahead of their turn, and objects that live that long were
 * copied out of the young generation by each collection on the way: the
 * main thread's collections were a tenth of a 200,000-file put).
 */
const META_FIELDS = 9;
/** The fields of a file's entry in a batch's `meta`. */
const enum Meta {
  Flags = 0,
  Size = 1,
  Mode = 2,
  MtimeMs = 3,
  At = 4,
  Length = 5,
  Level = 6,
  PackedAt = 7,
  PackedLength = 8,
}
/** The bits of `Meta.Flags`. */
const enum Flag {
  IsFile = 1,
  IsDirectory = 2,
  IsSymlink = 4,
  Matched = 8,
  Bytes = 16,
  Digest = 32,
  Compression = 64,
  Packed = 128,
  NoMode = 256,
  NoMtime = 512,
  Failed = 1024,
}

/** A batch as it crosses to the main thread. */
interface WireBatch {
  capsaReader: "batch";
  /** The files' bytes and zstd frames. */
  buffer: ArrayBuffer;
  /** How many files. */
  count: number;
  /** {@linkcode META_FIELDS} numbers per file. */
  meta: Float64Array;
  /**
   * The digests of the files with `Flag.Digest`, in order, 64 hex digits each (a digest of
   * another length is not sent: the main thread then hashes the file itself).
   */
  digests: string;
  /** The algorithm of every digest. */
  algorithm: HashAlgorithm | undefined;
  /** The errors of the files with `Flag.Failed`, by their place in the batch. */
  errors: Array<[number, WireError]>;
}

type ToWorker =
  | {
    capsaReader: "start";
    /** The paths, or the first of them when `more` (then `more` messages bring the rest). */
    paths: string[];
    more?: true;
    /** Per path, the signature of its current version (`null`: none, or compare the bytes). */
    expected: Array<string | null> | undefined;
    hashing: ReaderHashing;
    ahead: number;
  }
  | { capsaReader: "more"; buffer: ArrayBuffer }
  | { capsaReader: "paths"; paths: string[] }
  | { capsaReader: "end" };

type FromWorker = { capsaReader: "ready" } | WireBatch;

/** Whether this module runs in a worker (then `cli.ts` does not start the CLI). */
export const IN_WORKER: boolean =
  typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";

/** The worker's side: answers `start` by reading every path, in order, in batches. */
function serve(): void {
  const scope = globalThis as unknown as {
    postMessage(m: FromWorker, transfer?: Transferable[]): void;
    addEventListener(type: "message", fn: (e: MessageEvent<ToWorker>) => void): void;
  };
  let credits = 0;
  let wake: (() => void) | undefined;
  const free: ArrayBuffer[] = [];
  // The paths to read; while `listing`, more may come (`paths` messages, then `end`).
  let paths: string[] = [];
  let listing = false;
  let moreArrived: (() => void) | undefined;
  const run = async (
    expected: Array<string | null> | undefined,
    hashing: ReaderHashing,
  ) => {
    let count = 0;
    let meta = new Float64Array(BATCH_FILES * META_FIELDS);
    let digests: string[] = [];
    let errors: Array<[number, WireError]> = [];
    let pieces: Uint8Array[] = [];
    let bytes = 0;
    const send = async () => {
      while (credits === 0) await new Promise<void>((r) => wake = r);
      credits--;
      // A batch past the capacity (a file grew while read) gets a buffer of its own.
      let buffer = bytes <= BATCH_CAPACITY ? free.pop() : undefined;
      buffer ??= new ArrayBuffer(Math.max(bytes, BATCH_CAPACITY));
      const all = new Uint8Array(buffer);
      let at = 0;
      for (const p of pieces) {
        all.set(p, at);
        at += p.length;
      }
      const batch: WireBatch = {
        capsaReader: "batch",
        buffer,
        count,
        meta,
        digests: digests.join(""),
        algorithm: hashing.algorithm,
        errors,
      };
      scope.postMessage(batch, [buffer, meta.buffer]);
      count = 0;
      meta = new Float64Array(BATCH_FILES * META_FIELDS);
      digests = [];
      errors = [];
      pieces = [];
      bytes = 0;
    };
    const place = (b: Uint8Array): number => {
      pieces.push(b);
      bytes += b.length;
      return bytes - b.length;
    };
    for (let p = 0;; p++) {
      if (p >= paths.length && listing) {
        // Caught up with the listing: what was read goes out, then the next paths are awaited.
        if (count > 0) await send();
        while (p >= paths.length && listing) await new Promise<void>((r) => moreArrived = r);
      }
      if (p >= paths.length) break;
      const path = paths[p]!;
      const m = count * META_FIELDS;
      try {
        const o = matchStat(path, expected?.[p]) ?? readOne(path, hashing);
        const { isFile, isDirectory, isSymlink, size, mode, mtime } = o.info;
        let flags = (isFile ? Flag.IsFile : 0) | (isDirectory ? Flag.IsDirectory : 0) |
          (isSymlink ? Flag.IsSymlink : 0) | (o.matched ? Flag.Matched : 0) |
          (mode === null ? Flag.NoMode : 0) | (mtime === null ? Flag.NoMtime : 0);
        meta[m + Meta.Size] = size;
        meta[m + Meta.Mode] = mode ?? 0;
        meta[m + Meta.MtimeMs] = mtime?.getTime() ?? 0;
        if (o.bytes !== undefined) {
          flags |= Flag.Bytes;
          meta[m + Meta.At] = place(o.bytes);
          meta[m + Meta.Length] = o.bytes.length;
        }
        // (every digest is of the batch's one algorithm: the reader hashes with hashing.algorithm)
        if (o.digest !== undefined && o.digest.length === 64) {
          flags |= Flag.Digest;
          digests.push(o.digest);
        }
        if (o.compression !== undefined) {
          flags |= Flag.Compression;
          meta[m + Meta.Level] = o.compression.level;
          const packed = o.compression.packed;
          if (packed !== null) {
            flags |= Flag.Packed;
            meta[m + Meta.PackedAt] = place(packed);
            meta[m + Meta.PackedLength] = packed.length;
          }
        }
        meta[m + Meta.Flags] = flags;
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        const code = (err as { code?: unknown }).code;
        meta[m + Meta.Flags] = Flag.Failed;
        errors.push([count, {
          name: err.name,
          message: err.message,
          ...(typeof code === "string" ? { code } : {}),
        }]);
      }
      count++;
      if (count >= BATCH_FILES || bytes >= BATCH_BYTES) await send();
    }
    if (count > 0) await send();
  };
  scope.addEventListener("message", (e) => {
    const m = e.data;
    if (m?.capsaReader === "more") {
      credits++;
      if (m.buffer.byteLength === BATCH_CAPACITY) free.push(m.buffer);
      const w = wake;
      wake = undefined;
      w?.();
    } else if (m?.capsaReader === "start") {
      credits = m.ahead;
      paths = m.paths;
      listing = m.more === true;
      void run(m.expected, m.hashing);
    } else if (m?.capsaReader === "paths" || m?.capsaReader === "end") {
      if (m.capsaReader === "paths") { for (const p of m.paths) paths.push(p); }
      else listing = false;
      const w = moreArrived;
      moreArrived = undefined;
      w?.();
    }
  });
  scope.postMessage({ capsaReader: "ready" });
}

if (IN_WORKER && (globalThis as { name?: string }).name === WORKER_NAME) serve();

// --------------------------------------------------------------- main thread

/** An error from the worker as the class the main thread would have caught. */
function errorOf(w: WireError): Error {
  const classes = Deno.errors as unknown as Record<string, new (message: string) => Error>;
  const C = Object.hasOwn(classes, w.name) ? classes[w.name]! : Error;
  const e = new C(w.message);
  if (w.code !== undefined) (e as { code?: string }).code = w.code;
  return e;
}

/**
 * The main thread's side of the reader worker: {@linkcode TreeReader.take}
 * gives each file's result in the order the paths were given.
 */
export class TreeReader {
  readonly #worker: Worker;
  /**
   * Batches arrived whose files are not all taken yet, in order: a file is
   * made an {@linkcode OpenedFile} only when taken, not for the thousands the
   * worker reads ahead as they arrive (a 200,000-file put: 8 % fewer page
   * faults, its time within this VM's spread).
   */
  readonly #arrivedBatches: Array<{
    first: number;
    wire: WireBatch;
    /** Per file, whether it was taken. */
    taken: Uint8Array;
    /** How many were taken. */
    takenCount: number;
    /** Per file with a digest, where its digest starts in `wire.digests` (−1: none). */
    digestAt: Int32Array;
    errors: Map<number, WireError>;
  }> = [];
  /** Waiting takers, by position. */
  readonly #waiting = new Map<number, (r: OpenedFile | Error | undefined) => void>();
  /** Results received so far. */
  #received = 0;
  /** The batches not yet given back, in order: where each ends, its files not yet released. */
  readonly #held: Array<{ end: number; left: number; buffer: ArrayBuffer }> = [];
  #failed = false;
  #closed = false;
  #late: ReturnType<typeof setTimeout> | undefined;
  #read = 0;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /**
   * Starts a reader worker, or returns `undefined` where none can start (the
   * module is not a local file, or is not readable under the granted
   * permissions): the caller reads the files itself. Start it before listing
   * the files: it loads meanwhile.
   * @returns The reader.
   */
  static spawn(): TreeReader | undefined {
    const url = import.meta.url;
    if (!url.startsWith("file:")) return undefined;
    try {
      const path = decodeURIComponent(new URL(url).pathname);
      if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return undefined;
      const worker = new Worker(url, { type: "module", name: WORKER_NAME });
      const reader = new TreeReader(worker);
      // A worker that neither loads nor fails (it should never happen) must not hang the put.
      const late = setTimeout(() => reader.#fail(), READY_WITHIN_MS);
      Deno.unrefTimer(late);
      reader.#late = late;
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.capsaReader === "ready") {
          clearTimeout(late);
          reader.#ready0();
        } else if (m.capsaReader === "batch") reader.#arrived(m);
      };
      worker.onerror = (e) => {
        // A worker that cannot start or dies: what it did not hand over is read here.
        e.preventDefault();
        clearTimeout(late);
        reader.#fail();
      };
      worker.onmessageerror = () => reader.#fail();
      return reader;
    } catch {
      return undefined;
    }
  }

  #isReady = false;
  #job: ToWorker | undefined;
  /** Whether the job is streamed ({@linkcode TreeReader.beginStream}). */
  #streaming = false;
  /** Paths handed over before the worker was ready. */
  #pending: string[][] = [];
  /** Whether {@linkcode TreeReader.end} was called. */
  #ended = false;

  #ready0(): void {
    this.#isReady = true;
    if (this.#job === undefined || this.#failed) return;
    this.#worker.postMessage(this.#job);
    if (!this.#streaming) return;
    for (const paths of this.#pending) {
      this.#worker.postMessage({ capsaReader: "paths", paths } satisfies ToWorker);
    }
    this.#pending = [];
    if (this.#ended) this.#worker.postMessage({ capsaReader: "end" } satisfies ToWorker);
  }

  /**
   * Gives the worker the files to read, in order (once).
   * @param paths The regular files.
   * @param hashing What to compute besides reading.
   * @param expected Per path, the {@linkcode statSignature} of its current
   *   version: a file whose `lstat` matches it is not read (`null`, or no
   *   array: read every file).
   */
  begin(paths: string[], hashing: ReaderHashing, expected?: Array<string | null>): void {
    this.#job = { capsaReader: "start", paths, expected, hashing, ahead: BATCHES_AHEAD };
    if (this.#isReady && !this.#failed) this.#worker.postMessage(this.#job);
  }

  /**
   * Starts the worker on files not all known yet: it reads those handed over
   * with {@linkcode TreeReader.add} as they come, in that order, until
   * {@linkcode TreeReader.end} (a listing hands over paths while it walks).
   * Until the worker says it has loaded, they wait here (a message sent to a
   * worker still loading its modules can be lost): the walk must let this
   * thread's event loop run now and then for that word to arrive.
   * @param hashing What to compute besides reading.
   */
  beginStream(hashing: ReaderHashing): void {
    this.#job = {
      capsaReader: "start",
      paths: [],
      more: true,
      expected: undefined,
      hashing,
      ahead: BATCHES_AHEAD,
    };
    this.#streaming = true;
    if (this.#isReady && !this.#failed) this.#worker.postMessage(this.#job);
  }

  /** @param paths More regular files to read, in order (after {@linkcode TreeReader.beginStream}). */
  add(paths: string[]): void {
    if (!this.#isReady) this.#pending.push(paths);
    else if (!this.#failed) {
      this.#worker.postMessage({ capsaReader: "paths", paths } satisfies ToWorker);
    }
  }

  /** Says that every path was handed over. */
  end(): void {
    this.#ended = true;
    if (this.#isReady && !this.#failed) {
      this.#worker.postMessage({ capsaReader: "end" } satisfies ToWorker);
    }
  }

  /** Files the worker read and handed over. */
  get filesRead(): number {
    return this.#read;
  }

  #arrived(wire: WireBatch): void {
    const first = this.#received;
    const count = wire.count;
    this.#received += count;
    this.#held.push({ end: this.#received, left: count, buffer: wire.buffer });
    const digestAt = new Int32Array(count).fill(-1);
    for (let i = 0, d = 0; i < count; i++) {
      if ((wire.meta[i * META_FIELDS + Meta.Flags]! & Flag.Digest) !== 0) {
        digestAt[i] = d;
        d += 64;
      }
    }
    this.#arrivedBatches.push({
      first,
      wire,
      taken: new Uint8Array(count),
      takenCount: 0,
      digestAt,
      errors: new Map(wire.errors),
    });
    this.#read += count;
    for (let i = 0; i < count && this.#waiting.size > 0; i++) {
      const waiter = this.#waiting.get(first + i);
      if (waiter === undefined) continue;
      this.#waiting.delete(first + i);
      waiter(this.#open(first + i)!);
    }
  }

  /** The file at `position` as its taker gets it, once (`undefined`: not arrived). */
  #open(position: number): OpenedFile | Error | undefined {
    const batches = this.#arrivedBatches;
    let b = 0;
    while (b < batches.length && position >= batches[b]!.first + batches[b]!.wire.count) b++;
    const batch = batches[b];
    if (batch === undefined || position < batch.first) return undefined;
    const i = position - batch.first;
    if (batch.taken[i] !== 0) return undefined;
    // Taken: marked, and a batch whose files are all taken is dropped.
    batch.taken[i] = 1;
    if (++batch.takenCount >= batch.wire.count) batches.splice(b, 1);
    const { meta, buffer } = batch.wire;
    const m = i * META_FIELDS;
    const flags = meta[m + Meta.Flags]!;
    if ((flags & Flag.Failed) !== 0) {
      return errorOf(
        batch.errors.get(i) ?? { name: "Error", message: "the reader worker sent no result" },
      );
    }
    const r: OpenedFile = {
      info: {
        isFile: (flags & Flag.IsFile) !== 0,
        isDirectory: (flags & Flag.IsDirectory) !== 0,
        isSymlink: (flags & Flag.IsSymlink) !== 0,
        size: meta[m + Meta.Size]!,
        mode: (flags & Flag.NoMode) !== 0 ? null : meta[m + Meta.Mode]!,
        mtime: (flags & Flag.NoMtime) !== 0 ? null : new Date(meta[m + Meta.MtimeMs]!),
      },
    };
    if ((flags & Flag.Matched) !== 0) r.matched = true;
    if ((flags & Flag.Bytes) !== 0) {
      r.bytes = new Uint8Array(buffer, meta[m + Meta.At]!, meta[m + Meta.Length]!);
    }
    if ((flags & Flag.Digest) !== 0 && batch.wire.algorithm !== undefined) {
      const at = batch.digestAt[i]!;
      r.digest = batch.wire.digests.slice(at, at + 64);
      r.algorithm = batch.wire.algorithm;
    }
    if ((flags & Flag.Compression) !== 0) {
      r.compression = {
        level: meta[m + Meta.Level]!,
        packed: (flags & Flag.Packed) === 0
          ? null
          : new Uint8Array(buffer, meta[m + Meta.PackedAt]!, meta[m + Meta.PackedLength]!),
      };
    }
    return r;
  }

  #fail(): void {
    if (this.#failed || this.#closed) return;
    this.#failed = true;
    this.#worker.terminate();
    for (const [, waiter] of this.#waiting) waiter(undefined);
    this.#waiting.clear();
  }

  /**
   * Says that the file taken at `position` is done with: its bytes are no
   * longer used (copied into a pack, or not stored). Once every file of a
   * batch is, its buffer goes back to the worker, which may then send one
   * more batch: every view of the buffer is then empty.
   * @param position Its place among the paths.
   */
  release(position: number): void {
    const i = this.#held.findIndex((b) => position < b.end);
    const batch = this.#held[i];
    if (batch === undefined || --batch.left > 0) return;
    this.#held.splice(i, 1);
    if (this.#failed) return;
    this.#worker.postMessage(
      { capsaReader: "more", buffer: batch.buffer } satisfies ToWorker,
      [batch.buffer],
    );
  }

  /**
   * The result of the file at `position` (each taken once, then
   * {@linkcode TreeReader.release}d).
   * @param position Its place among the paths.
   * @returns The opened file, the error reading it, or `undefined` when the
   *   worker failed before handing it over (read it on this thread).
   */
  take(position: number): Promise<OpenedFile | Error | undefined> {
    const r = this.#open(position);
    if (r !== undefined) return Promise.resolve(r);
    if (this.#failed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiting.set(position, resolve));
  }

  /** Stops the worker (again: nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#late);
    this.#worker.terminate();
    this.#failed = true;
    for (const [, waiter] of this.#waiting) waiter(undefined);
    this.#waiting.clear();
  }
}
