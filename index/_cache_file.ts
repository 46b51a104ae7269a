/**
 * The host cache as a SQLite database file (docs/FORMAT.md §3): the file is
 * opened in place, so an open reads nothing but the pages its queries touch.
 *
 * A published cache is a SQLite file whose header carries a stamp: the
 * XXH64 of the whole file (read with the stamp's own bytes as zeros), in the
 * `user_version` (offset 60) and `application_id` (offset 68) fields, which
 * capsa does not otherwise use. The stamp guards against a torn or damaged
 * file on the host's own disk, not against an adversary, so a fast
 * non-cryptographic hash serves (a 315 MB cache: 0.03 s against SHA-256's
 * 0.2 s). A cache stamped by an older capsa with the first 8 bytes of the
 * SHA-256 is still accepted (docs/FORMAT.md §3). A file is only ever
 * published by a rename after it was closed and stamped, so a reader sees a
 * whole cache or none; a torn or damaged one fails the stamp and is ignored.
 * Working copies (`,tmp.work-<pid>-<random>` beside the cache) belong to one
 * process, which holds a lock on each; one nobody holds (its process
 * crashed) is deleted.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { createXXHash64 } from "hash-wasm";
import { CorruptObjectError } from "../errors.ts";

/** The first 16 bytes of every SQLite database file. */
const SQLITE_MAGIC = new TextEncoder().encode("SQLite format 3\0");
/** Offsets of the two 4-byte header fields that hold the stamp. */
const STAMP_AT = [60, 68] as const;
/** The name prefix of working copies (the localfs driver's temporary prefix: never listed). */
const WORK_PREFIX = ",tmp.work-";
/** The size of each read while hashing: bounded memory, whatever the file's size. */
const PIECE = 4 * 1024 * 1024;

/**
 * Whether bytes start like a SQLite database file.
 * @param head At least the first 16 bytes of a file.
 * @returns `true` for a SQLite file.
 */
export function isSqliteHeader(head: Uint8Array): boolean {
  return head.length >= 16 && SQLITE_MAGIC.every((b, i) => head[i] === b);
}

/** The page size a SQLite header announces (0 when invalid). */
function pageSizeOf(head: Uint8Array): number {
  const raw = (head[16]! << 8) | head[17]!;
  const size = raw === 1 ? 65536 : raw;
  return size >= 512 && (size & (size - 1)) === 0 ? size : 0;
}

/** The stamp's hash: XXH64 (written), or the first 8 bytes of SHA-256 (older caches, still read). */
type StampHash = "xxh64" | "sha256";

/** Hashes a file read in pieces, the stamp's bytes read as zeros; also its first 100 bytes. */
async function digestOf(
  path: string,
  algorithm: StampHash,
): Promise<{ stamp: Uint8Array; head: Uint8Array }> {
  let update: (piece: Uint8Array) => void;
  let digest: () => Uint8Array;
  if (algorithm === "xxh64") {
    const h = await createXXHash64();
    h.init();
    update = (piece) => h.update(piece);
    digest = () => h.digest("binary");
  } else {
    const h = createHash("sha256");
    update = (piece) => h.update(piece);
    digest = () => new Uint8Array(h.digest().buffer, 0, 8);
  }
  const buffer = new Uint8Array(PIECE);
  const head = new Uint8Array(100);
  let at = 0;
  using file = await Deno.open(path, { read: true });
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    const piece = buffer.subarray(0, n);
    if (at < 100) head.set(piece.subarray(0, Math.min(n, 100 - at)), at);
    for (const offset of STAMP_AT) {
      for (let i = offset; i < offset + 4; i++) if (i >= at && i < at + n) piece[i - at] = 0;
    }
    update(piece);
    at += n;
  }
  return { stamp: digest(), head };
}

/**
 * Stamps a closed database file so that it can be published.
 * @param path The file (no connection may have it open for writing).
 * @param durable Flush it to the disk before returning.
 */
export async function stampFile(path: string, durable: boolean): Promise<void> {
  const { stamp } = await digestOf(path, "xxh64");
  using file = await Deno.open(path, { read: true, write: true });
  await file.seek(STAMP_AT[0], Deno.SeekMode.Start);
  await writeAll(file, stamp.subarray(0, 4));
  await file.seek(STAMP_AT[1], Deno.SeekMode.Start);
  await writeAll(file, stamp.subarray(4, 8));
  if (durable) await file.sync();
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/**
 * Checks a published cache file: SQLite header, size a whole number of
 * pages, and the stamp. Reads the whole file once, in pieces (twice when the
 * stamp does not match XXH64: an older cache stamped with SHA-256).
 * @param path The file.
 * @param key Its name, for errors.
 * @throws {CorruptObjectError} when it fails a check.
 * @throws {Deno.errors.NotFound} when it does not exist.
 */
export async function checkStampedFile(path: string, key: string): Promise<void> {
  const { size } = await Deno.stat(path);
  const { stamp, head } = await digestOf(path, "xxh64");
  if (!isSqliteHeader(head)) throw new CorruptObjectError(key, "not a SQLite database");
  const pageSize = pageSizeOf(head);
  if (pageSize === 0 || size % pageSize !== 0 || size < pageSize) {
    throw new CorruptObjectError(key, `torn: ${size} bytes is not a whole number of pages`);
  }
  const view = new DataView(head.buffer);
  // The page count in the header is valid when its "version valid for" matches the change counter.
  if (view.getUint32(92) === view.getUint32(24) && view.getUint32(28) * pageSize !== size) {
    throw new CorruptObjectError(
      key,
      `torn: the header announces ${view.getUint32(28)} pages, the file holds ${size / pageSize}`,
    );
  }
  const stored = [
    ...head.subarray(STAMP_AT[0], STAMP_AT[0] + 4),
    ...head.subarray(STAMP_AT[1], STAMP_AT[1] + 4),
  ];
  const matches = (s: Uint8Array) => stored.every((b, i) => b === s[i]);
  // A cache stamped before XXH64 (SHA-256): read once more with the old hash before refusing it.
  if (!matches(stamp) && !matches((await digestOf(path, "sha256")).stamp)) {
    throw new CorruptObjectError(key, "checksum mismatch (the stamp does not match the content)");
  }
}

/**
 * A fresh path for a working copy in a directory.
 * @param dir The directory (the host cache's).
 * @returns The path.
 */
export function workPath(dir: string): string {
  const random = crypto.getRandomValues(new Uint8Array(8)).toHex();
  return `${dir}/${WORK_PREFIX}${Deno.pid}-${random}`;
}

/**
 * Marks a working copy as in use: an exclusive advisory lock (`flock`, which
 * SQLite's own POSIX locks do not touch) held until the returned file is
 * closed. {@linkcode removeOrphans} deletes only copies nobody holds.
 * @param path The working copy.
 * @param create Create it (it must not exist): the lock is then taken as it
 *   is made, before anything is written to it.
 * @returns The open file holding the lock.
 */
export function holdWorkCopy(path: string, create = false): Deno.FsFile {
  const file = Deno.openSync(
    path,
    create ? { read: true, write: true, createNew: true } : { read: true },
  );
  try {
    file.lockSync(true);
  } catch (e) {
    file.close();
    throw e;
  }
  return file;
}

/** Working copies younger than this are never deleted (their process may not hold them yet). */
const ORPHAN_AGE_MS = 60_000;

/**
 * Deletes working copies no process holds ({@linkcode holdWorkCopy}) and
 * older than a minute: those left by a process that crashed.
 * @param dir The directory.
 */
export async function removeOrphans(dir: string): Promise<void> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.startsWith(WORK_PREFIX)) continue;
      const path = `${dir}/${e.name}`;
      try {
        const age = Date.now() - ((await Deno.lstat(path)).mtime?.getTime() ?? Date.now());
        if (age < ORPHAN_AGE_MS) continue;
        using file = await Deno.open(path, { read: true });
        if (await file.tryLock(true)) await Deno.remove(path);
      } catch {
        // Gone meanwhile, or not ours to delete.
      }
    }
  } catch {
    // A directory that cannot be listed holds nothing to clean.
  }
}
