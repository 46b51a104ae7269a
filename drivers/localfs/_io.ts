/**
 * The file I/O of the `localfs` driver that does not depend on keys: whole
 * writes and reads at an offset, directory fsync, making the root, probing
 * for hard links.
 *
 * @module
 */

import { read } from "node:fs";
import { errnoOf } from "./errors.ts";
import { lstatOrUndefined, SEP, tempName } from "./paths.ts";

const WINDOWS = Deno.build.os === "windows";

/** Fsyncs a directory (where the system can). @param path The directory. */
export async function syncDir(path: string): Promise<void> {
  // Windows cannot open a directory for fsync; NTFS journals directory changes itself.
  if (WINDOWS) return;
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } catch (e) {
    // Some filesystems do not support fsync on a directory (EINVAL); nothing more can be done.
    if (errnoOf(e) !== "EINVAL") throw e;
  } finally {
    dir.close();
  }
}

/** Writes all of `bytes` at the start of a new file. @param handle The file. @param bytes The content. */
export async function writeAll(handle: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += await handle.write(bytes.subarray(done));
  }
}

/**
 * Reads up to `length` bytes at `offset` of an open file descriptor; fewer at
 * the end of the file. The read itself runs on the runtime's I/O threads, even
 * for a few bytes: an operation that never waits for I/O would let a loop of
 * reads starve every other task of the event loop.
 * @param fd The file. @param offset Where. @param length How many.
 * @returns The bytes read.
 */
export async function readAt(fd: number, offset: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const bytesRead = await new Promise<number>((resolve, reject) =>
      read(fd, buffer, done, length - done, offset + done, (e, n) => e ? reject(e) : resolve(n))
    );
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

function parentOf(path: string): string | undefined {
  const trimmed = path.replace(/[\\/]+$/, "");
  if (trimmed === "") return undefined;
  const i = Math.max(trimmed.lastIndexOf("/"), WINDOWS ? trimmed.lastIndexOf("\\") : -1);
  if (i < 0) return ".";
  if (i === 0) return trimmed.slice(0, 1);
  const parent = trimmed.slice(0, i);
  return WINDOWS && /^[A-Za-z]:$/.test(parent) ? parent + "\\" : parent;
}

/**
 * Creates a root directory and its missing parents, syncing each parent in durable mode.
 * @param path The root. @param durable Whether to fsync.
 */
export async function makeRoot(path: string, durable: boolean): Promise<void> {
  const missing: string[] = [];
  for (let p: string | undefined = path; p !== undefined && p !== "."; p = parentOf(p)) {
    if (await lstatOrUndefined(p) !== undefined) break;
    missing.push(p);
  }
  for (const dir of missing.reverse()) {
    try {
      await Deno.mkdir(dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    if (durable) await syncDir(parentOf(dir) ?? ".");
  }
}

/**
 * Whether this filesystem supports hard links (create-only puts rely on them).
 * @param root The root directory. @returns Whether `link(2)` works there.
 */
export async function probeLink(root: string): Promise<boolean> {
  const a = root + SEP + tempName();
  const b = root + SEP + tempName();
  try {
    (await Deno.open(a, { write: true, createNew: true })).close();
  } catch {
    // The root cannot be written (a read-only mount): puts fail anyway, so the
    // usual answer is as good as any.
    return true;
  }
  try {
    await Deno.link(a, b);
    await Deno.remove(b);
    return true;
  } catch {
    return false;
  } finally {
    await Deno.remove(a).catch(() => {});
  }
}
