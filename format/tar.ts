/**
 * A streaming reader of tar archives (POSIX ustar, with pax extended headers
 * and GNU long names), for the HTTP batch upload (docs/OPERATIONS.md,
 * "Batch upload"). It reads a `ReadableStream` once, front to back, and holds at
 * most one 512-byte header, one pax or long-name record (at most
 * {@linkcode MAX_TAR_META_BYTES}) and the chunk the stream handed over:
 * an entry's body is read by the caller, whole ({@linkcode TarEntry.bytes})
 * or as a stream ({@linkcode TarEntry.stream}), and skipped when it is not.
 *
 * What it checks: every header's checksum (unsigned, or signed as some old
 * writers computed it), its numeric fields (octal, or GNU base-256 for sizes
 * past 8 GiB), pax records (`LENGTH key=value\n`, the length right), and that
 * the archive ends with its end-of-archive marker (a zero block). A failed
 * check, and a body that ends early, throw {@linkcode InvalidArchiveError}
 * naming the byte offset of the entry at fault; the entries yielded before
 * it were whole. An error of the stream itself is thrown unchanged. Once
 * either happens, every later read throws the same error.
 *
 * The path of an entry is, first found: the pax `path` record, the GNU long
 * name (`L`), the ustar `prefix` and `name` joined by `/` (the `prefix` field
 * only under the POSIX magic `ustar\0`, as GNU tar uses that space for
 * times). Pax global headers (`g`) are read past and ignored, as are pax
 * records other than `path`, `linkpath` and `size`.
 *
 * @example Read a tar made of two files
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTar } from "./tar.ts";
 * import { writeTarForTest } from "../tests/tar.ts";
 *
 * const tar = writeTarForTest([
 *   { path: "a.txt", body: new TextEncoder().encode("alpha") },
 *   { path: "dir/b.txt", body: new TextEncoder().encode("beta") },
 * ]);
 * const seen: string[] = [];
 * for await (const entry of readTar(new Blob([tar]).stream())) {
 *   seen.push(`${entry.path}=${new TextDecoder().decode(await entry.bytes())}`);
 * }
 * assert.deepEqual(seen, ["a.txt=alpha", "dir/b.txt=beta"]);
 * ```
 *
 * @module
 */

import { CapsaError } from "../errors.ts";

/** The size of a tar block (headers, and the unit bodies are padded to). */
export const TAR_BLOCK = 512;
/** The largest pax extended header or GNU long name or link accepted, in bytes. */
export const MAX_TAR_META_BYTES = 1024 * 1024;
/** The most bytes {@linkcode TarEntry.stream} hands over in one chunk. */
const STREAM_CHUNK = 256 * 1024;

/**
 * A tar body that is not a valid archive: a header whose checksum or fields
 * are wrong, a malformed pax record, or a body that ends before the archive
 * does (code `invalid_archive`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidArchiveError, readTar } from "./tar.ts";
 *
 * const notTar = new Blob([new Uint8Array(512).fill(7)]).stream();
 * await assert.rejects(async () => {
 *   for await (const _ of readTar(notTar)) break;
 * }, (e) => e instanceof InvalidArchiveError && e.offset === 0);
 * ```
 */
export class InvalidArchiveError extends CapsaError {
  /** The byte offset of the entry at fault (its first header) in the tar. */
  readonly offset: number;

  /**
   * @param offset The byte offset of the entry at fault.
   * @param message What is wrong, for people.
   */
  constructor(offset: number, message: string) {
    super("invalid_archive", message, false);
    this.offset = offset;
  }
}

/** The kind of a tar entry, from its type flag. */
export type TarEntryType =
  | "file"
  | "directory"
  | "symlink"
  | "hardlink"
  | "character-device"
  | "block-device"
  | "fifo"
  | "other";

/** One entry of a tar archive, as {@linkcode readTar} yields it. */
export interface TarEntry {
  /** The byte offset of its first header (its pax or long-name header, when it has one). */
  readonly offset: number;
  /** Its path, decoded as UTF-8 (bytes that are not are replaced by U+FFFD: see `pathIsUtf8`). */
  readonly path: string;
  /** Whether the path's bytes were valid UTF-8. */
  readonly pathIsUtf8: boolean;
  /** Its kind. */
  readonly type: TarEntryType;
  /** The raw type flag (`"0"`, `"5"`, `"2"`, …; `"\0"` for an old regular file). */
  readonly typeflag: string;
  /** The size of its body in bytes (0 for a link or directory). */
  readonly size: number;
  /** The target of a link (`""` otherwise). */
  readonly linkpath: string;
  /**
   * Reads the whole body. Call it (or `stream`) once, before asking for the next entry.
   * @returns The body.
   * @throws {InvalidArchiveError} when the archive ends inside it.
   */
  bytes(): Promise<Uint8Array>;
  /**
   * The body as a stream, which errors with {@linkcode InvalidArchiveError}
   * when the archive ends inside it. Read it to its end before asking for the
   * next entry (what is left unread is skipped).
   * @returns The body.
   */
  stream(): ReadableStream<Uint8Array>;
}

/** Reads a byte stream in exact amounts, keeping its offset and its first error. */
class ByteSource {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  #eof = false;
  #error: unknown;
  #failed = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Remembers `error`: every later read throws it. @returns it. */
  fail(error: unknown): unknown {
    if (!this.#failed) {
      this.#failed = true;
      this.#error = error;
      this.#reader.cancel(error).catch(() => {});
    }
    return this.#error;
  }

  /** Whether unread bytes are buffered, reading more when none are; false at the end. */
  async #more(): Promise<boolean> {
    if (this.#failed) throw this.#error;
    while (this.#at >= this.#chunk.length) {
      if (this.#eof) return false;
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await this.#reader.read();
      } catch (e) {
        throw this.fail(e);
      }
      if (next.done) {
        this.#eof = true;
        return false;
      }
      this.#chunk = next.value;
      this.#at = 0;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or undefined at the end. */
  async some(max: number): Promise<Uint8Array | undefined> {
    if (!(await this.#more())) return undefined;
    const n = Math.min(max, this.#chunk.length - this.#at);
    const out = this.#chunk.subarray(this.#at, this.#at + n);
    this.#at += n;
    this.offset += n;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the stream ends first. */
  async exact(n: number): Promise<Uint8Array> {
    const first = n === 0 ? new Uint8Array(0) : await this.some(n);
    if (first === undefined || first.length === n) return first ?? new Uint8Array(0);
    const out = new Uint8Array(n);
    out.set(first);
    let filled = first.length;
    while (filled < n) {
      const part = await this.some(n - filled);
      if (part === undefined) return out.subarray(0, filled);
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  /** Skips `n` bytes. @returns how many were skipped (fewer at the end). */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const part = await this.some(n - skipped);
      if (part === undefined) break;
      skipped += part.length;
    }
    return skipped;
  }
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });
const lossy = new TextDecoder("utf-8");

/** A NUL-terminated field's bytes. */
function cString(block: Uint8Array, start: number, length: number): Uint8Array {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

function decodePath(bytes: Uint8Array): { text: string; utf8: boolean } {
  try {
    return { text: utf8.decode(bytes), utf8: true };
  } catch {
    return { text: lossy.decode(bytes), utf8: false };
  }
}

/** A numeric header field: octal (NUL- or space-terminated), or GNU base-256. */
function numeric(block: Uint8Array, start: number, length: number): number | undefined {
  const field = block.subarray(start, start + length);
  if (field[0]! & 0x80) {
    if (field[0]! & 0x40) return undefined; // negative
    let n = field[0]! & 0x3f;
    for (let i = 1; i < field.length; i++) {
      n = n * 256 + field[i]!;
      if (n > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return n;
  }
  const text = latin1.decode(field).replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  const n = parseInt(text, 8);
  return n <= Number.MAX_SAFE_INTEGER ? n : undefined;
}

/** Whether a header's checksum field matches its bytes (unsigned sum, or signed). */
function checksumOk(block: Uint8Array): boolean {
  const stored = numeric(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "character-device";
    case "4":
      return "block-device";
    case "5":
      return "directory";
    case "6":
      return "fifo";
    default:
      return "other";
  }
}

/** Parses a pax extended header's records into `into` (raw value bytes). */
function parsePax(data: Uint8Array, offset: number, into: Map<string, Uint8Array>): void {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, at);
    const lengthText = space < 0 ? "" : latin1.decode(data.subarray(at, space));
    const length = /^[1-9]\d{0,9}$/.test(lengthText) ? Number(lengthText) : NaN;
    const end = at + length;
    if (!(end <= data.length) || data[end - 1] !== 0x0a) {
      throw new InvalidArchiveError(
        offset,
        `the pax extended header at byte ${offset} holds a malformed record at its byte ${at}`,
      );
    }
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) {
      throw new InvalidArchiveError(
        offset,
        `the pax extended header at byte ${offset} holds a record without "key=value" at its byte ${at}`,
      );
    }
    into.set(latin1.decode(record.subarray(0, eq)), record.slice(eq + 1));
    at = end;
  }
}

/**
 * The zero bytes that pad a body of `size` bytes to a whole block.
 * @param size The body size. @returns The padding length (0–511).
 */
export function padding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

/**
 * Reads a tar archive from a stream, one entry at a time (module doc: what is
 * read and checked). Directories, links and other kinds are yielded too,
 * with their type; the caller picks what it keeps. A body not read by the
 * time the next entry is asked for is skipped. Trailing bytes after the
 * end-of-archive marker (the padding `tar` adds to a record) are read and
 * ignored.
 *
 * @param body The archive.
 * @returns The entries, in archive order.
 * @throws {InvalidArchiveError} for a corrupt or truncated archive, naming the offset.
 *
 * @example Skip what is not a regular file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTar } from "./tar.ts";
 * import { writeTarForTest } from "../tests/tar.ts";
 *
 * const long = "docs/ü-" + "x".repeat(200) + ".txt"; // in a pax header
 * const tar = writeTarForTest([
 *   { path: "docs/", type: "5" },
 *   { path: long, body: new Uint8Array(3) },
 *   { path: "link", type: "2", linkpath: "docs" },
 * ]);
 * const kept = [];
 * for await (const e of readTar(new Blob([tar]).stream())) {
 *   if (e.type === "file") kept.push([e.path, e.size]);
 * }
 * assert.deepEqual(kept, [[long, 3]]);
 * ```
 */
export async function* readTar(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<TarEntry, void, undefined> {
  const src = new ByteSource(body);
  /** Bytes of the current entry's body not yet consumed, and its padding. */
  let unread = 0;
  let pad = 0;
  /** The error for an archive that ends inside the current entry's body. */
  let cut: (() => unknown) | undefined;
  try {
    for (;;) {
      // Past what the caller left of the previous body.
      if (unread + pad > 0) {
        const want = unread + pad;
        if ((await src.skip(want)) < want) throw cut!();
        unread = pad = 0;
      }
      const pax = new Map<string, Uint8Array>();
      let longName: Uint8Array | undefined;
      let longLink: Uint8Array | undefined;
      let start: number | undefined;
      let header: Uint8Array;
      for (;;) {
        const at = src.offset;
        header = await src.exact(TAR_BLOCK);
        if (header.length < TAR_BLOCK) {
          throw new InvalidArchiveError(
            start ?? at,
            header.length === 0 && at > 0
              ? `the tar ends at byte ${at} without its end-of-archive marker (a zero block): it was cut short`
              : `the tar ends at byte ${src.offset}, inside the header that starts at byte ${at}`,
          );
        }
        if (header.every((b) => b === 0)) {
          if (start !== undefined) {
            throw new InvalidArchiveError(
              start,
              `the extended header at byte ${start} is followed by the end of the archive, not by an entry`,
            );
          }
          // The end: read past the rest (the second zero block, padding to a record).
          while ((await src.some(STREAM_CHUNK)) !== undefined) { /* ignored */ }
          return;
        }
        start ??= at;
        if (!checksumOk(header)) {
          throw new InvalidArchiveError(
            at,
            `the tar header at byte ${at} has a wrong checksum: the body is corrupt or not a tar ` +
              "(a compressed .tar.gz is not accepted: send the tar itself)",
          );
        }
        const flag = String.fromCharCode(header[156]!);
        const size = numeric(header, 124, 12);
        if (size === undefined) {
          throw new InvalidArchiveError(
            at,
            `the tar header at byte ${at} has a malformed size field`,
          );
        }
        if (flag !== "x" && flag !== "g" && flag !== "L" && flag !== "K") break;
        if (size > MAX_TAR_META_BYTES) {
          throw new InvalidArchiveError(
            at,
            `the extended header at byte ${at} is ${size} bytes: at most ${MAX_TAR_META_BYTES} are accepted`,
          );
        }
        const data = await src.exact(size);
        if (data.length < size || (await src.skip(padding(size))) < padding(size)) {
          throw new InvalidArchiveError(
            at,
            `the tar ends at byte ${src.offset}, inside the extended header at byte ${at}`,
          );
        }
        if (flag === "x") parsePax(data, at, pax);
        else if (flag === "L") longName = cString(data, 0, data.length);
        else if (flag === "K") longLink = cString(data, 0, data.length);
        // "g": a global header; its records are ignored.
      }

      const flag = String.fromCharCode(header[156]!);
      const magic = latin1.decode(header.subarray(257, 263));
      let nameBytes = cString(header, 0, 100);
      if (magic === "ustar\0") {
        const prefix = cString(header, 345, 155);
        if (prefix.length > 0) nameBytes = new Uint8Array([...prefix, 0x2f, ...nameBytes]);
      }
      const pathBytes = pax.get("path") ?? longName ?? nameBytes;
      const { text: path, utf8: pathIsUtf8 } = decodePath(pathBytes);
      const linkpath = lossy.decode(pax.get("linkpath") ?? longLink ?? cString(header, 157, 100));
      let size = numeric(header, 124, 12)!;
      const paxSize = pax.get("size");
      if (paxSize !== undefined) {
        const text = latin1.decode(paxSize);
        if (!/^\d{1,16}$/.test(text) || Number(text) > Number.MAX_SAFE_INTEGER) {
          throw new InvalidArchiveError(
            start,
            `the pax header at byte ${start} has a malformed size "${text}"`,
          );
        }
        size = Number(text);
      }
      // An old GNU sparse file: its extension blocks come before its data.
      if (flag === "S" && header[482] !== 0) {
        for (;;) {
          const ext = await src.exact(TAR_BLOCK);
          if (ext.length < TAR_BLOCK) {
            throw new InvalidArchiveError(
              start,
              `the tar ends at byte ${src.offset}, inside the sparse entry at byte ${start}`,
            );
          }
          if (ext[504] === 0) break;
        }
      }
      let type = typeOf(flag);
      if (type === "file" && path.endsWith("/")) type = "directory"; // the old convention
      // Links, devices and directories carry no body, whatever their size field says (ustar).
      if (type !== "file" && type !== "other") size = 0;

      const entryStart = start;
      const bodyStart = src.offset;
      unread = size;
      pad = padding(size);
      let taken = false;
      const take = (how: string) => {
        if (taken) throw new TypeError(`the body of ${path} was already read (${how})`);
        taken = true;
      };
      cut = () =>
        src.fail(
          new InvalidArchiveError(
            entryStart,
            `the tar ends at byte ${src.offset}, inside the body of "${path}" (entry at byte ${entryStart}, ` +
              `${size} bytes from byte ${bodyStart}): it was cut short`,
          ),
        );
      const entry: TarEntry = {
        offset: entryStart,
        path,
        pathIsUtf8,
        type,
        typeflag: flag,
        size,
        linkpath,
        bytes: async () => {
          take("bytes");
          const data = await src.exact(unread);
          if (data.length < unread) throw cut!();
          unread = 0;
          return data;
        },
        stream: () => {
          take("stream");
          return new ReadableStream<Uint8Array>({
            async pull(controller) {
              if (unread === 0) return controller.close();
              const part = await src.some(Math.min(unread, STREAM_CHUNK));
              if (part === undefined) throw cut!();
              unread -= part.length;
              // A copy: the caller may keep it past the next read of the source.
              controller.enqueue(part.slice());
              if (unread === 0) controller.close();
            },
          }, { highWaterMark: 0 });
        },
      };
      yield entry;
    }
  } catch (e) {
    throw src.fail(e);
  }
}
