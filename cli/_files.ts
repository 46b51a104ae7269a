/**
 * Local files the CLI writes: new files that must never replace an existing
 * one (Recovery Kits), and files written atomically (a temporary file in the
 * same directory, then a rename), so a reader never sees half a file and an
 * interrupted `get` leaves the old file in place.
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import { MAX_RECOVERY_KIT_BYTES } from "../format/kit.ts";

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** Where the last path separator is: `/`, and on Windows also `\\` (elsewhere an ordinary character). */
function lastSeparator(path: string): number {
  const slash = path.lastIndexOf("/");
  return Deno.build.os === "windows" ? Math.max(slash, path.lastIndexOf("\\")) : slash;
}

/**
 * The directory part of a path (`.` when there is none).
 * @param path A path.
 * @returns Its directory.
 */
export function dirname(path: string): string {
  const i = lastSeparator(path);
  if (i < 0) return ".";
  if (i === 0) return path.slice(0, 1);
  return path.slice(0, i);
}

/**
 * Whether something exists at `path` (a symlink counts, even a dangling one).
 * @param path A path.
 * @returns The answer.
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * A file reserved before the work that fills it: created empty (mode 0600,
 * exclusively) in the target's directory, so the work starts only once the
 * file is known to be writable, and {@linkcode ReservedFile.commit} puts it
 * at its final name without ever replacing an existing file.
 */
export interface ReservedFile {
  /**
   * Writes the content and moves it to `path` (refusing to replace a file).
   * @param path The final name (in the directory given at reservation).
   * @param bytes The content.
   */
  commit(path: string, bytes: Uint8Array): Promise<void>;
  /** Removes the reservation. */
  discard(): Promise<void>;
}

/**
 * Reserves a new private file in `dir` (see {@linkcode ReservedFile}).
 * @param dir The directory.
 * @returns The reservation.
 */
export async function reserveFile(dir: string): Promise<ReservedFile> {
  const tmp = `${dir.replace(/[/\\]+$/, "")}/.capsa-${randomSuffix()}.tmp`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      throw new CapsaError(
        "not_found",
        `the directory ${dir} does not exist: create it, or name a file in a directory that ` +
          "exists (nothing was written)",
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new CapsaError(
        "permission_denied",
        `cannot create a file in ${dir} (permission denied): name a file in a directory you ` +
          "can write (nothing was written)",
      );
    }
    throw e;
  }
  let open = true;
  const closeFile = () => {
    if (open) file.close();
    open = false;
  };
  return {
    async commit(path, bytes) {
      try {
        let at = 0;
        while (at < bytes.length) at += await file.write(bytes.subarray(at));
        await file.sync();
        closeFile();
        try {
          await Deno.link(tmp, path); // fails if `path` exists: never replaces a file
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) {
            throw new CapsaError("file_exists", `${path} already exists: choose another name`);
          }
          // No hard links here (FAT, some network shares): exclusive create instead.
          await Deno.writeFile(path, bytes, { createNew: true, mode: 0o600 }).catch((e2) => {
            if (e2 instanceof Deno.errors.AlreadyExists) {
              throw new CapsaError("file_exists", `${path} already exists: choose another name`);
            }
            throw e2;
          });
        }
      } finally {
        closeFile();
        await Deno.remove(tmp).catch(() => {});
      }
    },
    async discard() {
      closeFile();
      await Deno.remove(tmp).catch(() => {});
    },
  };
}

/**
 * Writes a stream to `path` atomically: into a temporary file beside it,
 * synced, then renamed over `path`. On any failure the temporary file is
 * removed and `path` is left as it was.
 *
 * @param path The file to write.
 * @param body The bytes.
 * @param options The mode of a new file (default 0644, less the umask).
 * @returns The number of bytes written.
 */
export async function writeFileAtomic(
  path: string,
  body: ReadableStream<Uint8Array>,
  options: { mode?: number } = {},
): Promise<number> {
  const info = await Deno.lstat(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  });
  if (info?.isDirectory) {
    await body.cancel().catch(() => {});
    throw new CapsaError("is_a_directory", `${path} is a directory: give a file name`);
  }
  const dir = dirname(path);
  const parent = await Deno.stat(dir).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  });
  if (!parent?.isDirectory) {
    await body.cancel().catch(() => {});
    throw new CapsaError("not_found", `the directory ${dir} does not exist: create it first`);
  }
  // At most 40 characters of the name (≤ 160 bytes): the temporary name stays a valid file name.
  const tmp = `${dir}/.${[...basename(path)].slice(0, 40).join("")}.capsa-${randomSuffix()}.tmp`;
  const file = await Deno.open(tmp, {
    write: true,
    createNew: true,
    mode: options.mode ?? 0o644,
  });
  let bytes = 0;
  let closed = false;
  try {
    // A plain loop, not pipeTo(file.writable): the file stays ours to sync and close.
    for await (const chunk of body) {
      await writeAll(file, chunk);
      bytes += chunk.length;
    }
    await file.sync();
    file.close();
    closed = true;
    await Deno.rename(tmp, path);
    return bytes;
  } catch (e) {
    if (!closed) {
      try {
        file.close();
      } catch { /* already closed by the failed pipe */ }
    }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Writes a small file of a restore atomically, with synchronous calls (one
 * round trip to the I/O threads per call cost more than the call: restoring
 * 200,000 small files took 95 s with the asynchronous ones): into a temporary
 * file beside `path`, given its permission bits and modification time, then
 * renamed over `path`. Not synced: a restore interrupted by a crash is run
 * again (docs/OPERATIONS.md). On any failure the temporary file is removed
 * and `path` is left as it was.
 *
 * @param path The file to write (its directory exists).
 * @param bytes The content.
 * @param meta The permission bits and modification time to give it (each optional).
 */
export function writeSmallFileAtomicSync(
  path: string,
  bytes: Uint8Array,
  meta: { mode?: number | undefined; mtime?: Date | undefined } = {},
): void {
  const tmp = `${dirname(path)}/.${
    [...basename(path)].slice(0, 40).join("")
  }.capsa-${randomSuffix()}.tmp`;
  // 0644 less the umask, as any new file; the recorded bits, when given, after the writes.
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o644 });
  try {
    try {
      let at = 0;
      while (at < bytes.length) at += file.writeSync(bytes.subarray(at));
      if (meta.mtime !== undefined) file.utimeSync(meta.mtime, meta.mtime);
    } finally {
      file.close();
    }
    if (meta.mode !== undefined) Deno.chmodSync(tmp, meta.mode);
    try {
      Deno.renameSync(tmp, path);
    } catch (e) {
      let isDirectory = false;
      try {
        isDirectory = Deno.lstatSync(path).isDirectory;
      } catch { /* the rename's own error */ }
      if (isDirectory) {
        throw new CapsaError("is_a_directory", `${path} is a directory: give a file name`);
      }
      throw e;
    }
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not there */ }
    throw e;
  }
}

/**
 * Writes all of `bytes` to a writer.
 * @param w The writer (a file, stdout).
 * @param bytes The bytes.
 */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await w.write(bytes.subarray(at));
}

/**
 * The last part of a path.
 * @param path A path.
 * @returns Its base name.
 */
export function basename(path: string): string {
  const i = lastSeparator(path);
  return path.slice(i + 1);
}

/**
 * Reads a Recovery Kit file, bounded: a file larger than any kit is refused
 * before it is read whole.
 * @param path The file.
 * @returns Its bytes.
 */
export async function readKitFile(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(MAX_RECOVERY_KIT_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = await file.read(buf.subarray(n));
      if (r === null) break;
      n += r;
      if (n > MAX_RECOVERY_KIT_BYTES) {
        throw new CapsaError(
          "recovery_kit_invalid",
          `${path} is larger than any Recovery Kit (${MAX_RECOVERY_KIT_BYTES} bytes): is it the right file?`,
        );
      }
    }
    return buf.slice(0, n);
  } finally {
    file.close();
  }
}
