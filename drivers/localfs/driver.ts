/**
 * The `localfs` driver: a Location in a local directory.
 *
 * Open one with {@linkcode openLocalFs}. Every object is a regular file
 * under the root; the full layout, and why it was chosen, is in
 * `docs/DRIVERS.md` ("localfs"). In short:
 *
 * - **Names.** A key is cut at `/` into segments; each segment becomes one or
 *   more *pieces*; each piece is one directory entry named `encode(piece)`
 *   followed by a marker: `=` for the object itself, `+` for a directory that
 *   holds the keys continuing with `/`, `@` for a directory that holds the
 *   segments continuing with more characters. `encode` keeps `a-z 0-9 . _ -`,
 *   writes an upper-case letter `X` as `^x` and every other byte of the UTF-8
 *   form as `%XX` (upper-case hex), so a name is plain ASCII, is the same on
 *   case-insensitive and Unicode-normalising filesystems, and never holds a
 *   character a filesystem forbids. Temporary files are named `,tmp.<hex>`: a
 *   `,` never appears in an encoded name, so they can never collide with an
 *   object or a directory, and listings skip them.
 * - **Bounded directories.** A segment longer than 16 characters (or too long
 *   for one name) is spread over three fan-out levels of two characters
 *   each, then its remainder: `packs/01J9Z3KX…` is stored as
 *   `packs+/01@/^j9@/^z3@/^k^x…=`. A remainder longer than 120 encoded
 *   characters continues in further `@` directories, so no name exceeds 128
 *   bytes whatever the key.
 * - **Order.** `list` reads one directory at a time and merges the decoded
 *   entries best-first (a heap ordered by {@linkcode compareKeys}), so keys
 *   come out in the contract's order; subtrees that lie entirely before
 *   `startAfter` or outside the prefix are never read.
 *
 * ## Guarantees
 *
 * - **Atomic put**: bytes go to a temporary file in the object's directory,
 *   which is then renamed over the object, so a reader sees the old or the new
 *   object, never a partial one.
 * - **Create-only put**: the fully written temporary file is hard-linked to
 *   the object's name; `link(2)` fails if the name exists, so exactly one of
 *   racing writers wins. On a filesystem without hard links (FAT, exFAT, some
 *   network shares, detected when the driver opens) `capabilities.createOnly`
 *   is `false` and the put checks, then renames.
 * - **Durable mode** (`durable: true`): a put fsyncs the file before the
 *   rename, then the object's directory and every directory above it up to
 *   the root (so a directory just created by this put, or by a concurrent one
 *   that has not finished yet, is durable too); a delete fsyncs the
 *   directory.
 * - **Symlinks**: the driver never follows a symbolic link under its root.
 *   Before a file is opened, created, renamed or removed, every entry on its
 *   path is checked with `lstat`; a symlink, or anything that is not a
 *   directory or regular file where one is expected, is refused with
 *   {@linkcode PermissionDeniedError}. Files are opened with `O_NOFOLLOW`
 *   and `O_NONBLOCK` (a FIFO cannot block a read).
 * - **Races**: against a process that swaps entries *while* an operation
 *   runs, the driver checks a file it opened (an object to read, a temporary
 *   file to write) before reading or writing a byte: the path is checked
 *   again and must lead, through real directories, to the very file opened
 *   (same device and inode); otherwise a read starts over (and then refuses
 *   the symlink it finds) and a write is refused. This narrows the window
 *   to the moment of that check; it cannot close it, because Deno offers
 *   no `openat`, and `/proc/self/fd` only with `--allow-all`. For the same
 *   reason a `mkdir`, `rename`, `link`, `unlink` or `rmdir` names its path
 *   again after the last check: a racer who swaps a directory for a symlink
 *   at that instant can make the call act in the symlink's target, on a
 *   name ending in `=`, `+` or `@` (a directory made, an object committed or
 *   removed). The root itself is resolved (`realpath`) once, when the driver
 *   opens; it and its parents are trusted.
 * - **Errors**: a missing object is {@linkcode NotFoundError}; `EACCES`,
 *   `EPERM`, `EROFS` and Deno's permission checks are
 *   {@linkcode PermissionDeniedError}; `EAGAIN`, `EBUSY`, `EINTR`, `EMFILE`,
 *   `ENFILE` and `ETIMEDOUT` are {@linkcode TransientError}; a path longer than
 *   the system allows is {@linkcode InvalidKeyError}; anything else (`EIO`,
 *   `ENOSPC`, `EDQUOT`…) is {@linkcode LocalFsError}, with the system error as
 *   its `cause`.
 *
 * @example Opening a store directory
 * ```ts
 * import { openLocalFs } from "./driver.ts";
 *
 * const root = await Deno.makeTempDir();
 * const driver = await openLocalFs(root, { durable: true });
 * await driver.put("packs/01J9Z3KX", new Uint8Array([1, 2, 3]));
 * for await (const info of driver.list("packs/")) console.log(info.key, info.size);
 * await driver.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

import { constants as fsConstants, type FileHandle, open as openHandle } from "node:fs/promises";
import { CapsaError, InvalidArgumentError } from "../../errors.ts";
import {
  ClosedError,
  compareKeys,
  type Driver,
  type DriverCapabilities,
  InvalidKeyError,
  type ListOptions,
  NotFoundError,
  type ObjectInfo,
  PermissionDeniedError,
  PreconditionFailedError,
  type PutOptions,
  TransientError,
  validateKey,
  validateListArgs,
  validateRange,
} from "../driver.ts";

// Re-exported so that this entry point documents every type its API names.
export type { Driver, DriverCapabilities, ListOptions, ObjectInfo, PutOptions } from "../driver.ts";
export { CapsaError } from "../../errors.ts";

/** Options of {@linkcode openLocalFs}. */
export interface LocalFsOptions {
  /**
   * Fsync every put (file, then its directories) and every delete, so a
   * resolved call survives a power loss. Reported as
   * `capabilities.durable`. Default `false`.
   */
  durable?: boolean;
  /** Create the root directory (and missing parents) if it does not exist. Default `false`. */
  create?: boolean;
}

/** Options of the {@linkcode LocalFsError} constructor. */
export interface LocalFsErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The system error code, e.g. `"EIO"`. */
  errno?: string;
  /** What went wrong, replacing the description derived from `errno`. */
  detail?: string;
}

/**
 * An unexpected failure of the local filesystem (`EIO`, `ENOSPC`, `EDQUOT`,
 * the root directory gone…). The system error is the `cause`; its code is in
 * {@linkcode LocalFsError.errno}.
 *
 * @example
 * ```ts
 * import { LocalFsError } from "./driver.ts";
 *
 * const e = new LocalFsError("packs/01J9", "write", { errno: "ENOSPC" });
 * console.log(e.code, e.errno, e.message); // "io_error" "ENOSPC" …
 * ```
 */
export class LocalFsError extends CapsaError {
  /** The key concerned (or the root path, for a failure of the root). */
  readonly key: string;
  /** The system error code, e.g. `"EIO"`, when there is one. */
  readonly errno: string | undefined;
  /**
   * Makes the error; the message names the operation, the key and the system error.
   *
   * @param key The key concerned.
   * @param operation What was attempted (`"read"`, `"write"`, …).
   * @param options The `cause`, the system error code (`errno`) and a `detail`
   * that replaces the default description.
   */
  constructor(key: string, operation: string, options: LocalFsErrorOptions = {}) {
    const errno = options.errno;
    const detail = options.detail ??
      (errno === undefined ? "unexpected filesystem error" : (ERRNO_HINTS[errno] ?? errno));
    super("io_error", `cannot ${operation} "${key}": ${detail}`, false, { cause: options.cause });
    this.key = key;
    this.errno = errno;
  }
}

const ERRNO_HINTS: Record<string, string> = {
  ENOSPC: "no space left on the device (ENOSPC)",
  EDQUOT: "disk quota exceeded (EDQUOT)",
  EIO: "input/output error (EIO): check the disk",
};

// ---------------------------------------------------------------------------
// Layout: keys to names and back.

/** Segments up to this many code points are stored under one name. */
const SHORT_SEGMENT = 16;
/** Fan-out directory levels for a longer segment. */
const FAN_OUT_LEVELS = 3;
/** Code points per fan-out level. */
const FAN_OUT_WIDTH = 2;
/** The longest encoded piece; a name is this plus its marker (and a reserved-name escape). */
const MAX_PIECE = 120;

const OBJECT = "=";
const KEY_DIR = "+";
const PIECE_DIR = "@";
const TEMP_PREFIX = ",tmp.";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, "0"));
const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
// Names Windows reserves for devices, with or without an extension.
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(?=\.|$)/;

function isSafe(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f ||
    c === 0x2d;
}

function encodedLength(ch: string): number {
  const c = ch.codePointAt(0)!;
  if (isSafe(c)) return 1;
  if (c >= 0x41 && c <= 0x5a) return 2;
  return 3 * (c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4);
}

function encodePiece(piece: string): string {
  let out = "";
  for (const ch of piece) {
    const c = ch.codePointAt(0)!;
    if (isSafe(c)) out += ch;
    else if (c >= 0x41 && c <= 0x5a) out += "^" + String.fromCharCode(c + 0x20);
    else for (const b of encoder.encode(ch)) out += "%" + HEX[b];
  }
  const reserved = RESERVED.exec(out);
  if (reserved !== null) {
    // "con.txt" → "co%6E.txt": escaping the device name's last letter keeps Windows happy.
    const k = reserved[1]!.length - 1;
    out = out.slice(0, k) + "%" + HEX[out.charCodeAt(k)] + out.slice(k + 1);
  }
  return out;
}

/** Decodes an encoded piece; `undefined` unless it is exactly what `encodePiece` writes. */
function decodePiece(body: string): string | undefined {
  const bytes = new Uint8Array(body.length);
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (isSafe(c)) {
      bytes[n++] = c;
    } else if (c === 0x5e) { // ^x
      const next = body.charCodeAt(++i);
      if (!(next >= 0x61 && next <= 0x7a)) return undefined;
      bytes[n++] = next - 0x20;
    } else if (c === 0x25) { // %XX
      const hex = body.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      return undefined;
    }
  }
  let piece: string;
  try {
    piece = strictDecoder.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
  return piece.length > 0 && encodePiece(piece) === body ? piece : undefined;
}

/** Cuts one segment into the pieces stored as successive directory entries. */
function segmentPieces(segment: string): string[] {
  const chars = [...segment];
  let length = 0;
  for (const ch of chars) length += encodedLength(ch);
  if (chars.length <= SHORT_SEGMENT && length <= MAX_PIECE) return [segment];
  const pieces: string[] = [];
  for (let level = 0; level < FAN_OUT_LEVELS; level++) {
    pieces.push(chars.slice(level * FAN_OUT_WIDTH, (level + 1) * FAN_OUT_WIDTH).join(""));
  }
  let piece = "";
  let pieceLength = 0;
  for (const ch of chars.slice(FAN_OUT_LEVELS * FAN_OUT_WIDTH)) {
    const len = encodedLength(ch);
    if (pieceLength + len > MAX_PIECE) {
      pieces.push(piece);
      piece = "";
      pieceLength = 0;
    }
    piece += ch;
    pieceLength += len;
  }
  pieces.push(piece);
  return pieces;
}

/** The directory entry names of a valid key, from the root down. */
function keyNames(key: string): string[] {
  const names: string[] = [];
  const segments = key.split("/");
  segments.forEach((segment, i) => {
    const pieces = segmentPieces(segment);
    pieces.forEach((piece, j) => {
      const marker = j < pieces.length - 1 ? PIECE_DIR : i < segments.length - 1 ? KEY_DIR : OBJECT;
      names.push(encodePiece(piece) + marker);
    });
  });
  return names;
}

/**
 * The path, relative to the root of a `localfs` Location, where the object
 * with this key is stored (`/`-separated). For operators and tests: the
 * driver itself is the only thing that should write there.
 *
 * @param key A key that {@linkcode validateKey} accepts.
 * @returns The relative path of the object's file.
 * @throws {InvalidKeyError} when the key is refused.
 *
 * @example
 * ```ts
 * import { localFsPath } from "./driver.ts";
 *
 * localFsPath("store.json"); // "store.json="
 * localFsPath("system.config/current"); // "system.config+/current="
 * localFsPath("packs/01J9Z3KXABCDEFGHJKMNPQRSTV"); // "packs+/01@/^j9@/^z3@/^k^x^a^b…="
 * ```
 */
export function localFsPath(key: string): string {
  validateKey(key);
  return keyNames(key).join("/");
}

// ---------------------------------------------------------------------------
// Filesystem helpers.

const WINDOWS = Deno.build.os === "windows";
const SEP = WINDOWS ? "\\" : "/";
/** How often an operation restarts when a directory vanishes or an object changes under it. */
const MAX_ATTEMPTS = 8;
/** How many `lstat` calls a listing runs at once. */
const STAT_BATCH = 64;
// Objects are opened without following a symlink in the last component, and
// without blocking on a FIFO; temporary files are created exclusively.
const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const READ_FLAGS = fsConstants.O_RDONLY | NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0);
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | NOFOLLOW;

type Operation = "read" | "write" | "delete" | "list" | "open";

function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether `e` is a "no such file or directory" error, from Deno's API or `node:fs`. */
function isMissing(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound || errnoOf(e) === "ENOENT";
}

/** Maps a filesystem error to capsa's typed errors. */
function fsError(e: unknown, key: string, operation: Operation): CapsaError {
  if (e instanceof CapsaError) return e;
  if (isMissing(e)) return new NotFoundError(key, { cause: e });
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new PermissionDeniedError(key, operation, { cause: e });
  }
  const errno = errnoOf(e);
  switch (errno) {
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new PermissionDeniedError(key, operation, { cause: e });
    case "ENAMETOOLONG":
      return new InvalidKeyError(key, "too long for this filesystem's path limit");
    case "EAGAIN":
    case "EBUSY":
    case "EINTR":
    case "EMFILE":
    case "ENFILE":
    case "ETIMEDOUT":
      return new TransientError(`cannot ${operation} "${key}": ${errno}`, { cause: e });
  }
  return new LocalFsError(key, operation, errno === undefined ? { cause: e } : { cause: e, errno });
}

/** Like {@linkcode fsError}, but a path vanishing under a put is not a missing object. */
function writeError(e: unknown, key: string): CapsaError {
  if (isMissing(e)) {
    return new LocalFsError(key, "write", {
      cause: e,
      errno: "ENOENT",
      detail: "the temporary file or its directory vanished during the write",
    });
  }
  return fsError(e, key, "write");
}

function describe(info: Deno.FileInfo | Deno.DirEntry): string {
  if (info.isSymlink) return "a symbolic link";
  if (info.isDirectory) return "a directory";
  if (info.isFile) return "a regular file";
  return "a special file";
}

/** The refusal for an entry that is a symlink, or not of the type the layout expects. */
function refused(key: string, operation: Operation, path: string, found: string): CapsaError {
  return new PermissionDeniedError(key, operation, {
    cause: new Error(
      `${path} is ${found}; capsa does not follow symbolic links or use entries of ` +
        `unexpected types under its root`,
    ),
  });
}

function isRealDir(info: Deno.FileInfo | undefined): info is Deno.FileInfo {
  return info !== undefined && info.isDirectory && !info.isSymlink;
}

function isRealFile(info: Deno.FileInfo | undefined): info is Deno.FileInfo {
  return info !== undefined && info.isFile && !info.isSymlink;
}

function sameFile(
  a: { dev: number | bigint; ino: number | bigint | null },
  b: { dev: number | bigint; ino: number | bigint | null },
): boolean {
  return Number(a.dev) === Number(b.dev) &&
    (a.ino === null || b.ino === null || Number(a.ino) === Number(b.ino));
}

function tempName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return TEMP_PREFIX + Array.from(bytes, (b) => HEX[b]!.toLowerCase()).join("");
}

/** `lstat`, with `undefined` for a path that does not exist (or runs through a non-directory). */
async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (isMissing(e) || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  }
}

async function syncDir(path: string): Promise<void> {
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

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += (await handle.write(bytes, done, bytes.length - done, done)).bytesWritten;
  }
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
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

/** Creates a root directory and its missing parents, syncing each parent in durable mode. */
async function makeRoot(path: string, durable: boolean): Promise<void> {
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

/** Whether this filesystem supports hard links (create-only puts rely on them). */
async function probeLink(root: string): Promise<boolean> {
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

// ---------------------------------------------------------------------------
// Listing: a best-first walk over the tree.

interface ObjectNode {
  dir: false;
  /** The object's key. */
  bound: string;
  size: number;
}

interface DirNode {
  dir: true;
  /** The decoded prefix every key below this directory starts with. */
  bound: string;
  /** The directory's entry names from the root. */
  names: string[];
}

type ListNode = ObjectNode | DirNode;

function compareNodes(a: ListNode, b: ListNode): number {
  // A directory's bound is at most every key below it, so expanding the node
  // with the lowest bound first yields keys in order. On a tie the object
  // comes first (a directory holds only longer keys).
  return compareKeys(a.bound, b.bound) || (a.dir === b.dir ? 0 : a.dir ? 1 : -1);
}

/** A binary min-heap. */
class Heap<T> {
  #items: T[] = [];
  #compare: (a: T, b: T) => number;

  constructor(compare: (a: T, b: T) => number) {
    this.#compare = compare;
  }

  push(item: T): void {
    const items = this.#items;
    let i = items.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#compare(items[parent]!, item) <= 0) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= items.length) break;
      if (child + 1 < items.length && this.#compare(items[child + 1]!, items[child]!) < 0) child++;
      if (this.#compare(last, items[child]!) <= 0) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

/** Whether keys below `bound` can match the listing's prefix and `startAfter`. */
function dirWanted(bound: string, prefix: string, after: string | undefined): boolean {
  if (!bound.startsWith(prefix) && !prefix.startsWith(bound)) return false;
  // Every key below starts with `bound`: if `bound` sorts before `startAfter`
  // and is not a prefix of it, the whole subtree does.
  return after === undefined || after.startsWith(bound) || compareKeys(bound, after) > 0;
}

function keyWanted(key: string, prefix: string, after: string | undefined): boolean {
  return key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0);
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------

// The one way to make a driver is openLocalFs(), which needs the constructor.
let construct: (root: string, durable: boolean, canLink: boolean) => LocalFsDriver;

/**
 * A {@linkcode Driver} over a local directory. See the module documentation
 * for the layout and the guarantees; open one with
 * {@linkcode openLocalFs}.
 *
 * @example
 * ```ts
 * import { openLocalFs } from "./driver.ts";
 *
 * const root = await Deno.makeTempDir();
 * const driver = await openLocalFs(root);
 * await driver.put("store.json", new TextEncoder().encode("{}"));
 * await driver.put("system.state/maintenance/lease", new Uint8Array([1]), { ifAbsent: true });
 * console.log(new TextDecoder().decode(await driver.get("store.json"))); // "{}"
 * await driver.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class LocalFsDriver implements Driver {
  /** Always `"localfs"`. */
  readonly kind = "localfs";
  /** Create-only puts are exact where the filesystem has hard links; durable when asked. */
  readonly capabilities: DriverCapabilities;
  /** The absolute, resolved path of the root directory. */
  readonly location: string;
  #root: string;
  #durable: boolean;
  #canLink: boolean;
  #closed = false;

  static {
    construct = (root, durable, canLink) => new LocalFsDriver(root, durable, canLink);
  }

  private constructor(root: string, durable: boolean, canLink: boolean) {
    this.#root = root;
    this.#durable = durable;
    this.#canLink = canLink;
    this.location = root;
    this.capabilities = { createOnly: canLink, durable };
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`localfs driver ${this.location}`);
  }

  #path(names: readonly string[], count = names.length): string {
    return count === 0 ? this.#root : this.#root + SEP + names.slice(0, count).join(SEP);
  }

  /** `lstat` of each of the first `count` paths of `names` (all at once; `undefined` if absent). */
  async #lstatPath(
    key: string,
    operation: Operation,
    names: readonly string[],
    count: number,
  ): Promise<(Deno.FileInfo | undefined)[]> {
    try {
      return await Promise.all(
        Array.from({ length: count }, (_, i) => lstatOrUndefined(this.#path(names, i + 1))),
      );
    } catch (e) {
      throw fsError(e, key, operation);
    }
  }

  /**
   * How many of the first `dirs` entries exist, up to the first missing one;
   * each that exists must be a real directory, or the path is refused.
   */
  #existingDirs(
    key: string,
    operation: Operation,
    names: readonly string[],
    infos: readonly (Deno.FileInfo | undefined)[],
    dirs: number,
  ): number {
    for (let i = 0; i < dirs; i++) {
      const info = infos[i];
      if (info === undefined) return i;
      if (!isRealDir(info)) throw refused(key, operation, this.#path(names, i + 1), describe(info));
    }
    return dirs;
  }

  /**
   * Whether a file just opened is the one at the path `names` spell, below
   * real directories: the path is checked again and compared with the open
   * file by device and inode. (Deno offers no `openat`, and `/proc/self/fd`
   * only with `--allow-all`, so this narrows a race rather than closing it.)
   */
  async #isAt(
    opened: { dev: number | bigint; ino: number | bigint | null },
    key: string,
    operation: Operation,
    names: readonly string[],
  ): Promise<boolean> {
    const dirs = names.length - 1;
    const infos = await this.#lstatPath(key, operation, names, names.length);
    if (this.#existingDirs(key, operation, names, infos, dirs) < dirs) return false;
    const info = infos[dirs];
    return isRealFile(info) && sameFile(opened, info);
  }

  /**
   * Makes the missing directories of an object's path, checking the others.
   * Returns the `lstat` of the object's own entry (`undefined`: absent), or
   * `false` when a directory vanished meanwhile (a concurrent delete pruned
   * it): the caller starts again.
   */
  async #makeDirs(
    key: string,
    names: readonly string[],
  ): Promise<Deno.FileInfo | undefined | false> {
    const dirs = names.length - 1;
    const infos = await this.#lstatPath(key, "write", names, names.length);
    const existing = this.#existingDirs(key, "write", names, infos, dirs);
    if (existing === dirs) return infos[dirs];
    for (let i = existing + 1; i <= dirs; i++) {
      const path = this.#path(names, i);
      try {
        await Deno.mkdir(path);
        continue;
      } catch (e) {
        if (isMissing(e)) {
          if (i > 1) return false;
          throw new LocalFsError(key, "write", {
            cause: e,
            detail: `the root directory "${this.#root}" is missing`,
          });
        }
        if (!(e instanceof Deno.errors.AlreadyExists)) throw fsError(e, key, "write");
      }
      // Made by someone else meanwhile: it must be a real directory too.
      const info = await lstatOrUndefined(path).catch((e) => {
        throw fsError(e, key, "write");
      });
      if (info === undefined) return false;
      if (!isRealDir(info)) throw refused(key, "write", path, describe(info));
    }
    return undefined;
  }

  /** Opens an object for reading, verified to be a regular file inside the root. */
  async #openObject(key: string): Promise<{ handle: FileHandle; size: number }> {
    this.#check();
    validateKey(key);
    const names = keyNames(key);
    const dirs = names.length - 1;
    const path = this.#path(names);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const infos = await this.#lstatPath(key, "read", names, names.length);
      if (this.#existingDirs(key, "read", names, infos, dirs) < dirs) throw new NotFoundError(key);
      const info = infos[dirs];
      if (info === undefined) throw new NotFoundError(key);
      if (!isRealFile(info)) throw refused(key, "read", path, describe(info));
      let handle: FileHandle;
      try {
        handle = await openHandle(path, READ_FLAGS);
      } catch (e) {
        // Changed since the check (deleted, or swapped for a link): look again.
        if (isMissing(e) || errnoOf(e) === "ELOOP" || errnoOf(e) === "ENOTDIR") continue;
        throw fsError(e, key, "read");
      }
      try {
        const opened = await handle.stat();
        if (await this.#isAt(opened, key, "read", names) && opened.isFile()) {
          return { handle, size: opened.size };
        }
      } catch (e) {
        await handle.close();
        throw fsError(e, key, "read");
      }
      // Not the file that was checked: something raced the open. Look again.
      await handle.close();
    }
    throw new TransientError(`"${key}" kept changing while being opened; try again`);
  }

  /**
   * Reads a whole object.
   *
   * @param key The object's key.
   * @returns Its bytes.
   * @throws {NotFoundError} when there is no such object.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("a/b", new Uint8Array([7]));
   * console.log(await driver.get("a/b")); // Uint8Array(1) [ 7 ]
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async get(key: string): Promise<Uint8Array> {
    const { handle, size } = await this.#openObject(key);
    try {
      return await readAt(handle, 0, size);
    } catch (e) {
      throw fsError(e, key, "read");
    } finally {
      await handle.close();
    }
  }

  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object.
   *
   * @param key The object's key.
   * @param offset Where to start (0-based).
   * @param length How many bytes at most.
   * @returns The bytes in range (empty when the range starts at or past the end).
   * @throws {NotFoundError} when there is no such object.
   * @throws {InvalidArgumentError} when `offset` or `length` is negative or not an integer.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array([1, 2, 3, 4]));
   * console.log(await driver.getRange("k", 2, 10)); // Uint8Array(2) [ 3, 4 ]
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    validateRange(offset, length);
    const { handle, size } = await this.#openObject(key);
    try {
      if (offset >= size) return new Uint8Array(0);
      return await readAt(handle, offset, Math.min(length, size - offset));
    } catch (e) {
      throw fsError(e, key, "read");
    } finally {
      await handle.close();
    }
  }

  /**
   * Reports an object's size.
   *
   * @param key The object's key.
   * @returns Its {@linkcode ObjectInfo}.
   * @throws {NotFoundError} when there is no such object.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array(5));
   * console.log(await driver.stat("k")); // { key: "k", size: 5 }
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async stat(key: string): Promise<ObjectInfo> {
    const { handle, size } = await this.#openObject(key);
    await handle.close();
    return { key, size };
  }

  /**
   * Writes a whole object atomically: to a temporary file in the object's
   * directory, then renamed (or, create-only, hard-linked) to its name.
   *
   * @param key The object's key.
   * @param bytes Its content.
   * @param options `ifAbsent` for a create-only put.
   * @throws {PreconditionFailedError} when `ifAbsent` is set and the key exists.
   * @throws {PermissionDeniedError} when the path holds a symlink, or the filesystem refuses.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   * import { PreconditionFailedError } from "../driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("lease", new Uint8Array([1]), { ifAbsent: true });
   * try {
   *   await driver.put("lease", new Uint8Array([2]), { ifAbsent: true });
   * } catch (e) {
   *   console.log(e instanceof PreconditionFailedError); // true
   * }
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    this.#check();
    validateKey(key);
    const names = keyNames(key);
    const dirs = names.length - 1;
    const path = this.#path(names);
    const dir = this.#path(names, dirs);
    const ifAbsent = options.ifAbsent ?? false;

    let tempNames: string[] = [];
    let handle: FileHandle | undefined;
    for (let attempt = 1; handle === undefined; attempt++) {
      if (attempt > MAX_ATTEMPTS) {
        throw new TransientError(`the directories of "${key}" keep vanishing; try again`);
      }
      const existing = await this.#makeDirs(key, names);
      if (existing === false) continue;
      // Not the create-only decision (link(2) below makes it): this refuses a
      // symlink at the object's name, and saves writing a doomed temp file.
      if (existing !== undefined && !isRealFile(existing)) {
        throw refused(key, "write", path, describe(existing));
      }
      if (existing !== undefined && ifAbsent) throw new PreconditionFailedError(key);
      tempNames = [...names.slice(0, dirs), tempName()];
      try {
        handle = await openHandle(this.#path(tempNames), CREATE_FLAGS, 0o666);
      } catch (e) {
        // The directory was pruned by a concurrent delete: make it again.
        if (!isMissing(e)) throw writeError(e, key);
      }
    }

    let temp = this.#path(tempNames);
    try {
      try {
        // Before writing a byte: the temporary file must be inside the root.
        const created = await handle.stat();
        if (!await this.#isAt(created, key, "write", tempNames)) {
          throw refused(key, "write", dir, "not the directory that was checked (it was swapped)");
        }
        await writeAll(handle, bytes);
        if (this.#durable) await handle.sync();
      } finally {
        await handle.close();
      }
      if (ifAbsent && this.#canLink) {
        try {
          await Deno.link(temp, path);
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) throw new PreconditionFailedError(key);
          throw e;
        }
      } else {
        // Without hard links a create-only put can only look, then rename
        // (capabilities.createOnly is false).
        if (ifAbsent && await lstatOrUndefined(path) !== undefined) {
          throw new PreconditionFailedError(key);
        }
        await Deno.rename(temp, path);
        temp = "";
      }
      if (this.#durable) {
        // The object's directory and every one above it: a directory created
        // by a concurrent put that has not synced it yet must not be lost.
        await Promise.all(
          Array.from({ length: dirs + 1 }, (_, i) => syncDir(this.#path(names, i))),
        );
      }
    } catch (e) {
      throw writeError(e, key);
    } finally {
      if (temp !== "") await Deno.remove(temp).catch(() => {});
    }
  }

  /**
   * Deletes an object; deleting a missing key succeeds. Directories left
   * empty are removed.
   *
   * @param key The object's key.
   * @throws {PermissionDeniedError} when the path holds a symlink, or the filesystem refuses.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.put("k", new Uint8Array([1]));
   * await driver.delete("k");
   * await driver.delete("k"); // still fine
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async delete(key: string): Promise<void> {
    this.#check();
    validateKey(key);
    const names = keyNames(key);
    const dirs = names.length - 1;
    const path = this.#path(names);
    try {
      const infos = await this.#lstatPath(key, "delete", names, names.length);
      if (this.#existingDirs(key, "delete", names, infos, dirs) < dirs) return;
      const info = infos[dirs];
      if (info === undefined) return;
      if (!isRealFile(info)) throw refused(key, "delete", path, describe(info));
      try {
        await Deno.remove(path);
      } catch (e) {
        if (isMissing(e)) return;
        throw e;
      }
      if (this.#durable) await syncDir(this.#path(names, dirs));
    } catch (e) {
      throw fsError(e, key, "delete");
    }
    // Remove the directories this delete left empty, deepest first; a
    // directory still in use (not empty) stops it. A put racing this makes
    // its directories again.
    for (let i = dirs; i >= 1; i--) {
      try {
        await Deno.remove(this.#path(names, i));
      } catch {
        break;
      }
    }
  }

  /**
   * Lists objects under a prefix in key order ({@linkcode compareKeys}),
   * reading one directory at a time; subtrees entirely before `startAfter`
   * or outside the prefix are skipped unread. Temporary files, and names that
   * are not in the layout, are not listed; a symlink is refused.
   *
   * @param prefix A plain string prefix (`""` for everything).
   * @param options `startAfter` to resume after a key.
   * @returns The objects, in order.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * for (const key of ["a/c", "a-b", "b"]) await driver.put(key, new Uint8Array(1));
   * for await (const { key } of driver.list("", { startAfter: "a-b" })) console.log(key); // "a/c", "b"
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    this.#check();
    validateListArgs(prefix, options);
    const after = options.startAfter;
    const heap = new Heap<ListNode>(compareNodes);
    heap.push({ dir: true, bound: "", names: [] });
    for (let node = heap.pop(); node !== undefined; node = heap.pop()) {
      this.#check();
      if (!node.dir) {
        yield { key: node.bound, size: node.size };
        continue;
      }
      for (const child of await this.#expand(node, prefix, after)) heap.push(child);
    }
  }

  /** Reads one directory of a listing: its wanted entries, decoded, objects with their sizes. */
  async #expand(node: DirNode, prefix: string, after: string | undefined): Promise<ListNode[]> {
    const path = this.#path(node.names);
    const shown = node.bound === "" ? "(root)" : node.bound;
    const entries: Deno.DirEntry[] = [];
    try {
      if (node.names.length > 0) {
        // The parent listed this as a directory, possibly long ago: look again.
        const info = await Deno.lstat(path);
        if (!info.isDirectory || info.isSymlink) throw refused(shown, "list", path, describe(info));
      }
      for await (const entry of Deno.readDir(path)) entries.push(entry);
    } catch (e) {
      // A directory emptied and pruned by a concurrent delete holds nothing;
      // the root missing is a failure, never an empty listing.
      if (isMissing(e) && node.names.length > 0) return [];
      throw fsError(e, shown, "list");
    }

    const children: ListNode[] = [];
    const objects: { key: string; path: string }[] = [];
    for (const entry of entries) {
      const marker = entry.name.slice(-1);
      if (marker !== OBJECT && marker !== KEY_DIR && marker !== PIECE_DIR) continue;
      const piece = decodePiece(entry.name.slice(0, -1));
      if (piece === undefined) continue; // temp files and foreign names
      const names = [...node.names, entry.name];
      const entryPath = path + SEP + entry.name;
      if (marker === OBJECT) {
        const key = node.bound + piece;
        if (!keyWanted(key, prefix, after)) continue;
        // Each key has exactly one place; a name elsewhere is not one of ours.
        if (!isValidKey(key) || keyNames(key).join("/") !== names.join("/")) continue;
        if (!entry.isFile || entry.isSymlink) {
          throw refused(key, "list", entryPath, describe(entry));
        }
        objects.push({ key, path: entryPath });
      } else {
        const bound = node.bound + piece + (marker === KEY_DIR ? "/" : "");
        if (!dirWanted(bound, prefix, after)) continue;
        if (!entry.isDirectory || entry.isSymlink) {
          throw refused(bound, "list", entryPath, describe(entry));
        }
        children.push({ dir: true, bound, names });
      }
    }

    for (let i = 0; i < objects.length; i += STAT_BATCH) {
      const batch = objects.slice(i, i + STAT_BATCH);
      const infos = await Promise.all(batch.map(async ({ key, path }) => {
        try {
          return await lstatOrUndefined(path);
        } catch (e) {
          throw fsError(e, key, "list");
        }
      }));
      batch.forEach(({ key, path }, j) => {
        const info = infos[j];
        if (info === undefined) return; // deleted since the directory was read
        if (!info.isFile || info.isSymlink) throw refused(key, "list", path, describe(info));
        children.push({ dir: false, bound: key, size: info.size });
      });
    }
    return children;
  }

  /**
   * Marks the driver closed; later calls throw {@linkcode ClosedError}.
   * Nothing is held open between calls, so there is nothing else to release.
   *
   * @returns When closed.
   *
   * @example
   * ```ts
   * import { openLocalFs } from "./driver.ts";
   *
   * const root = await Deno.makeTempDir();
   * const driver = await openLocalFs(root);
   * await driver.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

/**
 * Opens a driver on a directory. The path is resolved (symlinks in it
 * followed, once) and the result is the root from then on.
 *
 * @param root The directory's path, absolute or relative to the working directory.
 * @param options `durable` to fsync every change; `create` to create the directory.
 * @returns The driver.
 * @throws {InvalidArgumentError} when the directory does not exist (and
 * `create` is not set) or is not a directory.
 *
 * @example
 * ```ts
 * import { openLocalFs } from "./driver.ts";
 *
 * const parent = await Deno.makeTempDir();
 * const driver = await openLocalFs(`${parent}/store`, { create: true, durable: true });
 * console.log(driver.location, driver.capabilities); // "/tmp/…/store" { createOnly: true, durable: true }
 * await driver.close();
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function openLocalFs(
  root: string,
  options: LocalFsOptions = {},
): Promise<LocalFsDriver> {
  const durable = options.durable ?? false;
  if (typeof root !== "string" || root === "") {
    throw new InvalidArgumentError("a localfs root must be a non-empty path");
  }
  let real: string;
  try {
    if (options.create) await makeRoot(root, durable);
    real = await Deno.realPath(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InvalidArgumentError(
        `the directory "${root}" does not exist (open it with { create: true } to create it)`,
        { cause: e },
      );
    }
    throw fsError(e, root, "open");
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(real);
  } catch (e) {
    throw fsError(e, real, "open");
  }
  if (!info.isDirectory) {
    throw new InvalidArgumentError(`"${real}" is not a directory`);
  }
  return construct(real, durable, await probeLink(real));
}
