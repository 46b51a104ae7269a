/**
 * The tree transfers behind `capsa put --from DIR` and `capsa get --to DIR`
 * (and the demo): every file under a directory into a namespace, and every
 * artifact of a namespace back into a directory, a bounded number at once
 * (`pool.ts`), each body streamed, each file written atomically.
 *
 * @module
 */

import { CapsaError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { createHasher } from "../format/hashing.ts";
import { validateArtifactKey } from "../format/manifest.ts";
import { pool } from "../pool.ts";
import type { ArtifactInfo, Store } from "../store/store.ts";
import { writeFileAtomic } from "./_files.ts";
import { bytesPayload, type Progress } from "./_progress.ts";
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
  /** Its size when listed. */
  size: number;
  /** Whether it is a symbolic link (stored as the link, never followed). */
  symlink?: boolean;
}

/** The metadata entry naming what an artifact restores as: `symlink` (absent: a file). */
export const TYPE_META = "capsa.type";
/** The metadata entry holding a file's permission bits, in octal (`755`). */
export const MODE_META = "capsa.mode";
/** The metadata entry holding a file's modification time, in ms since the epoch. */
export const MTIME_META = "capsa.mtime";

/**
 * What `put --from` records about a file besides its bytes: its permission
 * bits and modification time; for a symbolic link, that it is one (its
 * body is the link's target; its own mode and time are not kept).
 *
 * @param info The file's `lstat` (a symbolic link's own, never its target's).
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
export function fileMetadata(info: Deno.FileInfo): Record<string, string> {
  if (info.isSymlink) return { [TYPE_META]: "symlink" };
  const meta: Record<string, string> = {};
  if (info.mode !== null) meta[MODE_META] = (info.mode & 0o7777).toString(8);
  if (info.mtime !== null) meta[MTIME_META] = String(info.mtime.getTime());
  return meta;
}

/**
 * Lists the regular files and symbolic links under `dir`, recursively, in
 * key order. Symbolic links are never followed: each is one entry.
 * @param dir The directory.
 * @param prefix A key prefix.
 * @returns The files, and the special files (FIFOs, sockets, devices) skipped.
 */
export async function listTree(
  dir: string,
  prefix = "",
): Promise<{ files: TreeFile[]; skipped: string[] }> {
  const root = dir.replace(/[/\\]+$/, "") || "/";
  const info = await Deno.stat(root);
  if (!info.isDirectory) throw new InvalidArgumentError(`${dir} is not a directory`);
  const files: TreeFile[] = [];
  const skipped: string[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    for await (const e of Deno.readDir(abs)) {
      const path = `${abs}/${e.name}`;
      const key = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymlink) files.push({ path, key: prefix + key, size: 0, symlink: true });
      else if (e.isDirectory) await walk(path, key);
      else if (e.isFile) {
        files.push({ path, key: prefix + key, size: (await Deno.lstat(path)).size });
      } else skipped.push(key);
    }
  };
  await walk(root, "");
  files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { files, skipped };
}

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
   * Stops the transfer: no file is started after it aborts, the files being
   * stored finish, and the result says `interrupted`.
   */
  signal?: AbortSignal;
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
}

/**
 * Stores every regular file under `dir` in `namespace`, keys being the
 * paths relative to `dir` with `/` (after `prefix`), streaming each file, a
 * bounded number at once. Every key is checked before the first put, so a
 * bad file name changes nothing. Flushes before returning.
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
  const { files, skipped } = await listTree(dir, options.prefix ?? "");
  for (const f of files) {
    try {
      validateArtifactKey(f.key);
    } catch (e) {
      about(`${f.path} cannot be stored (nothing was stored)`, e);
    }
  }
  const progress = options.progress;
  let done = 0;
  let bytes = 0;
  let unchanged = 0;
  const packBytesBefore = (await store.status()).counts?.packBytes ?? 0;
  let interrupted = false;
  progress?.start(files.length, bytesPayload(0));
  try {
    await pool(files, async (f) => {
      if (!options.force && await isUnchanged(store, namespace, f)) {
        unchanged++;
        progress?.update(++done, bytesPayload(bytes));
        return;
      }
      if (f.symlink) {
        try {
          bytes += (await putSymlink(store, namespace, f)).size;
        } catch (e) {
          about(f.path, e);
        }
        progress?.update(++done, bytesPayload(bytes));
        return;
      }
      const file = await Deno.open(f.path, { read: true });
      try {
        const metadata = fileMetadata(await file.stat());
        const info = await store.put(namespace, f.key, file.readable, { metadata });
        bytes += info.size;
      } catch (e) {
        try {
          file.close();
        } catch { /* the stream closed it */ }
        about(f.path, e);
      }
      progress?.update(++done, bytesPayload(bytes));
    }, {
      concurrency: options.parallelism ?? DEFAULT_TREE_PARALLELISM,
      signal: options.signal,
    }).catch((e) => {
      if (options.signal?.aborted !== true) throw e;
      interrupted = true;
    });
    await store.flush();
  } finally {
    progress?.stop();
  }
  const newBytes = ((await store.status()).counts?.packBytes ?? 0) - packBytesBefore;
  return {
    files: done,
    total: files.length,
    newVersions: done - unchanged,
    unchanged,
    bytes,
    newBytes,
    interrupted,
    skipped,
  };
}

/**
 * Whether the current version of a file's key already holds it: the same
 * size, the same recorded mode, time and kind ({@linkcode fileMetadata}),
 * and the same digest (the file is read and hashed, nothing is written).
 * @param store The store.
 * @param namespace The namespace.
 * @param f The file or link.
 * @returns `true` when storing it again would only repeat the current version.
 */
export async function isUnchanged(store: Store, namespace: string, f: TreeFile): Promise<boolean> {
  let current: ArtifactInfo;
  try {
    current = await store.stat(namespace, f.key);
  } catch (e) {
    if (e instanceof NotFoundError) return false;
    throw e;
  }
  const info = await Deno.lstat(f.path);
  const meta = fileMetadata(info);
  for (const name of [TYPE_META, MODE_META, MTIME_META]) {
    if (meta[name] !== current.metadata[name]) return false;
  }
  const hash = store.descriptor?.hash;
  if (hash === undefined) return false;
  const hasher = createHasher(hash);
  if (f.symlink) {
    hasher.update(new TextEncoder().encode(await Deno.readLink(f.path)));
  } else {
    if (info.size !== current.size) return false;
    const file = await Deno.open(f.path, { read: true });
    for await (const piece of file.readable) hasher.update(piece); // closes the file at its end
  }
  return hasher.digestHex() === current.digest;
}

/**
 * Stores a symbolic link as an artifact: its body is the link's target as
 * written (never followed), its metadata says it is a link.
 * @param store The store.
 * @param namespace The namespace.
 * @param f The link.
 * @returns What the put reports.
 */
async function putSymlink(store: Store, namespace: string, f: TreeFile): Promise<ArtifactInfo> {
  const target = await Deno.readLink(f.path);
  const metadata = fileMetadata(await Deno.lstat(f.path));
  return await store.put(namespace, f.key, new TextEncoder().encode(target), { metadata });
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
 * Gives a restored file what `put --from` recorded about it (see
 * {@linkcode fileMetadata}): its permission bits and modification time.
 * Artifacts stored otherwise carry neither and keep the defaults.
 * @param path The restored file.
 * @param info The artifact it was restored from.
 */
export async function restoreFileMetadata(path: string, info: ArtifactInfo): Promise<void> {
  const mode = info.metadata[MODE_META];
  if (mode !== undefined && /^[0-7]{1,4}$/.test(mode) && Deno.build.os !== "windows") {
    await Deno.chmod(path, parseInt(mode, 8));
  }
  const mtime = info.metadata[MTIME_META];
  if (mtime !== undefined && /^-?\d{1,15}$/.test(mtime)) {
    const t = new Date(Number(mtime));
    await Deno.utime(path, t, t);
  }
}

/**
 * The relative path segments an artifact key is restored to, or why it
 * cannot be: a key is data, and a key such as `../x`, `/etc/x`, `a//b` or
 * `a\b` must never write outside the target directory.
 * @param key The key.
 * @returns The segments, or the reason for refusing.
 */
export function keyToSegments(key: string): string[] | { refused: string } {
  if (key.includes("\\")) return { refused: "it holds a backslash" };
  if (key.startsWith("/")) return { refused: "it is absolute" };
  const segments = key.split("/");
  for (const s of segments) {
    if (s === "") return { refused: "it has an empty path segment" };
    if (s === "." || s === "..") return { refused: `it has a "${s}" segment` };
    if (Deno.build.os === "windows" && /[:*?"<>|]/.test(s)) {
      return { refused: "it holds a character Windows forbids in file names" };
    }
  }
  return segments;
}

/** Options of {@linkcode getTree}. */
export interface GetTreeOptions {
  /** Only keys starting with this (default all). */
  prefix?: string;
  /** Files written at once (default {@linkcode DEFAULT_TREE_PARALLELISM}). */
  parallelism?: number;
  /** A progress bar (files; bytes as payload). */
  progress?: Progress;
}

/**
 * Restores the artifacts of `namespace` (under `prefix`) into `dir`, each at
 * its key as a relative path, each file written atomically. Every key is
 * checked first: if one would land outside `dir` (or two conflict, like `a`
 * and `a/b`), nothing is written. Directories are created here and never
 * followed through a symbolic link.
 *
 * @param store The store.
 * @param namespace The namespace.
 * @param dir The target directory (created if missing).
 * @param options Prefix, parallelism, progress.
 * @returns Counts and the resolved target.
 */
export async function getTree(
  store: Store,
  namespace: string,
  dir: string,
  options: GetTreeOptions = {},
): Promise<{ files: number; bytes: number; to: string }> {
  const items: Array<{ info: ArtifactInfo; segments: string[] }> = [];
  const dirs = new Set<string>();
  for await (const info of listAll(store, namespace, options.prefix)) {
    const segments = keyToSegments(info.key);
    if (!Array.isArray(segments)) {
      throw new CapsaError(
        "unsafe_key",
        `key ${JSON.stringify(info.key)} would be written outside ${dir} (${segments.refused}): ` +
          "nothing was restored; restore the other keys with --prefix, and this one with -o FILE",
      );
    }
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join("/"));
    items.push({ info, segments });
  }
  for (const { info } of items) {
    if (dirs.has(info.key)) {
      throw new CapsaError(
        "key_conflict",
        `key ${JSON.stringify(info.key)} is both a file and a directory of other keys: ` +
          "nothing was restored; restore them separately with --prefix or -o FILE",
      );
    }
  }
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
  let bytes = 0;
  progress?.start(items.length, bytesPayload(0));
  try {
    await pool(items, async (item) => {
      const rel = item.segments.join("/");
      try {
        if (item.segments.length > 1) await ensureDir(item.segments.slice(0, -1).join("/"));
        const body = await store.getStream(namespace, item.info.key, {
          version: item.info.version,
        });
        if (item.info.metadata[TYPE_META] === "symlink") {
          const target = await new Response(body).text();
          await writeSymlinkAtomic(`${root}/${rel}`, target);
          bytes += item.info.size;
        } else {
          const written = await writeFileAtomic(`${root}/${rel}`, body);
          await restoreFileMetadata(`${root}/${rel}`, item.info);
          bytes += written; // not `bytes += await …`: that reads `bytes` before the await
        }
      } catch (e) {
        about(`${namespace}/${item.info.key}`, e);
      }
      progress?.update(++done, bytesPayload(bytes));
    }, { concurrency: options.parallelism ?? DEFAULT_TREE_PARALLELISM });
  } finally {
    progress?.stop();
  }
  return { files: items.length, bytes, to: root };
}
