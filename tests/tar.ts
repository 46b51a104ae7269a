/**
 * Writes small tar archives in memory for tests (the counterpart of
 * `format/tar.ts`'s reader). Real archives in tests come from the system
 * `tar`; this one makes the cases `tar` will not (corrupt checksums, cut
 * bodies) easy to build byte for byte.
 *
 * @module
 */

import { padding, TAR_BLOCK } from "../format/tar.ts";

/** One entry for {@linkcode writeTarForTest}. */
export interface TestTarEntry {
  /** The path (written through a pax header when it does not fit ustar or is not ASCII). */
  path: string;
  /** The body (regular files). */
  body?: Uint8Array;
  /** The type flag (default `"0"`). */
  type?: string;
  /** The link target (links). */
  linkpath?: string;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function rawHeader(name: Uint8Array, size: number, flag: string, linkpath: string): Uint8Array {
  const h = new Uint8Array(TAR_BLOCK);
  const enc = new TextEncoder();
  h.set(name.subarray(0, 100), 0);
  h.set(enc.encode(octal(0o644, 8)), 100);
  h.set(enc.encode(octal(0, 8)), 108);
  h.set(enc.encode(octal(0, 8)), 116);
  h.set(enc.encode(octal(size, 12)), 124);
  h.set(enc.encode(octal(0, 12)), 136);
  h[156] = flag.charCodeAt(0);
  h.set(enc.encode(linkpath).subarray(0, 100), 157);
  h.set(enc.encode("ustar\x0000"), 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

function padded(data: Uint8Array): Uint8Array[] {
  const p = padding(data.length);
  return p === 0 ? [data] : [data, new Uint8Array(p)];
}

/**
 * Writes a small tar in memory, for tests and examples . A path longer than 100 bytes
 * or not ASCII goes in a pax `path` record.
 *
 * @param entries The entries.
 * @returns The archive, end-of-archive marker included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeTarForTest } from "./tar.ts";
 * assert.deepEqual(writeTarForTest([{ path: "a", body: new Uint8Array(1) }]).length, 2048);
 * ```
 */
export function writeTarForTest(entries: readonly TestTarEntry[]): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const name = enc.encode(e.path);
    const body = e.body ?? new Uint8Array(0);
    if (name.length > 100 || /[^\x20-\x7e]/.test(e.path)) {
      const value = `path=${e.path}\n`;
      let len = enc.encode(value).length + 2;
      while (String(len).length + 1 + enc.encode(value).length !== len) len++;
      const record = enc.encode(`${len} ${value}`);
      parts.push(rawHeader(enc.encode("PaxHeader"), record.length, "x", ""), ...padded(record));
    }
    parts.push(rawHeader(name, body.length, e.type ?? "0", e.linkpath ?? ""), ...padded(body));
  }
  parts.push(new Uint8Array(2 * TAR_BLOCK));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
