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

/** One file of a batch: where its bytes are in the batch's buffer, or why it failed. */
interface WireFile {
  info?: FileStat;
  /** Offset and length of its bytes. */
  at?: number;
  length?: number;
  digest?: string;
  algorithm?: HashAlgorithm;
  level?: number;
  /** Offset and length of its zstd frame; `null`: not worth compressing. */
  packed?: [number, number] | null;
  /** Its `lstat` matched the expected signature: not read. */
  matched?: true;
  error?: WireError;
}

type ToWorker =
  | {
    capsaReader: "start";
    paths: string[];
    /** Per path, the signature of its current version (`null`: none, or compare the bytes). */
    expected: Array<string | null> | undefined;
    hashing: ReaderHashing;
    ahead: number;
  }
  | { capsaReader: "more"; buffer: ArrayBuffer };

type FromWorker =
  | { capsaReader: "ready" }
  | { capsaReader: "batch"; buffer: ArrayBuffer; files: WireFile[] };

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
  const run = async (
    paths: string[],
    expected: Array<string | null> | undefined,
    hashing: ReaderHashing,
  ) => {
    let files: WireFile[] = [];
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
      scope.postMessage({ capsaReader: "batch", buffer, files }, [buffer]);
      files = [];
      pieces = [];
      bytes = 0;
    };
    const place = (b: Uint8Array): number => {
      pieces.push(b);
      bytes += b.length;
      return bytes - b.length;
    };
    for (let p = 0; p < paths.length; p++) {
      const path = paths[p]!;
      let file: WireFile;
      try {
        const o = matchStat(path, expected?.[p]) ?? readOne(path, hashing);
        // A plain object: a Deno.FileInfo does not cross as one.
        const { isFile, isDirectory, isSymlink, size, mode, mtime } = o.info;
        file = { info: { isFile, isDirectory, isSymlink, size, mode, mtime } };
        if (o.matched) file.matched = true;
        if (o.bytes !== undefined) {
          file.at = place(o.bytes);
          file.length = o.bytes.length;
        }
        if (o.digest !== undefined) [file.digest, file.algorithm] = [o.digest, o.algorithm!];
        if (o.compression !== undefined) {
          file.level = o.compression.level;
          const p = o.compression.packed;
          file.packed = p === null ? null : [place(p), p.length];
        }
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        const code = (err as { code?: unknown }).code;
        file = {
          error: {
            name: err.name,
            message: err.message,
            ...(typeof code === "string" ? { code } : {}),
          },
        };
      }
      files.push(file);
      if (files.length >= BATCH_FILES || bytes >= BATCH_BYTES) await send();
    }
    if (files.length > 0) await send();
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
      void run(m.paths, m.expected, m.hashing);
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
    files: Array<WireFile | undefined>;
    buffer: ArrayBuffer;
    taken: number;
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
        } else if (m.capsaReader === "batch") reader.#arrived(m.buffer, m.files);
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

  #ready0(): void {
    this.#isReady = true;
    if (this.#job !== undefined) this.#worker.postMessage(this.#job);
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

  /** Files the worker read and handed over. */
  get filesRead(): number {
    return this.#read;
  }

  #arrived(buffer: ArrayBuffer, files: WireFile[]): void {
    const first = this.#received;
    this.#received += files.length;
    this.#held.push({ end: this.#received, left: files.length, buffer });
    this.#arrivedBatches.push({ first, files, buffer, taken: 0 });
    this.#read += files.length;
    for (let i = 0; i < files.length && this.#waiting.size > 0; i++) {
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
    while (b < batches.length && position >= batches[b]!.first + batches[b]!.files.length) b++;
    const batch = batches[b];
    if (batch === undefined || position < batch.first) return undefined;
    const w = batch.files[position - batch.first];
    if (w === undefined) return undefined;
    // Taken: the slot is emptied, and a batch whose files are all taken is dropped.
    batch.files[position - batch.first] = undefined;
    if (++batch.taken >= batch.files.length) batches.splice(b, 1);
    if (w.error !== undefined || w.info === undefined) {
      return errorOf(w.error ?? { name: "Error", message: "the reader worker sent no result" });
    }
    const r: OpenedFile = { info: w.info };
    if (w.matched) r.matched = true;
    const buffer = batch.buffer;
    if (w.at !== undefined) r.bytes = new Uint8Array(buffer, w.at, w.length);
    if (w.digest !== undefined) [r.digest, r.algorithm] = [w.digest, w.algorithm!];
    if (w.level !== undefined && w.packed !== undefined) {
      r.compression = {
        level: w.level,
        packed: w.packed === null ? null : new Uint8Array(buffer, w.packed[0], w.packed[1]),
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
