/**
 * The tree transfers behind `capsa put --from DIR` and `capsa get --to DIR`
 * (and the demo): every file under a directory into a namespace through one
 * write session (full packs), and every artifact of a namespace back into a
 * directory, a bounded number at once (`pool.ts`), each file written
 * atomically.
 *
 * @module
 */

import { lutimes } from "node:fs/promises";
import { CapsaError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { validateArtifactKey } from "../format/manifest.ts";
import { pool } from "../pool.ts";
import type { ArtifactInfo, Store, WriteBatch } from "../store/store.ts";
import { putPrepared, sessionHashing } from "../store/batch.ts";
import { writeFileAtomic, writeSmallFileAtomicSync } from "./_files.ts";
import { bytesPayload, type Progress } from "./_progress.ts";
import {
  type FileStat,
  matchStat,
  type OpenedFile,
  openRegular,
  signatureOf,
  TreeReader,
} from "./_reader.ts";
import { listAll } from "./_store.ts";

/** Default number of files moved at once by `put --from` and `get --to`. */
export const DEFAULT_TREE_PARALLELISM = 32;

/** Re-throws `e` with `what` in front of its message, keeping its code. */
function about(what: string, e: unknown): never {
  if (e instanceof CapsaError) {
    // The typed error itself, so that callers can still catch its class.
    e.message = `${what}: ${e.message}`;
    throw e;
  }
  if (e instanceof Error) {
    const copy = new (e.constructor as new (m: string, o?: ErrorOptions) => Error)(
      `${what}: ${e.message}`,
      { cause: e },
    );
    throw copy;
  }
  throw e;
}

/** One file found under a `put --from` directory. */
export interface TreeFile {
  /** The file's path. */
  path: string;
  /** Its artifact key: the prefix, then its path relative to the directory, with `/`. */
  key: string;
  /** Its size when listed (−1: a regular file listed unmeasured, see {@linkcode listTree}). */
  size: number;
  /** Whether it is a symbolic link (stored as the link, never followed). */
  symlink?: boolean;
  /**
   * Whether it is a directory: stored as an empty artifact at its path
   * followed by `/.` (the tree's own directory at `.`), which keeps its mode
   * and time and restores it even when empty.
   */
  dir?: boolean;
  /** Whether its key is escaped (see {@linkcode escapeKeyPath}): its path holds a control character. */
  escaped?: boolean;
  /**
   * A regular file's or a directory's permission and type bits from the walk's `lstat`
   * (`null` where the platform has none): its metadata is built from these, with no second
   * `stat`.
   */
  mode?: number | null;
  /** A regular file's or a directory's modification time from the walk's `lstat`, in ms. */
  mtimeMs?: number | null;
}

/**
 * The metadata entry naming what an artifact restores as: `symlink` or
 * `dir` (absent: a file).
 */
export const TYPE_META = "capsa.type";
/**
 * The metadata entry (`1`) saying that the artifact's key is its path
 * escaped by {@linkcode escapeKeyPath}: the path holds a character no key
 * may hold (a newline, another control character).
 */
export const ESCAPED_META = "capsa.escaped";

/** The characters a key may not hold (control characters): escaped, with `%`, in an escaped key. */
// deno-lint-ignore no-control-regex
const UNKEYABLE = /[\x00-\x1f\x7f-\x9f]/;

/**
 * A path as a key when it holds characters no key may hold: each control
 * character, and each `%`, becomes `%` and two upper-case hex digits
 * (`a\nb%` → `a%0Ab%25`). {@linkcode unescapeKeyPath} undoes it. A path
 * without control characters is its own key and is never escaped.
 * @param path The path (relative, with `/`).
 * @returns The escaped key.
 */
export function escapeKeyPath(path: string): string {
  return path.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f%]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

/**
 * Undoes {@linkcode escapeKeyPath}.
 * @param key An escaped key.
 * @returns The path.
 */
export function unescapeKeyPath(key: string): string {
  return key.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}
/** The metadata entry holding a file's permission bits, in octal (`755`). */
export const MODE_META = "capsa.mode";
/** The metadata entry holding a file's modification time, in ms since the epoch. */
export const MTIME_META = "capsa.mtime";

/**
 * What `put --from` records about a file besides its bytes: its permission
 * bits and modification time; for a directory the same and that it is one;
 * for a symbolic link, that it is one and its own modification time (its
 * body is the link's target; a link has no mode of its own).
 *
 * @param info The file's `lstat` (a symbolic link's own, never its target's), or the
 *   `fstat` of an open regular file.
 * @returns The artifact metadata.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileMetadata } from "./_tree.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/run.sh`, "#!/bin/sh\n", { mode: 0o755 });
 * await Deno.chmod(`${dir}/run.sh`, 0o755);
 * await Deno.utime(`${dir}/run.sh`, 1_000_000, 1_000_000);
 * const meta = fileMetadata(await Deno.lstat(`${dir}/run.sh`));
 * assert.deepEqual(meta, { "capsa.mode": "755", "capsa.mtime": "1000000000" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fileMetadata(info: FileStat): Record<string, string> {
  const meta: Record<string, string> = {};
  if (info.isSymlink) meta[TYPE_META] = "symlink";
  else if (info.isDirectory) meta[TYPE_META] = "dir";
  if (info.mode !== null && !info.isSymlink) meta[MODE_META] = (info.mode & 0o7777).toString(8);
  if (info.mtime !== null) meta[MTIME_META] = String(info.mtime.getTime());
  return meta;
}

/**
 * {@linkcode fileMetadata} of a regular file or a directory from what the
 * walk recorded (its `lstat` then), with no second `stat`.
 * @param f The listed entry.
 * @returns The artifact metadata, or `undefined` for a link, or an entry
 *   listed without its mode and time (the tree's own directory): `lstat` it.
 */
export function listedFileMetadata(f: TreeFile): Record<string, string> | undefined {
  if (f.symlink || f.mode === undefined || f.mtimeMs === undefined) return undefined;
  const meta: Record<string, string> = {};
  if (f.dir) meta[TYPE_META] = "dir";
  if (f.mode !== null) meta[MODE_META] = (f.mode & 0o7777).toString(8);
  if (f.mtimeMs !== null) meta[MTIME_META] = String(f.mtimeMs);
  return meta;
}

/**
 * Lists the regular files, symbolic links and directories under `dir`,
 * recursively, in key order. Symbolic links are never followed: each is one
 * entry. A directory's key is its path followed by `/.`; `dir` itself is
 * `.` (listed only when `prefix` is empty or ends with `/`). A path holding
 * a control character gets an escaped key ({@linkcode escapeKeyPath}); an
 * escaped key that is also another file's key is refused.
 *
 * The walk itself goes in key order (each directory's entries sorted, a
 * subdirectory placed by its name followed by `/`, the directory's own entry
 * as `.`), so that `onRegular` can be given the regular files' paths as they
 * are found, in their final order, while the walk goes on. Escaped names can
 * sort otherwise: the list is checked, and sorted when it is not in order
 * (`reordered`: what `onRegular` was given was in another order).
 * @param dir The directory.
 * @param prefix A key prefix.
 * @param options `measure: false` leaves regular files unmeasured (no `lstat`: size −1, no
 *   mode nor time), for a caller that opens each of them anyway (default true). `onRegular`
 *   is given the paths of the regular files in walk order, some at a time.
 * @returns The entries, the special files (FIFOs, sockets, devices) skipped, and whether the
 *   walk's order had to be corrected.
 */
export async function listTree(
  dir: string,
  prefix = "",
  options: { measure?: boolean; onRegular?: ((paths: string[]) => void) | undefined } = {},
): Promise<{ files: TreeFile[]; skipped: string[]; reordered: boolean }> {
  const measure = options.measure ?? true;
  const onRegular = options.onRegular;
  const root = dir.replace(/[/\\]+$/, "") || "/";
  const info = await Deno.stat(root);
  if (!info.isDirectory) throw new InvalidArgumentError(`${dir} is not a directory`);
  const files: TreeFile[] = [];
  const skipped: string[] = [];
  let regular: string[] = [];
  const entry = (e: TreeFile): TreeFile => {
    if (!UNKEYABLE.test(e.key)) return e;
    return { ...e, key: escapeKeyPath(e.key), escaped: true };
  };
  const regularFile = (path: string, key: string) => {
    if (!measure) files.push(entry({ path, key, size: -1 }));
    else {
      const info = Deno.lstatSync(path);
      files.push(entry({
        path,
        key,
        size: info.size,
        mode: info.mode,
        mtimeMs: info.mtime === null ? null : info.mtime.getTime(),
      }));
    }
    if (onRegular === undefined) return;
    regular.push(path);
    if (regular.length >= 1024) {
      onRegular(regular);
      regular = [];
    }
  };
  // Synchronous calls: on a page-cached tree, an lstat or a directory read takes a few
  // microseconds, less than the round trip of an async call (measured: 20,000 files listed in
  // 0.17 s, against 0.46 s with 16 async calls in flight per directory).
  // `own`: the directory's own entry, listed where `.` sorts among its entries.
  // Handing paths over, the walk lets the event loop run every few directories: the reader
  // worker's word that it has loaded must reach this thread before they can be sent to it.
  let walked = 0;
  const walk = async (abs: string, rel: string, own: (() => void) | undefined): Promise<void> => {
    if (onRegular !== undefined && ++walked % YIELD_EVERY_DIRECTORIES === 0) {
      await new Promise((r) => setTimeout(r, 0));
    }
    const entries: Array<{ sort: string; name: string; kind: number }> = [];
    if (own !== undefined) entries.push({ sort: ".", name: ".", kind: OWN });
    for (const e of Deno.readDirSync(abs)) {
      const kind = e.isSymlink ? LINK : e.isDirectory ? DIR : e.isFile ? FILE : OTHER;
      entries.push({ sort: kind === DIR ? `${e.name}/` : e.name, name: e.name, kind });
    }
    entries.sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0));
    for (const { name, kind } of entries) {
      if (kind === OWN) {
        own!();
        continue;
      }
      const path = `${abs}/${name}`;
      const key = rel === "" ? name : `${rel}/${name}`;
      if (kind === LINK) files.push(entry({ path, key: prefix + key, size: 0, symlink: true }));
      else if (kind === DIR) {
        await walk(path, key, () => {
          const info = Deno.lstatSync(path);
          files.push(entry({
            path,
            key: `${prefix}${key}/.`,
            size: 0,
            dir: true,
            mode: info.mode,
            mtimeMs: info.mtime === null ? null : info.mtime.getTime(),
          }));
        });
      } else if (kind === FILE) regularFile(path, prefix + key);
      else skipped.push(key);
    }
  };
  const listRoot = prefix === "" || prefix.endsWith("/");
  await walk(
    root,
    "",
    listRoot
      ? () => files.push(entry({ path: root, key: `${prefix}.`, size: 0, dir: true }))
      : undefined,
  );
  if (onRegular !== undefined && regular.length > 0) onRegular(regular);
  skipped.sort();
  let reordered = false;
  for (let i = 1; i < files.length; i++) {
    if (files[i - 1]!.key > files[i]!.key) {
      reordered = true;
      break;
    }
  }
  if (reordered) files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.key === files[i - 1]!.key) {
      const [a, b] = [files[i - 1]!, files[i]!];
      throw new InvalidArgumentError(
        `${JSON.stringify(a.path)} and ${JSON.stringify(b.path)} would both be stored as key ` +
          `${JSON.stringify(a.key)} (a name holding a control character is stored escaped, ` +
          `as %XX): rename one (nothing was stored)`,
      );
    }
  }
  return { files, skipped, reordered };
}

/** A walk handing paths over lets the event loop run once every so many directories. */
const YIELD_EVERY_DIRECTORIES = 64;

/** What a directory entry is, for the walk of {@linkcode listTree}. */
const FILE = 0;
const DIR = 1;
const LINK = 2;
const OTHER = 3;
/** The directory's own entry (sorted as `.`). */
const OWN = 4;

/** Options of {@linkcode putTree}. */
export interface PutTreeOptions {
  /** Prepended to every key (default none). */
  prefix?: string;
  /** Files stored at once (default {@linkcode DEFAULT_TREE_PARALLELISM}). */
  parallelism?: number;
  /** A progress bar (files; bytes as payload). */
  progress?: Progress;
  /** Store every file, even one whose current version is the same (default false). */
  force?: boolean;
  /**
   * Read and hash a regular file to compare it with its key's current version
   * even when its size, mode and modification time are those of that version
   * (default false: such a file is taken as unchanged without being read).
   */
  checksum?: boolean;
  /**
   * Stops the transfer: no file is started after it aborts, the files being
   * stored finish, and the result says `interrupted`.
   */
  signal?: AbortSignal;
  /**
   * Where small regular files are read, hashed and tried to compress:
   * `"worker"` (default), a worker thread beside the one that packs and
   * indexes them (`cli/_reader.ts`), or `"thread"`, this thread. Where no
   * worker can start, this thread reads them.
   */
  reader?: "worker" | "thread";
  /**
   * Called once the tree is listed and its keys checked, before any file is
   * read (with it, the reader worker does not read during the walk).
   */
  afterListing?: () => void | Promise<void>;
}

/** What {@linkcode putTree} reports. */
export interface PutTreeResult {
  /** Files and links found (new versions plus unchanged; on interruption, those handled). */
  files: number;
  /** Files and links found under the directory. */
  total: number;
  /** New versions written. */
  newVersions: number;
  /** Files whose current version already has the same size, metadata and digest: not written. */
  unchanged: number;
  /** Bytes of the new versions (bodies, before deduplication). */
  bytes: number;
  /** Bytes the store grew by (new packs, after deduplication and compression). */
  newBytes: number;
  /** Whether the signal stopped it before every file was handled. */
  interrupted: boolean;
  /** Special files skipped (FIFOs, sockets, devices), as relative paths. */
  skipped: string[];
  /** Regular files the reader worker opened (and read when small); 0: all read on this thread. */
  readByWorker: number;
}

/**
 * Files up to this size are read whole with `Deno.readFile` (one call, no
 * stream); larger ones are streamed.
 */
export const SMALL_FILE_BYTES = 1024 * 1024;

/**
 * Stores every regular file under `dir` in `namespace`, keys being the
 * paths relative to `dir` with `/` (after `prefix`), through one write
 * session (`Store.batch()`): the files fill packs of the store's target
 * size. Small files are read whole, larger ones streamed, a bounded number
 * at once. Every key is checked before the first put, so a bad file name
 * changes nothing. A file that cannot be read or stored does not stop the
 * others; the first such failure is thrown at the end (after every other
 * file is durable), naming the file and how many failed.
 *
 * @param store The store.
 * @param namespace The namespace.
 * @param dir The directory.
 * @param options Prefix, parallelism, progress.
 * @returns Counts.
 */
export async function putTree(
  store: Store,
  namespace: string,
  dir: string,
  options: PutTreeOptions = {},
): Promise<PutTreeResult> {
  // The reader worker loads while the tree is listed.
  const reader = options.reader === "thread" ? undefined : TreeReader.spawn();
  try {
    return await putListed(store, namespace, dir, options, reader);
  } finally {
    reader?.close();
  }
}

async function putListed(
  store: Store,
  namespace: string,
  dir: string,
  options: PutTreeOptions,
  reader: TreeReader | undefined,
): Promise<PutTreeResult> {
  const progress = options.progress;
  let done = 0;
  let bytes = 0;
  const failures: Array<{ path: string; error: unknown }> = [];
  const putPaths: string[] = [];
  let unchanged = 0;
  let stored = 0;
  let interrupted = false;
  const packBytesBefore = (await store.status()).counts?.packBytes ?? 0;
  let batch: WriteBatch;
  try {
    batch = store.batch({
      // Outcomes are counted here as they come: a tree of millions of files keeps none.
      keepResults: false,
      onResult: (r, i) => {
        if (r.ok) {
          bytes += r.info.size;
          stored++;
        } else failures.push({ path: putPaths[i]!, error: r.error });
        progress?.update(++done, bytesPayload(bytes));
      },
    });
  } catch (e) {
    about(`${dir} (nothing was stored)`, e);
  }
  let files: TreeFile[] = [];
  let skipped: string[] = [];
  try {
    // The current versions under the prefix, read once (not one index lookup per file).
    let current: CurrentVersions | undefined;
    if (!options.force) {
      try {
        current = await currentVersions(store, namespace, options.prefix ?? "");
      } catch (e) {
        about(`${dir} (nothing was stored)`, e);
      }
    }
    // With nothing to compare before reading (a first put, --force, --checksum), the worker
    // reads the regular files as the walk finds them (in key order): no file is stored before
    // the whole tree is listed and its keys checked, but the reading does not wait for that
    // (docs/DESIGN.md §4.8). Not with the test hook that changes files between the two.
    const streamed = reader !== undefined && options.afterListing === undefined &&
      (current === undefined || current.versions.size === 0 || options.checksum === true);
    if (streamed) reader!.beginStream(sessionHashing(batch));
    let listed: Awaited<ReturnType<typeof listTree>>;
    try {
      // Regular files are measured when opened (openRegular), not while listing.
      listed = await listTree(dir, options.prefix ?? "", {
        measure: false,
        onRegular: streamed ? (p) => reader!.add(p) : undefined,
      });
    } finally {
      if (streamed) reader!.end();
    }
    ({ files, skipped } = listed);
    if (streamed && listed.reordered) {
      // Escaped names put the listing in another order than the walk's, in which the worker
      // reads: a reader that reads in the listing's order replaces it.
      reader!.close();
      reader = TreeReader.spawn();
    }
    for (const f of files) {
      try {
        validateArtifactKey(f.key);
      } catch (e) {
        about(`${f.path} cannot be stored (nothing was stored)`, e);
      }
    }
    await options.afterListing?.();
    progress?.start(files.length, bytesPayload(0));
    // Regular files are read (and hashed) in a worker, in order, while this thread stores them.
    const positions = new Int32Array(files.length).fill(-1);
    const paths: string[] = [];
    files.forEach((f, i) => {
      if (!f.dir && !f.symlink) positions[i] = paths.push(f.path) - 1;
    });
    if (paths.length === 0) {
      reader?.close();
      reader = undefined;
    }
    // Per regular file, the size, mode and time of its current version: a file whose lstat
    // shows them again is not read (unless --checksum).
    // (None to compare with in an empty namespace: a first put skips the pass over every file.)
    const expected = current !== undefined && current.versions.size > 0 && !options.checksum
      ? expectedSignatures(files, positions, paths.length, current)
      : undefined;
    if (!streamed || listed.reordered) reader?.begin(paths, sessionHashing(batch), expected);
    // The puts of the session are made in file order (so are their results).
    let next = 0;
    const turns = new Map<number, () => void>();
    const waitTurn = (i: number) =>
      i === next ? Promise.resolve() : new Promise<void>((r) => turns.set(i, r));
    const passTurn = () => {
      next++;
      turns.get(next)?.();
      turns.delete(next);
    };
    await pool(files, async (f, i) => {
      // Reading (and comparing with the current version) overlaps across files.
      let body: Uint8Array | Deno.FsFile | Error | "unchanged";
      let metadata: Record<string, string> = {};
      let opened: OpenedFile | undefined;
      // A file the worker read: released once its bytes are no longer used (its buffer is reused).
      let taken = false;
      try {
        if (!f.dir && !f.symlink) {
          const read = await reader?.take(positions[i]!);
          taken = read !== undefined;
          if (read instanceof Error) throw read;
          opened = read ?? matchStat(f.path, expected?.[positions[i]!]) ?? openRegular(f.path);
        }
        const check = options.force
          ? undefined
          : await compare(store, namespace, current, f, opened);
        if (check === "unchanged") body = "unchanged";
        else if (opened !== undefined) {
          metadata = fileMetadata(opened.info);
          body = check ?? opened.bytes ??
            (opened.info.size <= SMALL_FILE_BYTES
              ? await Deno.readFile(f.path)
              : await Deno.open(f.path, { read: true }));
        } else if (check !== undefined) {
          metadata = listedFileMetadata(f) ?? fileMetadata(await Deno.lstat(f.path));
          body = check;
        } else if (f.symlink) {
          metadata = fileMetadata(await Deno.lstat(f.path));
          body = new TextEncoder().encode(await Deno.readLink(f.path));
        } else if (f.dir) {
          metadata = listedFileMetadata(f) ?? fileMetadata(await Deno.lstat(f.path));
          body = new Uint8Array(0);
        } else {
          metadata = listedFileMetadata(f) ?? fileMetadata(await Deno.stat(f.path));
          body = f.size <= SMALL_FILE_BYTES
            ? await Deno.readFile(f.path)
            : await Deno.open(f.path, { read: true });
        }
      } catch (e) {
        body = e instanceof Error ? e : new Error(String(e));
      }
      if (f.escaped) metadata[ESCAPED_META] = "1";
      await waitTurn(i);
      try {
        if (body === "unchanged") {
          unchanged++;
          progress?.update(++done, bytesPayload(bytes));
          return;
        }
        putPaths.push(f.path);
        if (body instanceof Error) {
          // A put that fails alone, with the read error.
          await batch.put(namespace, f.key, errorStream(body));
        } else if (body instanceof Uint8Array && body === opened?.bytes) {
          // Read (and perhaps hashed and tried) by the reader: what it computed is not redone.
          await putPrepared(batch, namespace, f.key, {
            bytes: body,
            digest: opened.digest,
            algorithm: opened.algorithm,
            compression: opened.compression,
          }, { metadata });
        } else if (body instanceof Uint8Array) {
          await batch.put(namespace, f.key, body, { metadata });
        } else {
          const file = body;
          await batch.put(namespace, f.key, file.readable, { metadata }).catch((e) => {
            try {
              file.close();
            } catch { /* the stream closed it */ }
            throw e;
          });
        }
      } finally {
        passTurn();
        if (taken) reader!.release(positions[i]!);
      }
    }, {
      concurrency: options.parallelism ?? DEFAULT_TREE_PARALLELISM,
      signal: options.signal,
    }).catch((e) => {
      if (options.signal?.aborted !== true) throw e;
      interrupted = true;
    });
    await batch.close();
  } finally {
    reader?.close();
    await batch.close().catch(() => {});
    progress?.stop();
  }
  if (failures.length > 0) {
    const first = failures[0]!;
    about(
      failures.length === 1
        ? first.path
        : `${first.path} (and ${failures.length - 1} more files not stored; the others were)`,
      first.error,
    );
  }
  const newBytes = ((await store.status()).counts?.packBytes ?? 0) - packBytesBefore;
  return {
    files: stored + unchanged,
    total: files.length,
    newVersions: stored,
    unchanged,
    bytes,
    newBytes,
    interrupted,
    skipped,
    readByWorker: reader?.filesRead ?? 0,
  };
}

/** What skip-unchanged compares a file with: its key's current version. */
interface CurrentVersion {
  /** The body's size. */
  size: number;
  /** The body's digest. */
  digest: string;
  /** The metadata entries {@linkcode fileMetadata} records, as stored. */
  meta: Array<string | undefined>;
}

/** The metadata entries skip-unchanged compares. */
const COMPARED_META = [TYPE_META, MODE_META, MTIME_META, ESCAPED_META] as const;

/**
 * The current versions of a namespace's keys under a prefix, read in one
 * listing (a key outside the prefix, an escaped key whose prefix was escaped
 * too, is looked up on its own).
 */
export interface CurrentVersions {
  /** The prefix the listing covers. */
  prefix: string;
  /** The current versions by key. */
  versions: Map<string, CurrentVersion>;
}

/**
 * The current versions of every key of `namespace` under `prefix`, read
 * once, in pages (`Store.iterate`): what {@linkcode isUnchanged} compares
 * each file with. An empty namespace costs one empty page, where a lookup
 * per file cost an index query (and a not-found error) for every file.
 * @param store The store.
 * @param namespace The namespace.
 * @param prefix The key prefix of the tree.
 * @returns The versions.
 */
export async function currentVersions(
  store: Store,
  namespace: string,
  prefix: string,
): Promise<CurrentVersions> {
  const versions = new Map<string, CurrentVersion>();
  for await (const a of store.iterate(namespace, prefix === "" ? {} : { prefix })) {
    versions.set(a.key, versionOf(a));
  }
  return { prefix, versions };
}

function versionOf(a: ArtifactInfo): CurrentVersion {
  return { size: a.size, digest: a.digest, meta: COMPARED_META.map((n) => a.metadata[n]) };
}

/**
 * Per regular file of the tree (by its place among the read paths), the
 * {@linkcode signatureOf} its key's current version: that of a regular file
 * under the same kind of key (escaped or not), with a recorded mode and
 * time; `null` where there is none.
 */
function expectedSignatures(
  files: readonly TreeFile[],
  positions: Int32Array,
  count: number,
  current: CurrentVersions,
): Array<string | null> {
  const out = new Array<string | null>(count).fill(null);
  const at = (n: typeof COMPARED_META[number]) => COMPARED_META.indexOf(n);
  const [TYPE, MODE, MTIME, ESCAPED] = [
    at(TYPE_META),
    at(MODE_META),
    at(MTIME_META),
    at(ESCAPED_META),
  ];
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if (positions[i]! < 0 || !f.key.startsWith(current.prefix)) continue;
    const v = current.versions.get(f.key);
    if (v === undefined || v.meta[TYPE] !== undefined) continue;
    if (v.meta[ESCAPED] !== (f.escaped ? "1" : undefined)) continue;
    const [mode, mtime] = [v.meta[MODE], v.meta[MTIME]];
    if (mode !== undefined && mtime !== undefined) {
      out[positions[i]!] = signatureOf(v.size, mode, mtime);
    }
  }
  return out;
}

/**
 * Whether the current version of a file's key already holds it: the same
 * size, the same recorded mode, time and kind ({@linkcode fileMetadata}),
 * and the same digest (the file is read and hashed, nothing is written):
 * the comparison of `put --from --checksum`. The size, mode and time of a
 * regular file are those the listing recorded.
 * @param store The store.
 * @param namespace The namespace.
 * @param f The file or link.
 * @param current The current versions read beforehand ({@linkcode currentVersions});
 *   without them, the key's current version is looked up.
 * @returns `true` when storing it again would only repeat the current version.
 */
export async function isUnchanged(
  store: Store,
  namespace: string,
  f: TreeFile,
  current?: CurrentVersions,
): Promise<boolean> {
  return (await compare(store, namespace, current, f)) === "unchanged";
}

/**
 * {@linkcode isUnchanged}, handing back the bytes of a small regular file it
 * read to hash, so that a changed file is not read twice.
 * @param opened A regular file opened already: its `fstat` and its bytes are compared (or
 *   its `lstat` alone, when it `matched` its current version's size, mode and time).
 * @returns `"unchanged"`, the bytes read, or `undefined` (changed, nothing kept).
 */
async function compare(
  store: Store,
  namespace: string,
  current: CurrentVersions | undefined,
  f: TreeFile,
  opened?: OpenedFile,
): Promise<"unchanged" | Uint8Array | undefined> {
  let version: CurrentVersion | undefined;
  if (current !== undefined && f.key.startsWith(current.prefix)) {
    version = current.versions.get(f.key);
  } else {
    try {
      version = versionOf(await store.stat(namespace, f.key));
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  }
  if (version === undefined) return undefined;
  const listed = opened === undefined ? listedFileMetadata(f) : undefined;
  const meta = opened !== undefined
    ? fileMetadata(opened.info)
    : listed ?? fileMetadata(await Deno.lstat(f.path));
  if (f.escaped) meta[ESCAPED_META] = "1";
  for (let i = 0; i < COMPARED_META.length; i++) {
    if (meta[COMPARED_META[i]!] !== version.meta[i]) return undefined;
  }
  if (store.state === "Corrupted") return undefined;
  const hasher = store.digestHasher();
  let body: Uint8Array | undefined;
  if (f.symlink) {
    hasher.update(new TextEncoder().encode(await Deno.readLink(f.path)));
  } else if (f.dir) {
    if (version.size !== 0) return undefined;
  } else {
    const size = opened !== undefined
      ? opened.info.size
      : listed !== undefined
      ? f.size
      : (await Deno.lstat(f.path)).size;
    if (size !== version.size) return undefined;
    // Its lstat showed the size, mode and time of the current version: taken as unchanged unread.
    if (opened?.matched) return "unchanged";
    if (opened?.bytes !== undefined) {
      body = opened.bytes;
      // Hashed by the reader already when the store's digests are its plain hash.
      if (opened.digest !== undefined) return opened.digest === version.digest ? "unchanged" : body;
      hasher.update(body);
    } else if (size <= SMALL_FILE_BYTES) {
      body = await Deno.readFile(f.path);
      hasher.update(body);
    } else {
      const file = await Deno.open(f.path, { read: true });
      for await (const piece of file.readable) hasher.update(piece); // closes the file at its end
    }
  }
  return hasher.digestHex() === version.digest ? "unchanged" : body;
}

/**
 * Writes a symbolic link at `path` holding `target`, atomically (a link
 * under a temporary name, renamed over `path`): the link is made, never
 * followed, so a target outside the restored tree writes nothing there.
 * @param path Where the link goes.
 * @param target What it points to, as stored.
 */
async function writeSymlinkAtomic(path: string, target: string): Promise<void> {
  const tmp = `${path.slice(0, path.lastIndexOf("/") + 1)}.capsa-link-${
    crypto.randomUUID().slice(0, 8)
  }.tmp`;
  await Deno.symlink(target, tmp);
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Gives a restored file or directory what `put --from` recorded about it
 * (see {@linkcode fileMetadata}): its permission bits and modification
 * time; a symbolic link its own time (the link's, never its target's).
 * Artifacts stored otherwise carry neither and keep the defaults.
 * @param path The restored file, directory or link.
 * @param info The artifact it was restored from.
 */
export async function restoreFileMetadata(path: string, info: ArtifactInfo): Promise<void> {
  const link = info.metadata[TYPE_META] === "symlink";
  const { mode, mtime } = recordedMetadata(info);
  if (!link && mode !== undefined) await Deno.chmod(path, mode);
  if (mtime !== undefined) {
    if (link) await lutimes(path, mtime, mtime);
    else await Deno.utime(path, mtime, mtime);
  }
}

/**
 * The permission bits and modification time `put --from` recorded of a
 * file, as they are restored (no bits on Windows; malformed values ignored).
 * @param info The artifact.
 * @returns Its mode and time, each when recorded.
 */
function recordedMetadata(info: ArtifactInfo): { mode?: number; mtime?: Date } {
  const out: { mode?: number; mtime?: Date } = {};
  const mode = info.metadata[MODE_META];
  if (mode !== undefined && /^[0-7]{1,4}$/.test(mode) && Deno.build.os !== "windows") {
    out.mode = parseInt(mode, 8);
  }
  const mtime = info.metadata[MTIME_META];
  if (mtime !== undefined && /^-?\d{1,15}$/.test(mtime)) out.mtime = new Date(Number(mtime));
  return out;
}

/** A body that fails at once with `error`. */
function errorStream(error: Error): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.error(error);
    },
  });
}

/** The longest file name (one path segment) most file systems take, in bytes. */
export const MAX_FILE_NAME_BYTES = 255;

/**
 * The relative path segments an artifact key is restored to, or why it
 * cannot be: a key is data, and a key such as `../x`, `/etc/x` or `a//b`
 * must never write outside the target directory, nor one segment be a name
 * no file can have here (longer than {@linkcode MAX_FILE_NAME_BYTES}, a NUL
 * byte; on Windows also a backslash or a character it forbids). On Linux and
 * macOS a backslash is an ordinary character of a file name.
 * @param key The key.
 * @returns The segments, or the reason for refusing.
 */
export function keyToSegments(key: string): string[] | { refused: string } {
  const windows = Deno.build.os === "windows";
  if (windows && key.includes("\\")) return { refused: "it holds a backslash" };
  if (key.startsWith("/")) return { refused: "it is absolute" };
  const segments = key.split("/");
  for (const s of segments) {
    if (s === "") return { refused: "it has an empty path segment" };
    if (s === "." || s === "..") return { refused: `it has a "${s}" segment` };
    if (s.includes("\0")) return { refused: "it holds a NUL character" };
    if (utf8.encode(s).length > MAX_FILE_NAME_BYTES) {
      return { refused: `a path segment is longer than ${MAX_FILE_NAME_BYTES} bytes` };
    }
    // deno-lint-ignore no-control-regex
    if (windows && /[:*?"<>|\x00-\x1f]/.test(s)) {
      return { refused: "it holds a character Windows forbids in file names" };
    }
  }
  return segments;
}

const utf8 = new TextEncoder();

/** One artifact {@linkcode getTree} did not restore, and why. */
export interface TreeProblem {
  /** Its key. */
  key: string;
  /** An error code (`unsafe_key`, `key_conflict`, `corrupt_object`, …). */
  code: string;
  /** What happened. */
  message: string;
}

/** Options of {@linkcode getTree}. */
export interface GetTreeOptions {
  /** Only keys starting with this (default all). */
  prefix?: string;
  /** Files written at once (default {@linkcode DEFAULT_TREE_PARALLELISM}). */
  parallelism?: number;
  /** A progress bar (files; bytes as payload). */
  progress?: Progress;
  /** Called for each artifact not restored, as soon as it is known. */
  onProblem?: (problem: TreeProblem) => void;
}

/** What {@linkcode getTree} reports. */
export interface GetTreeResult {
  /** Files restored. */
  files: number;
  /** Artifacts listed (restored or not). */
  total: number;
  /** Bytes written. */
  bytes: number;
  /** The resolved target directory. */
  to: string;
  /** Every artifact not restored, in key order. */
  problems: TreeProblem[];
}

/**
 * Whether a failure belongs to one artifact (the restore goes on without it)
 * rather than to the store or the target as a whole (the restore stops).
 */
function isArtifactFailure(e: unknown): boolean {
  if (e instanceof CapsaError) {
    return ["corrupt_object", "not_found", "unsafe_path", "is_a_directory"].includes(e.code);
  }
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENAMETOOLONG" || code === "EILSEQ" || code === "EINVAL";
}

function problemOf(key: string, e: unknown): TreeProblem {
  if (e instanceof CapsaError) return { key, code: e.code, message: e.message };
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  return { key, code: code === "ENAMETOOLONG" ? "unsafe_key" : "io_error", message };
}

/**
 * Restores the artifacts of `namespace` (under `prefix`) into `dir`, each at
 * its key as a relative path, each file written atomically. Everything that
 * can be restored safely is: a key that would land outside `dir` or cannot
 * be a file name here, a key that is also the directory of other keys (`a`
 * beside `a/b`), and an artifact whose bytes are damaged are each skipped,
 * reported through `onProblem` and in the result, and the rest is restored.
 * A failure of the store or of the target as a whole (disk full, store
 * unreachable) stops the restore with its error, its message saying how far
 * it got. Directories are created here and never followed through a
 * symbolic link.
 *
 * @param store The store.
 * @param namespace The namespace.
 * @param dir The target directory (created if missing).
 * @param options Prefix, parallelism, progress, problem reporting.
 * @returns Counts, the problems and the resolved target.
 */
export async function getTree(
  store: Store,
  namespace: string,
  dir: string,
  options: GetTreeOptions = {},
): Promise<GetTreeResult> {
  const problems: TreeProblem[] = [];
  const report = (p: TreeProblem) => {
    problems.push(p);
    options.onProblem?.(p);
  };
  const listed: Array<{ info: ArtifactInfo; segments: string[]; dir: boolean }> = [];
  const dirs = new Set<string>();
  let total = 0;
  for await (const info of listAll(store, namespace, options.prefix)) {
    total++;
    // An escaped key (a name holding a newline…) is restored under its own name.
    const path = info.metadata[ESCAPED_META] === "1" ? unescapeKeyPath(info.key) : info.key;
    // A directory `d/.` (the tree's own: `.`) restores as `d`, with its mode and time.
    const isDir = info.metadata[TYPE_META] === "dir" && (path === "." || path.endsWith("/."));
    const filePath = isDir ? path.slice(0, -2) : path;
    const segments = isDir && filePath === "" ? [] : keyToSegments(filePath);
    if (!Array.isArray(segments)) {
      report({
        key: info.key,
        code: "unsafe_key",
        message: `not restored: it cannot be a file under ${dir} (${segments.refused}); ` +
          "restore it with get -o FILE",
      });
      continue;
    }
    for (let i = 1; i <= segments.length - (isDir ? 0 : 1); i++) {
      dirs.add(segments.slice(0, i).join("/"));
    }
    listed.push({ info, segments, dir: isDir });
  }
  const items = listed.filter(({ info, segments, dir }) => {
    if (dir || !dirs.has(segments.join("/"))) return true;
    report({
      key: info.key,
      code: "key_conflict",
      message: "not restored: it is both a file and the directory of other keys; " +
        "restore it with get -o FILE",
    });
    return false;
  });
  await Deno.mkdir(dir, { recursive: true });
  const root = await Deno.realPath(dir);
  const made = new Map<string, Promise<void>>();
  const ensureDir = (rel: string): Promise<void> => {
    let p = made.get(rel);
    if (!p) {
      p = (async () => {
        const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
        if (parent !== "") await ensureDir(parent);
        const abs = `${root}/${rel}`;
        await Deno.mkdir(abs).catch((e) => {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        });
        const st = await Deno.lstat(abs);
        if (!st.isDirectory || st.isSymlink) {
          throw new CapsaError(
            "unsafe_path",
            `${abs} exists and is not a directory (or is a symbolic link): refusing to write through it`,
          );
        }
      })();
      made.set(rel, p);
    }
    return p;
  };
  const progress = options.progress;
  let done = 0;
  let restored = 0;
  let bytes = 0;
  let fatal: { error: unknown; key: string } | undefined;
  progress?.start(items.length, bytesPayload(0));
  try {
    await pool(items, async (item) => {
      if (fatal) return;
      const rel = item.segments.join("/");
      try {
        if (item.dir) {
          // Made here (an empty directory too); its mode and time are given once it is full.
          if (rel !== "") await ensureDir(rel);
          restored++;
          progress?.update(++done, bytesPayload(bytes));
          return;
        }
        if (item.segments.length > 1) await ensureDir(item.segments.slice(0, -1).join("/"));
        if (item.info.metadata[TYPE_META] !== "symlink" && item.info.size <= SMALL_FILE_BYTES) {
          // A small file: read whole, written with synchronous calls (no round trip to the I/O
          // threads for each), its mode and time given before it takes its name.
          const content = await store.get(namespace, item.info.key, {
            version: item.info.version,
          });
          writeSmallFileAtomicSync(`${root}/${rel}`, content, recordedMetadata(item.info));
          bytes += content.length;
          restored++;
          progress?.update(++done, bytesPayload(bytes));
          return;
        }
        const body = await store.getStream(namespace, item.info.key, {
          version: item.info.version,
        });
        if (item.info.metadata[TYPE_META] === "symlink") {
          const target = await new Response(body).text();
          await writeSymlinkAtomic(`${root}/${rel}`, target);
          await restoreFileMetadata(`${root}/${rel}`, item.info);
          bytes += item.info.size;
        } else {
          const written = await writeFileAtomic(`${root}/${rel}`, body);
          await restoreFileMetadata(`${root}/${rel}`, item.info);
          bytes += written; // not `bytes += await …`: that reads `bytes` before the await
        }
        restored++;
      } catch (e) {
        if (isArtifactFailure(e)) report(problemOf(item.info.key, e));
        else fatal ??= { error: e, key: item.info.key };
      }
      progress?.update(++done, bytesPayload(bytes));
    }, { concurrency: options.parallelism ?? DEFAULT_TREE_PARALLELISM });
    // Directories last, deepest first: writing into one changes its time, and a
    // read-only one must stay writable until it is full.
    const dirItems = items.filter((i) => i.dir).sort((a, b) =>
      b.segments.length - a.segments.length
    );
    for (const item of fatal ? [] : dirItems) {
      const rel = item.segments.join("/");
      try {
        await restoreFileMetadata(rel === "" ? root : `${root}/${rel}`, item.info);
      } catch (e) {
        if (isArtifactFailure(e)) report(problemOf(item.info.key, e));
        else fatal ??= { error: e, key: item.info.key };
      }
    }
  } finally {
    progress?.stop();
  }
  if (fatal) {
    about(
      `restore stopped after ${restored} of ${total} files, at ${namespace}/${fatal.key}`,
      fatal.error,
    );
  }
  problems.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { files: restored, total, bytes, to: root, problems };
}
