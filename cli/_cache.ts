/**
 * The default host directories under the per-user cache
 * (`$XDG_CACHE_HOME/capsa/<hash>`): which Location each belongs to, whether
 * that Location still holds the store, when it was last used, whether a
 * process has it open; and removing those no longer needed
 * (`capsa cache list`, `capsa cache prune`).
 *
 * A host directory is in use while a `capsa` process has it open: the
 * process holds a shared `flock` on its lock file ({@linkcode HOST_LOCK_KEY},
 * taken by {@linkcode holdHostDir}), and a process writing the index also an
 * exclusive one on its working copy (`index/,tmp.work-<pid>-<random>`,
 * index/_cache_file.ts). A directory in use is never removed.
 *
 * @module
 */

import type { Driver } from "../drivers/driver.ts";
import { decodeDescriptor } from "../format/descriptor.ts";
import {
  DESCRIPTOR_KEY,
  DESCRIPTOR_REPLICA_KEY,
  HOST_CACHE_KEY,
  HOST_DESCRIPTOR_KEY,
  HOST_LOCATION_KEY,
  HOST_LOCK_KEY,
  MANIFEST_LOG_PREFIX,
  MOVED_KEY,
} from "../layout.ts";

/**
 * Records in a default host directory the Location it belongs to, unless
 * it already says so. Best effort: a cache that cannot be written is no
 * reason to fail a command.
 * @param host The host directory's driver.
 * @param location The canonical Location URL.
 */
export async function recordHostLocation(host: Driver, location: string): Promise<void> {
  try {
    const current = await host.get(HOST_LOCATION_KEY).then(
      (b) => JSON.parse(new TextDecoder().decode(b))?.location,
      () => undefined,
    );
    if (current === location) return;
    await host.put(
      HOST_LOCATION_KEY,
      new TextEncoder().encode(JSON.stringify({ location }) + "\n"),
    );
  } catch {
    // Recorded next time.
  }
}

/**
 * Marks a default host directory as in use until the returned file is
 * closed: a shared `flock` on its lock file. Waits while `capsa cache prune`
 * holds it exclusively; if prune removed the directory meanwhile, makes it
 * again and marks the new one.
 * @param dir The host directory (existing).
 * @returns The open lock file, or `undefined` when locks are not available here.
 */
export async function holdHostDir(dir: string): Promise<Deno.FsFile | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const path = `${dir}/${HOST_LOCK_KEY}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
    } catch {
      return undefined;
    }
    try {
      await file.lock(false);
      const [held, there] = [await file.stat(), await Deno.stat(path).catch(() => undefined)];
      if (there !== undefined && there.ino === held.ino) return file;
    } catch {
      // Not supported on this file system: no lock.
      file.close();
      return undefined;
    }
    file.close();
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  return undefined;
}

/** Whether a host directory's Location still holds its store. */
export type LocationState =
  /** The Location holds the store this host directory caches. */
  | "present"
  /** The Location does not exist, holds no store, or another store. */
  | "gone"
  /** The store was moved elsewhere (`capsa move`). */
  | "moved"
  /** Not checked: a remote Location (s3://), or a host directory that never recorded its Location. */
  | "unknown";

/** One default host directory. */
export interface HostDirInfo {
  /** Its path. */
  path: string;
  /** The canonical Location it belongs to, when recorded. */
  location: string | undefined;
  /** The store id of its descriptor replica, when it has one. */
  storeId: string | undefined;
  /** Bytes of every file in it. */
  bytes: number;
  /** When it was last used (its newest modification time, ms since the epoch). */
  lastUsed: number;
  /** Whether its Location still holds the store. */
  locationState: LocationState;
  /** Whether a process has the store open through it now. */
  inUse: boolean;
  /**
   * Whether it holds a manifest log (a store whose manifests live on the
   * host, `Local` or `Replicated`): not a cache, never pruned.
   */
  holdsManifestLog: boolean;
}

/** The working copies of the index (see index/_cache_file.ts): `,tmp.work-<pid>-…`. */
const WORK_PREFIX = ",tmp.work-";

/**
 * Whether a process holds a working copy of the index in a host directory.
 * @param dir The host directory.
 * @returns The answer.
 */
export async function hostDirInUse(dir: string): Promise<boolean> {
  try {
    using lock = await Deno.open(`${dir}/${HOST_LOCK_KEY}`, { read: true });
    if (!(await lock.tryLock(true))) return true;
    await lock.unlock();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return true;
  }
  return await workCopyHeld(dir);
}

/** Whether a process holds a working copy of the index (it is writing the index). */
async function workCopyHeld(dir: string): Promise<boolean> {
  const index = `${dir}/${HOST_CACHE_KEY.slice(0, HOST_CACHE_KEY.lastIndexOf("/"))}`;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(index));
  } catch {
    return false;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.startsWith(WORK_PREFIX)) continue;
    try {
      using file = await Deno.open(`${index}/${e.name}`, { read: true });
      if (!(await file.tryLock(true))) return true;
      await file.unlock();
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) return true; // not ours to judge: keep it
    }
  }
  return false;
}

async function sizeAndNewest(dir: string): Promise<{ bytes: number; newest: number }> {
  let bytes = 0;
  let newest = 0;
  const walk = async (d: string) => {
    const st = await Deno.lstat(d);
    newest = Math.max(newest, st.mtime?.getTime() ?? 0);
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else {
        const f = await Deno.lstat(p).catch(() => undefined);
        if (!f) continue;
        bytes += f.size;
        newest = Math.max(newest, f.mtime?.getTime() ?? 0);
      }
    }
  };
  await walk(dir);
  return { bytes, newest };
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

async function storeIdAt(path: string): Promise<string | undefined> {
  try {
    return decodeDescriptor(path, await Deno.readFile(path)).storeId;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/**
 * Whether a local Location still holds the store `storeId`: `moved` when it
 * carries the moved marker, `gone` when it is missing or holds no
 * descriptor of that store; a remote Location is not contacted (`unknown`).
 */
async function locationState(
  location: string | undefined,
  storeId: string | undefined,
): Promise<LocationState> {
  if (location === undefined || !location.startsWith("file:")) return "unknown";
  const root = decodeURIComponent(new URL(location).pathname);
  if (await exists(`${root}/${MOVED_KEY}`)) return "moved";
  const ids = await Promise.all([
    storeIdAt(`${root}/${DESCRIPTOR_KEY}`),
    storeIdAt(`${root}/${DESCRIPTOR_REPLICA_KEY}`),
  ]);
  if (ids.every((id) => id === undefined)) return "gone";
  if (storeId !== undefined && !ids.includes(storeId)) return "gone";
  return "present";
}

/**
 * Describes every host directory under a cache root (`capsa cache list`).
 * @param root The cache root ({@linkcode defaultCacheRoot} in cli/_store.ts).
 * @returns The host directories, most recently used first.
 */
export async function listHostDirs(root: string): Promise<HostDirInfo[]> {
  const out: HostDirInfo[] = [];
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(root))).filter((e) => e.isDirectory).map((e) =>
      e.name
    );
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const name of names.sort()) {
    const path = `${root}/${name}`;
    const recorded = await readJson(`${path}/${HOST_LOCATION_KEY}`) as
      | { location?: unknown }
      | undefined;
    const location = typeof recorded?.location === "string" ? recorded.location : undefined;
    const storeId = await storeIdAt(`${path}/${HOST_DESCRIPTOR_KEY}`);
    const { bytes, newest } = await sizeAndNewest(path);
    out.push({
      path,
      location,
      storeId,
      bytes,
      lastUsed: newest,
      locationState: await locationState(location, storeId),
      inUse: await hostDirInUse(path),
      holdsManifestLog: await exists(`${path}/${MANIFEST_LOG_PREFIX.replace(/\/$/, "")}`),
    });
  }
  return out.sort((a, b) => b.lastUsed - a.lastUsed);
}

/** Why {@linkcode pruneReason} would remove a host directory. */
export function pruneReason(
  dir: HostDirInfo,
  olderThanMs: number,
  now: number,
): string | undefined {
  if (dir.locationState === "gone") return "its Location no longer holds the store";
  if (dir.locationState === "moved") return "the store was moved elsewhere";
  if (now - dir.lastUsed > olderThanMs) return "unused for longer than --older-than";
  return undefined;
}

/**
 * Removes a host directory unless a process has it open: it is first
 * renamed aside (a process opening the store meanwhile makes a fresh one),
 * checked again, then deleted.
 * @param dir The host directory.
 * @returns `false` when it was in use (nothing removed).
 */
export async function removeHostDir(dir: string): Promise<boolean> {
  // Held exclusively from the check to the removal: a process opening the
  // store meanwhile waits, then finds the directory gone and makes a fresh one.
  let lock: Deno.FsFile | undefined;
  try {
    lock = await Deno.open(`${dir}/${HOST_LOCK_KEY}`, { read: true });
    if (!(await lock.tryLock(true))) {
      lock.close();
      return false;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return false;
  }
  try {
    if (await workCopyHeld(dir)) return false;
    const aside = `${dir}.pruning-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.rename(dir, aside);
    await Deno.remove(aside, { recursive: true });
    return true;
  } finally {
    lock?.close();
  }
}
