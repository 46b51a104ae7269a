/**
 * Reading packs ahead for readers that go through them in order.
 *
 * A restore (`get --to`) reads artifacts in key order, and a tree put with
 * `put --from` was packed in that order: its blobs come one after the other
 * in each pack. Read one by one, each blob cost a ranged read of its own (on
 * a local directory: the path checks, an open and a close; on S3 a request).
 * {@linkcode ReadAhead} notices a second small read of a pack starting close
 * after the one before it and then reads that pack in windows of 4 MiB,
 * serving the reads that fall inside from memory. A read elsewhere (a single
 * `get`, random access) costs what it did: one ranged read, no window.
 * Packs are never modified once written, so a window stays true for as long
 * as it is kept (docs/DESIGN.md §4.3 rule 5, §4.9).
 *
 * @module
 */

import type { PackSource } from "../format/pack.ts";

/** Bytes read at once once a pack is being read in order. */
export const READ_AHEAD_WINDOW = 4 * 1024 * 1024;
/** Reads larger than this go to the Location as they are. */
const SMALL_READ = 256 * 1024;
/** A read starting at most this far past the end of the previous one counts as in order. */
const NEAR = 64 * 1024;
/** Windows kept, one per pack, the least recently used dropped first. */
const WINDOWS = 4;
/** Packs whose last read is remembered (to notice the second read in order). */
const TRACKED = 64;

interface Window {
  start: number;
  /** The end asked for (the bytes may stop sooner: the pack's end). */
  end: number;
  bytes: Promise<Uint8Array>;
}

/**
 * A {@linkcode PackSource} over another that reads a pack ahead in
 * {@linkcode READ_AHEAD_WINDOW} windows once two small reads of it came in
 * order; other reads pass through.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryDriver } from "../drivers/memory.ts";
 * import { ReadAhead } from "./read_ahead.ts";
 * const driver = new MemoryDriver();
 * await driver.put("packs/p", new Uint8Array(10_000).map((_, i) => i % 251));
 * const ahead = new ReadAhead(driver);
 * assert.deepEqual(await ahead.getRange("packs/p", 0, 3), new Uint8Array([0, 1, 2]));
 * assert.deepEqual(await ahead.getRange("packs/p", 3, 3), new Uint8Array([3, 4, 5]));
 * assert.equal(ahead.windowsRead, 1); // the second read started a window
 * assert.deepEqual(await ahead.getRange("packs/p", 6, 2), new Uint8Array([6, 7]));
 * assert.equal(ahead.windowsRead, 1); // served from it
 * ```
 */
export class ReadAhead implements PackSource {
  readonly #source: PackSource;
  /** By pack key: the window kept (Map order: least recently used first). */
  readonly #windows = new Map<string, Window>();
  /** By pack key: where the last small read ended. */
  readonly #lastEnd = new Map<string, number>();
  #windowsRead = 0;

  /** @param source Where the bytes are (the Location's driver). */
  constructor(source: PackSource) {
    this.#source = source;
  }

  /** How many windows were read (for tests and statistics). */
  get windowsRead(): number {
    return this.#windowsRead;
  }

  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object:
   * from a window when one covers them, else from the source.
   * @param key The pack's key. @param offset Where to start. @param length How many bytes at most.
   * @returns The bytes (a copy: a window is never handed out).
   */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    if (length > SMALL_READ) return await this.#source.getRange(key, offset, length);
    const end = offset + length;
    let w = this.#windows.get(key);
    if (w === undefined || offset < w.start || end > w.end) {
      const last = this.#lastEnd.get(key);
      this.#remember(key, end);
      if (last === undefined || offset < last || offset > last + NEAR) {
        return await this.#source.getRange(key, offset, length);
      }
      // In order: read on from here in one window.
      w = { start: offset, end: offset + READ_AHEAD_WINDOW, bytes: this.#read(key, offset) };
      this.#windows.set(key, w);
      if (this.#windows.size > WINDOWS) this.#windows.delete(this.#windows.keys().next().value!);
    } else {
      this.#remember(key, end);
      // Most recently used: to the end of the map.
      this.#windows.delete(key);
      this.#windows.set(key, w);
    }
    const bytes = await w.bytes;
    // Past what the window holds is past the pack's end: clipped, as the source clips.
    return bytes.slice(offset - w.start, Math.min(end - w.start, bytes.length));
  }

  #read(key: string, offset: number): Promise<Uint8Array> {
    this.#windowsRead++;
    const read = this.#source.getRange(key, offset, READ_AHEAD_WINDOW);
    // A failed window is forgotten: the next read asks again (and fails or not on its own).
    read.catch(() => {
      const w = this.#windows.get(key);
      if (w?.bytes === read) this.#windows.delete(key);
    });
    return read;
  }

  #remember(key: string, end: number): void {
    this.#lastEnd.delete(key);
    this.#lastEnd.set(key, end);
    if (this.#lastEnd.size > TRACKED) this.#lastEnd.delete(this.#lastEnd.keys().next().value!);
  }

  /**
   * Reports an object's size (from the source).
   * @param key The object's key.
   * @returns Its size.
   */
  stat(key: string): Promise<{ size: number }> {
    return this.#source.stat(key);
  }
}
