/**
 * Looking at what a store left on disk: every file under a directory, and
 * whether some bytes hold others (the encryption tests grep raw bytes).
 *
 * @module
 */

import { join } from "node:path";

/**
 * Every regular file under a directory, sorted.
 * @param dir The directory.
 * @returns Their paths.
 */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(p));
    else if (e.isFile) out.push(p);
  }
  return out.sort();
}

/**
 * Whether `needle` occurs in `hay`.
 * @param hay The bytes searched. @param needle The bytes looked for.
 * @returns `true` when found.
 */
export function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
