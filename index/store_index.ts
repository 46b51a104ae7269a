/**
 * The StoreIndex: a SQLite database (native `node:sqlite`, in memory) that answers every
 * lookup of a store. It is only a cache: everything in it can be rebuilt from
 * the Location's packs (and, in `Local`/`Replicated` manifest storage, the
 * host's manifest log).
 *
 * It holds the packs indexed so far, every blob (regular and chunk) with where
 * it lives, every manifest with its ordered blob list, and the current version
 * of each artifact. Every lookup made by `get`, `list` and `put` goes through
 * an index (checked by its tests with `EXPLAIN QUERY PLAN`).
 *
 * @module
 */

import { Database, loadSqlite, type SqlValue, type Statement } from "./_sqlite.ts";
import { holdWorkCopy, stampFile, workPath } from "./_cache_file.ts";
import { CapsaError, CorruptObjectError } from "../errors.ts";
import { ulidFromBytes, ulidInto, ulidToBytes } from "./_ulid_bytes.ts";
import { INDEX_SCHEMA_VERSION, IndexTooNewError, migrate, schemaVersionOf } from "./schema.ts";
import type { Manifest } from "../format/manifest.ts";
import type { BlobKind } from "../format/pack.ts";

/** The meta row holding the high-water mark of the pack listing. */
const HIGH_WATER_MARK = "listed_through";

/** Where a blob lives and how big it is. */
export interface BlobRecord {
  /** The blob id (hex digest of its raw bytes). */
  blobId: string;
  /** `regular` (a whole body) or `chunk` (a piece of a large body). */
  kind: BlobKind;
  /** Size of its raw bytes. */
  rawSize: number;
  /** Size as stored (differs once compression or encryption apply). */
  storedSize: number;
  /** The pack holding it, or `null` for a loose blob. */
  packId: string | null;
  /** Its offset in the pack (`null` for a loose blob). */
  offset: number | null;
}

/** One manifest as the index keeps it: the manifest and the pack that carried it. */
export interface ManifestRecord extends Manifest {
  /** The pack that carried the manifest (`null` when it came from the host manifest log). */
  packId: string | null;
}

/** A pack as the index keeps it. */
export interface PackRecord {
  /** The pack id (a ULID: time-ordered). */
  packId: string;
  /** The pack's size in bytes. */
  size: number;
  /** Blobs in its TOC. */
  blobCount: number;
  /** Manifests in its TOC. */
  manifestCount: number;
}

/** What {@linkcode StoreIndex.indexPack} records for one pack. */
export interface IndexedPack {
  /** The pack itself. */
  pack: PackRecord;
  /** Its blobs. */
  blobs: BlobRecord[];
  /** Its manifests. */
  manifests: ManifestRecord[];
  /** The packs it supersedes (garbage collection's rewrite): indexing it retires them. */
  supersedes?: readonly string[];
}

/** Options of {@linkcode StoreIndex.list}. */
export interface IndexListOptions {
  /** Only keys starting with this. */
  prefix?: string;
  /** Only keys strictly after this one (the cursor). */
  after?: string;
  /** At most this many (default 1000). */
  limit?: number;
}

/** Counts kept by the index. */
export interface IndexCounts {
  /** Live artifacts (not deleted). */
  artifacts: number;
  /** Manifests, tombstones included. */
  manifests: number;
  /** Blobs (regular + chunks). */
  blobs: number;
  /** Packs. */
  packs: number;
  /** Raw bytes of every blob. */
  blobBytes: number;
  /** Bytes of every pack. */
  packBytes: number;
}

const KIND_CODE: Record<BlobKind, number> = { regular: 0, chunk: 1 };

function str(v: SqlValue | undefined): string {
  return typeof v === "string" ? v : String(v ?? "");
}
function num(v: SqlValue | undefined): number {
  return typeof v === "number" ? v : Number(v ?? 0);
}

/** The columns {@linkcode StoreIndex}'s `#record` reads, of `manifests m` joined with `packs p`. */
const RECORD_COLUMNS =
  "m.manifest_id, m.namespace, m.key, m.created, m.size, m.digest, m.content_type, m.metadata, " +
  "m.deleted, m.inline_body, p.pack_id, m.blob_ids";

/** Every artifact's current version: the greatest manifest id of each key (bare columns from its row). */
const CURRENT_VERSIONS =
  "SELECT namespace, key, max(manifest_id), deleted, size FROM manifests GROUP BY namespace, key";

/** Rows per multi-row statement: a few fixed sizes, so a few prepared statements serve all. */
const BATCH_SIZES = [256, 64, 16, 4, 1];

/** Splits `n` rows into `[offset, count]` batches of the sizes in {@linkcode BATCH_SIZES}. */
function batches(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  for (const size of BATCH_SIZES) {
    while (n - at >= size) {
      out.push([at, size]);
      at += size;
    }
  }
  return out;
}

const ROWS = new Map<string, string>();
/** `(?, …), (?, …)`: `n` rows of `width` placeholders. */
function rows(n: number, width: number): string {
  const k = `${n}x${width}`;
  let text = ROWS.get(k);
  if (text === undefined) {
    const row = `(${Array(width).fill("?").join(", ")})`;
    text = Array(n).fill(row).join(", ");
    ROWS.set(k, text);
  }
  return text;
}

/** A hex id (blob id or digest) as the 32 bytes the index stores. */
function idBytes(hex: string): Uint8Array {
  return Uint8Array.fromHex(hex);
}

/** Blob ids as one column: their 32-byte forms, concatenated in order. */
function joinIds(ids: readonly string[]): Uint8Array {
  const out = new Uint8Array(ids.length * 32);
  ids.forEach((id, i) => out.set(Uint8Array.fromHex(id), i * 32));
  return out;
}

/**
 * The 32-byte forms of a statement's hex ids, written into one buffer: a
 * multi-row insert binds views of it instead of one fresh array per id (at a
 * rebuild's scale the allocations and their collection cost more than the
 * conversion).
 */
class IdArena {
  #buf: Uint8Array;
  #at = 0;
  /** @param count How many 32-byte ids it will hold. @param ulids And how many manifest ids. */
  constructor(count: number, ulids = 0) {
    this.#buf = new Uint8Array(count * 32 + ulids * 16);
  }
  /**
   * A manifest id's 16 bytes (a view).
   * @param id The ULID.
   * @returns Its bytes.
   * @throws {InvalidArgumentError} when `id` is not a ULID.
   */
  ulid(id: string): Uint8Array {
    if (!ulidInto(id, this.#buf, this.#at)) return ulidToBytes(id);
    this.#at += 16;
    return this.#buf.subarray(this.#at - 16, this.#at);
  }
  /** One id. @param hex 64 hex digits. @returns Its bytes (a view). */
  one(hex: string): Uint8Array {
    const view = this.#buf.subarray(this.#at, this.#at + 32);
    if (hex.length !== 64 || view.setFromHex(hex).written !== 32) return idBytes(hex);
    this.#at += 32;
    return view;
  }
  /** Ids concatenated in order. @param hexes The ids. @returns Their bytes (a view). */
  many(hexes: readonly string[]): Uint8Array {
    const start = this.#at;
    for (const h of hexes) {
      if (
        h.length !== 64 || this.#buf.subarray(this.#at, this.#at + 32).setFromHex(h).written !== 32
      ) {
        this.#at = start;
        return joinIds(hexes);
      }
      this.#at += 32;
    }
    return this.#buf.subarray(start, this.#at);
  }
}

function splitIds(bytes: Uint8Array): string[] {
  const ids: string[] = [];
  for (let at = 0; at + 32 <= bytes.length; at += 32) ids.push(bytes.subarray(at, at + 32).toHex());
  return ids;
}

/**
 * A manifest's digest as the `digest` column holds it (schema version 4):
 * NULL when the body is one blob whose id is the digest, an empty blob for
 * an empty digest beside one blob id (never in a valid manifest, kept so that
 * every row reads back as written), else its bytes (NULL for none).
 */
function digestColumn(m: ManifestRecord, ids: IdArena): SqlValue {
  if (m.blobs.length === 1) {
    if (m.digest === m.blobs[0]) return null;
    if (m.digest === "") return new Uint8Array(0);
  }
  return m.digest === "" ? null : ids.one(m.digest);
}

/** The digest of a row, from its `digest` and `blob_ids` columns (see {@linkcode digestColumn}). */
function digestOf(digest: SqlValue | undefined, blobIds: SqlValue | undefined): string {
  if (digest instanceof Uint8Array) return digest.toHex();
  if (blobIds instanceof Uint8Array && blobIds.length === 32) return blobIds.toHex();
  return "";
}

/** A manifest id column's text. */
function manifestIdOf(v: SqlValue | undefined): string {
  if (!(v instanceof Uint8Array)) throw new TypeError("a manifest id column does not hold bytes");
  return ulidFromBytes(v);
}

/** The exclusive upper bound of keys starting with `prefix`, when one is cheap to compute. */
function prefixEnd(prefix: string): string | undefined {
  if (prefix === "") return undefined;
  const last = prefix.charCodeAt(prefix.length - 1);
  if (last >= 0xd800 && last <= 0xdfff) return undefined;
  if (last === 0xffff) return undefined;
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

/** The lock held on each working copy ({@linkcode holdWorkCopy}), by its database. */
const HELD = new WeakMap<Database, Deno.FsFile>();

/** Opens a working copy read-write and holds its lock (`held`: taken already). */
function openWorkCopy(path: string, held?: Deno.FsFile): Database {
  const lock = held ?? holdWorkCopy(path);
  try {
    const db = new Database({ path });
    HELD.set(db, lock);
    return db;
  } catch (e) {
    lock.close();
    throw e;
  }
}

/** Releases a working copy's lock (after it was published or deleted). */
function release(db: Database): void {
  HELD.get(db)?.close();
  HELD.delete(db);
}

/** The first 100 bytes of a file (a SQLite header), hex. */
function headOf(path: string): string {
  using f = Deno.openSync(path);
  const b = new Uint8Array(100);
  f.readSync(b);
  return b.toHex();
}

/**
 * A Bloom filter of blob ids: 10 bits per id and 7 probes (about 1% false
 * positives). Blob ids are uniform digests, so their own bits are the
 * hashes: two 32-bit words of the id give the 7 probes (`a + i·b`, double
 * hashing). It grows in layers: when a layer holds its capacity, a new one of
 * twice the capacity takes the next ids, and a lookup asks every layer (a few
 * at most). Growing this way costs no scan of the blobs already indexed
 * (rebuilding the filter at twice the size did: 0.4 s of a 200,000-file put).
 */
class BlobBloom {
  readonly #layers: Array<{ bits: Uint32Array; mask: number; capacity: number; count: number }> =
    [];

  constructor(capacity: number) {
    this.#grow(capacity);
  }

  #grow(capacity: number): void {
    let size = 32;
    while (size < capacity * 10) size *= 2;
    this.#layers.push({ bits: new Uint32Array(size / 32), mask: size - 1, capacity, count: 0 });
  }

  add(id: string): void {
    let layer = this.#layers[this.#layers.length - 1]!;
    if (layer.count >= layer.capacity) {
      this.#grow(layer.capacity * 2);
      layer = this.#layers[this.#layers.length - 1]!;
    }
    const a = parseInt(id.slice(0, 8), 16);
    const b = parseInt(id.slice(8, 16), 16) | 1;
    const { bits, mask } = layer;
    for (let i = 0, h = a; i < 7; i++, h = (h + b) | 0) {
      const bit = h & mask;
      bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    layer.count++;
  }

  has(id: string): boolean {
    const a = parseInt(id.slice(0, 8), 16);
    const b = parseInt(id.slice(8, 16), 16) | 1;
    for (const { bits, mask } of this.#layers) {
      let hit = true;
      for (let i = 0, h = a; i < 7; i++, h = (h + b) | 0) {
        const bit = h & mask;
        if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) {
          hit = false;
          break;
        }
      }
      if (hit) return true;
    }
    return false;
  }
}

/**
 * The index of one store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreIndex } from "@capsa/capsa";
 * const index = await StoreIndex.create("01JSTOREID0000000000000000");
 * assert.deepEqual(index.counts().artifacts, 0);
 * const copy = await StoreIndex.load(index.export(), { storeId: index.storeId, key: "cache" });
 * copy.close();
 * index.close();
 * ```
 */
export class StoreIndex {
  #db: Database;
  /**
   * File mode: the directory working copies go to, and whether the database
   * is a published host cache opened read-only (the first write copies it).
   */
  #file: { workDir: string; published: boolean } | undefined;
  /** The first 100 bytes (hex) of the published file, as opened. */
  #head = "";
  /** A high-water mark not yet written (the database is a published cache). */
  #pendingMark = "";
  #stmts = new Map<string, Statement>();
  #bloom: BlobBloom | undefined;
  #gcSeen = "";
  /** Writes so far, and their count when the host cache was last written from this index. */
  #changes = 0;
  #cachedAt = -1;
  /** In bulk mode: the SQL of the indexes and triggers to create when it ends. */
  #deferred: Array<{ type: string; sql: string }> | undefined;
  /** The store this index belongs to. */
  readonly storeId: string;

  private constructor(
    db: Database,
    storeId: string,
    file?: { workDir: string; published: boolean },
  ) {
    StoreIndex.#tune(db);
    this.#db = db;
    this.#file = file;
    this.storeId = storeId;
  }

  static #tune(db: Database): void {
    // In memory the database is persisted by export; in a file it is a private working copy
    // until published by a rename (docs/DESIGN.md §5.3): a torn one is never used, so a
    // rollback journal in memory is enough and nothing is synced.
    db.run("PRAGMA journal_mode = MEMORY");
    db.run("PRAGMA synchronous = OFF");
    db.run("PRAGMA temp_store = MEMORY");
    // A bounded page cache (64 MiB): a file-backed index never holds all its pages in memory.
    if (db.file) db.run("PRAGMA cache_size = -65536");
    // Locks taken once and kept: by default every statement outside a transaction takes and
    // drops a shared lock and re-reads the file header to check its cache, 4 fcntl calls and a
    // pread, which made a point lookup cost 20 µs instead of 5 on this VM (BENCHMARKS.md). No
    // other connection ever writes these files: a working copy belongs to one process, and a
    // published cache is never written again, only replaced by a rename (DESIGN.md §5.1).
    if (db.file) db.run("PRAGMA locking_mode = EXCLUSIVE");
  }

  /**
   * Creates an empty index at the current schema version.
   * @param storeId The store it belongs to.
   * @returns The index.
   */
  static async create(storeId: string, options: { dir?: string } = {}): Promise<StoreIndex> {
    const SQL = await loadSqlite();
    const dir = options.dir;
    let db: Database;
    if (dir === undefined) db = new SQL.Database();
    else {
      const path = workPath(dir);
      db = openWorkCopy(path, holdWorkCopy(path, true));
    }
    try {
      migrate(db);
      db.run("INSERT INTO meta (name, value) VALUES ('store_id', ?)", [storeId]);
    } catch (e) {
      StoreIndex.#discard(db);
      throw e;
    }
    return new StoreIndex(
      db,
      storeId,
      dir === undefined ? undefined : { workDir: dir, published: false },
    );
  }

  /** Closes a database and deletes its file when it is a working copy. */
  static #discard(db: Database): void {
    db.close();
    if (db.file && !db.file.readOnly) {
      try {
        Deno.removeSync(db.file.path);
      } catch {
        // Already gone, or left to the orphan sweep.
      }
    }
    release(db);
  }

  /**
   * Opens an index file in place and checks it belongs to `storeId`; an older
   * schema is migrated (in a working copy when the file is published).
   *
   * @param path The database file.
   * @param options The expected store id, a name for errors, the directory
   *   for working copies, and whether the file is a published host cache
   *   (opened read-only; the first write copies it) or a working copy of this
   *   process (deleted when the index closes without publishing it).
   * @returns The index.
   * @throws {CorruptObjectError} when the file is not a usable index of this store.
   * @throws {IndexTooNewError} when it was written by a newer capsa.
   */
  static async openFile(
    path: string,
    options: {
      storeId: string;
      key: string;
      workDir: string;
      published: boolean;
      held?: Deno.FsFile;
    },
  ): Promise<StoreIndex> {
    const SQL = await loadSqlite();
    let db: Database;
    try {
      db = options.published
        ? new SQL.Database({ path, readOnly: true })
        : openWorkCopy(path, options.held);
      db.exec("PRAGMA schema_version");
    } catch (cause) {
      if (!options.published) {
        options.held?.close();
        Deno.removeSync(path);
      }
      throw new CorruptObjectError(options.key, "the database is damaged", { cause });
    }
    const file = { workDir: options.workDir, published: options.published };
    const index = StoreIndex.#checked(db, options, () => new StoreIndex(db, options.storeId, file));
    if (options.published) index.#head = headOf(path);
    if (schemaVersionOf(index.#db) < INDEX_SCHEMA_VERSION) {
      try {
        index.#writable();
        migrate(index.#db);
      } catch (e) {
        index.close();
        throw e instanceof CapsaError
          ? e
          : new CorruptObjectError(options.key, "the database could not be migrated", { cause: e });
      }
    }
    return index;
  }

  /** Checks a database's schema and owner, then makes the index; closes the database on failure. */
  static #checked(
    db: Database,
    options: { storeId: string; key: string },
    make: () => StoreIndex,
  ): StoreIndex {
    const { key } = options;
    try {
      const version = schemaVersionOf(db);
      if (version === 0) throw new CorruptObjectError(key, "no capsa schema in the database");
      if (version > INDEX_SCHEMA_VERSION) throw new IndexTooNewError(version, INDEX_SCHEMA_VERSION);
      const owner = db.exec("SELECT value FROM meta WHERE name = 'store_id'")[0]?.values[0]?.[0];
      if (owner !== options.storeId) {
        throw new CorruptObjectError(
          key,
          `belongs to store ${String(owner)}, expected ${options.storeId}`,
        );
      }
      return make();
    } catch (e) {
      if (db.file?.readOnly) db.close();
      else StoreIndex.#discard(db);
      if (e instanceof CorruptObjectError) throw e;
      if (e instanceof IndexTooNewError) throw e;
      throw new CorruptObjectError(key, "the database does not hold a readable capsa index", {
        cause: e,
      });
    }
  }

  /**
   * The file the database lives in (`undefined` in memory). Between
   * transactions it holds every committed change, so it can be read as the
   * bytes of the database.
   */
  get file(): string | undefined {
    return this.#db.file?.path;
  }

  /** Whether the database is the published host cache, opened read-only. */
  get published(): boolean {
    return this.#file?.published ?? false;
  }

  /**
   * Before a write: a published cache is copied to a private working copy
   * (a file copy in the kernel, not through memory) and the copy opened in
   * its place. When the host directory cannot take the copy, the database
   * moves to memory instead.
   */
  #writable(): void {
    const file = this.#file;
    if (!file?.published) return;
    const from = this.#db.file!.path;
    const to = workPath(file.workDir);
    this.#stmts.clear();
    let next: Database;
    let lock: Deno.FsFile | undefined;
    try {
      lock = holdWorkCopy(to, true);
      Deno.copyFileSync(from, to);
      // The cache may have been replaced (renamed over) since it was opened: copy the same one.
      if (headOf(to) !== this.#head) throw new Error("the host cache was replaced meanwhile");
      next = openWorkCopy(to, lock);
      this.#file = { workDir: file.workDir, published: false };
    } catch {
      lock?.close();
      try {
        Deno.removeSync(to);
      } catch { /* not made */ }
      next = new Database(this.#db.native.serialize());
      this.#file = undefined;
    }
    this.#db.close();
    StoreIndex.#tune(next);
    this.#db = next;
    if (this.#pendingMark !== "") {
      const mark = this.#pendingMark;
      this.#pendingMark = "";
      this.setMeta(HIGH_WATER_MARK, mark);
    }
  }

  /**
   * Creates an empty index for a bulk load (a rebuild's full scan): no
   * rollback journal, and the secondary indexes and the statistics triggers
   * left out until {@linkcode StoreIndex.finishBulk}, which builds them once
   * over all the rows (cheaper than keeping them up to date row by row). Until
   * then only primary-key and unique lookups are fast, and a failed
   * transaction leaves the index unusable: a bulk index is discarded on any
   * error.
   * @param storeId The store it belongs to.
   * @param options `dir`: build it in a working copy in this directory
   *   (published later by {@linkcode StoreIndex.publish}) instead of in memory.
   * @returns The index, in bulk mode.
   */
  static async createBulk(storeId: string, options: { dir?: string } = {}): Promise<StoreIndex> {
    const index = await StoreIndex.create(storeId, options);
    const db = index.#db;
    const deferred = db.exec(
      // The manifests' by-pack index stays: rows arrive in pack order (cheap to keep), and
      // retiring a pack (garbage collection's superseding packs) finds its rows through it. So
      // does the by-id index: ids are time-ordered, so they arrive nearly in order, and it is
      // what makes a manifest indexed twice (a copy, or TOC and host log) a no-op.
      "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL " +
        "AND name NOT IN ('manifests_by_pack', 'manifests_by_id') " +
        "ORDER BY type, name",
    )[0]?.values ?? [];
    for (const [type, name] of deferred) db.run(`DROP ${str(type).toUpperCase()} ${str(name)}`);
    // Blob rows go to a heap in arrival order and into the blobs table once, sorted by id, at
    // finishBulk: inserting random 32-byte keys pack by pack into the table's B-tree cost
    // 3× the staged, sorted insert (1.7 s against 0.6 s for 200,000 rows).
    db.run(
      "CREATE TEMP TABLE bulk_blobs (blob_id BLOB NOT NULL, kind INTEGER NOT NULL, " +
        "raw_size INTEGER NOT NULL, stored_size INTEGER NOT NULL, pack_no INTEGER, offset INTEGER)",
    );
    db.run("PRAGMA journal_mode = OFF");
    index.#deferred = deferred.map((r) => ({ type: str(r[0]), sql: str(r[2]) }));
    return index;
  }

  /**
   * Ends a bulk load: builds the secondary indexes, restores the triggers and
   * fills the per-namespace statistics from the current versions (as schema
   * step 2 does), then turns the journal back on. A no-op on an index not in
   * bulk mode.
   */
  finishBulk(): void {
    const deferred = this.#deferred;
    if (deferred === undefined) return;
    this.transaction(() => {
      // One row per blob id, in id order: a copy in a pack that garbage collection retired
      // gives way to one elsewhere (as #putBlobs's conflict rule does), else the first indexed.
      this.#db.run(
        "INSERT INTO blobs (blob_id, kind, raw_size, stored_size, pack_no, offset) " +
          "SELECT blob_id, kind, raw_size, stored_size, pack_no, offset FROM temp.bulk_blobs " +
          // (WHERE true: SQLite's parser needs it before an upsert clause after a SELECT.)
          "WHERE true ORDER BY blob_id, pack_no IN (SELECT p.pack_no FROM packs p " +
          "JOIN retired_packs r ON r.pack_id = p.pack_id), rowid " +
          "ON CONFLICT (blob_id) DO NOTHING",
      );
      this.#db.run("DROP TABLE temp.bulk_blobs");
      for (const d of deferred) if (d.type === "index") this.#db.run(d.sql);
      for (const d of deferred) if (d.type !== "index") this.#db.run(d.sql);
      // The current version of each artifact is its greatest manifest id (SQLite takes the
      // other columns from the row holding the max), read in key order through manifests_by_key.
      this.#db.run("DELETE FROM namespace_stats");
      this.#db.run(
        "INSERT INTO namespace_stats (namespace, artifacts, bytes) " +
          "SELECT namespace, count(*), sum(size) FROM (" + CURRENT_VERSIONS +
          ") WHERE deleted = 0 GROUP BY namespace",
      );
    });
    this.#db.run("PRAGMA journal_mode = MEMORY");
    this.#deferred = undefined;
    this.#changes++;
  }

  /**
   * Loads an exported index, checks it belongs to `storeId`, and migrates an
   * older schema forward.
   *
   * @param bytes The exported database.
   * @param options The expected store id and a name for errors (the cache path or snapshot key).
   * @returns The index.
   * @throws {CorruptObjectError} when the bytes are not a usable index of this store.
   * @throws {IndexTooNewError} when it was written by a newer capsa.
   */
  static async load(
    bytes: Uint8Array,
    options: { storeId: string; key: string },
  ): Promise<StoreIndex> {
    const SQL = await loadSqlite();
    const { key } = options;
    if (
      bytes.length < 512 || new TextDecoder().decode(bytes.subarray(0, 15)) !== "SQLite format 3"
    ) {
      throw new CorruptObjectError(key, "not a SQLite database");
    }
    let db: Database;
    try {
      db = new SQL.Database(bytes);
      // Snapshots and the host cache carry a checksum of these bytes, checked before this
      // point; a full integrity check would read every page (0.4 s per 300 MiB) for nothing.
      // Reading the schema catches a file that is not a database at all.
      db.exec("PRAGMA schema_version");
    } catch (cause) {
      throw new CorruptObjectError(key, "the database is damaged", { cause });
    }
    const index = StoreIndex.#checked(db, options, () => new StoreIndex(db, options.storeId));
    try {
      migrate(db);
    } catch (e) {
      index.close();
      throw e instanceof CapsaError
        ? e
        : new CorruptObjectError(key, "the database could not be migrated", { cause: e });
    }
    return index;
  }

  #stmt(sql: string): Statement {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #all(sql: string, params: SqlValue[]): SqlValue[][] {
    return this.#stmt(sql).all(...params) as unknown as SqlValue[][];
  }

  #one(sql: string, params: SqlValue[]): SqlValue[] | undefined {
    return this.#stmt(sql).get(...params) as unknown as SqlValue[] | undefined;
  }

  #exists(sql: string, params: SqlValue[]): boolean {
    return this.#stmt(sql).get(...params) !== undefined;
  }

  #run(sql: string, params: SqlValue[]): void {
    this.#writable();
    this.#changes++;
    this.#stmt(sql).run(...params);
  }

  /**
   * Whether the host cache holds this index as it is now: set by
   * {@linkcode StoreIndex.markHostCacheCurrent} after the cache was written
   * from it, cleared by any change. A handle closing skips rewriting a cache
   * that is current (a rebuild has just written it; a read-only open never
   * changed it).
   */
  get hostCacheCurrent(): boolean {
    return this.#cachedAt === this.#changes;
  }

  /** A count of the writes made to this index so far (it only grows). */
  get changes(): number {
    return this.#changes;
  }

  /**
   * Notes that the host cache was written from this index.
   * @param changes {@linkcode StoreIndex.changes} when the cache's bytes were
   *   taken (default: now).
   */
  markHostCacheCurrent(changes: number = this.#changes): void {
    this.#cachedAt = changes;
  }

  /** The schema version of the database. @returns The version. */
  get schemaVersion(): number {
    return schemaVersionOf(this.#db);
  }

  /**
   * Runs `fn` in one transaction: all of it or nothing.
   * @param fn The work.
   * @returns What `fn` returns.
   */
  transaction<T>(fn: () => T): T {
    this.#writable();
    this.#db.run("BEGIN");
    try {
      const out = fn();
      this.#db.run("COMMIT");
      return out;
    } catch (e) {
      this.#db.run("ROLLBACK");
      throw e;
    }
  }

  /**
   * Records a pack, its blobs and its manifests in one transaction.
   * Indexing the same pack twice is harmless.
   * @param indexed The pack and its TOC.
   * @param options `nested` when the caller already opened a transaction (batches).
   * @returns How many manifests were new to the index.
   */
  indexPack(indexed: IndexedPack, options: { nested?: boolean } = {}): number {
    const work = () => {
      const p = indexed.pack;
      // A pack garbage collection replaced is never indexed again (docs/FORMAT.md §8).
      if (this.isRetired(p.packId)) return 0;
      if (indexed.supersedes && indexed.supersedes.length > 0) this.#supersede(indexed.supersedes);
      this.#run(
        "INSERT OR IGNORE INTO packs (pack_id, size, blob_count, manifest_count) VALUES (?, ?, ?, ?)",
        [p.packId, p.size, p.blobCount, p.manifestCount],
      );
      const packNo = this.#packNo(p.packId);
      this.#putBlobs(indexed.blobs, packNo);
      return this.#putManifests(indexed.manifests, packNo);
    };
    return options.nested ? work() : this.transaction(work);
  }

  /**
   * Records manifests that came without a pack (the host manifest log).
   * @param manifests The manifests.
   * @returns How many were new.
   */
  indexManifests(manifests: readonly ManifestRecord[]): number {
    return this.transaction(() => {
      let added = 0;
      for (const m of manifests) {
        added += this.#putManifests([m], m.packId === null ? null : this.#packNo(m.packId));
      }
      return added;
    });
  }

  /**
   * Marks what a gc run still in its grace period will delete
   * (docs/FORMAT.md §8, G4): the packs and loose blobs stay readable (their
   * rows stay until the run is applied), but are never indexed again nor
   * deduplicated against ({@linkcode StoreIndex.canDeduplicate}), and a blob
   * row pointing at one of them gives way to a copy found elsewhere.
   * @param packIds Pack ids the run deletes.
   * @param looseBlobs Loose blob ids it deletes.
   */
  markRetired(packIds: readonly string[], looseBlobs: readonly string[]): void {
    this.transaction(() => {
      for (const id of packIds) {
        this.#run("INSERT OR IGNORE INTO retired_packs (pack_id) VALUES (?)", [id]);
      }
      for (const id of looseBlobs) {
        this.#run("INSERT OR IGNORE INTO retired_blobs (blob_id) VALUES (?)", [idBytes(id)]);
      }
    });
  }

  /**
   * The newest gc run this index has seen: applied, or marked while in its grace period.
   * @returns The run id, or `""`.
   */
  get gcSeen(): string {
    const applied = this.meta("gc_applied") ?? "";
    return this.#gcSeen > applied ? this.#gcSeen : applied;
  }

  /**
   * Records that a gc run was seen (applied or marked), for {@linkcode StoreIndex.gcSeen}.
   * @param runId The run id.
   */
  sawGcRun(runId: string): void {
    if (runId > this.#gcSeen) this.#gcSeen = runId;
  }

  /**
   * Whether a writer may name this blob instead of writing it again: the
   * index knows where it is, and garbage collection is not removing that.
   * @param blobId The blob id.
   * @returns `true` when it may be deduplicated against.
   */
  canDeduplicate(blobId: string): boolean {
    if (!this.hasBlob(blobId)) return false;
    const row = this.#one(
      "SELECT p.pack_id FROM blobs b LEFT JOIN packs p ON p.pack_no = b.pack_no WHERE b.blob_id = ?",
      [idBytes(blobId)],
    );
    if (!row) return false;
    return row[0] === null ? !this.isRetiredBlob(blobId) : !this.isRetired(str(row[0]));
  }

  /**
   * Whether garbage collection retired a pack: superseded by a pack this
   * index holds, or deleted by a gc run it applied.
   * @param packId The pack id.
   * @returns `true` when retired.
   */
  isRetired(packId: string): boolean {
    return this.#exists("SELECT 1 FROM retired_packs WHERE pack_id = ?", [packId]);
  }

  /**
   * Retires packs (docs/FORMAT.md §8): forgets their blobs and manifests,
   * records them so that they are never indexed again, and recomputes the
   * current version of every artifact whose manifest they held. A superseding
   * pack indexed in the same transaction brings back what was copied into it.
   * @param packIds The packs.
   * @param options `nested` when the caller already opened a transaction.
   */
  retirePacks(packIds: readonly string[], options: { nested?: boolean } = {}): void {
    if (options.nested) this.#retire(packIds);
    else this.transaction(() => this.#retire(packIds));
  }

  /**
   * What indexing a superseding pack does to the packs it names: they are
   * retired, their manifests give way to the copies (or are dropped), and
   * their blob rows stay, for reads, until a run that deletes them is
   * applied; the superseding pack's own blob rows replace them.
   */
  #supersede(packIds: readonly string[]): void {
    this.#retireRows(packIds, false);
  }

  /** What applying a gc run does to its packs: every row of theirs goes. */
  #retire(packIds: readonly string[]): void {
    this.#retireRows(packIds, true);
  }

  #retireRows(packIds: readonly string[], blobsToo: boolean): void {
    for (const packId of packIds) {
      this.#run("INSERT OR IGNORE INTO retired_packs (pack_id) VALUES (?)", [packId]);
      const packNo = this.#packNo(packId);
      if (packNo === null) continue;
      // The current version of a key whose manifest goes is the next greatest id left: the
      // statistics trigger moves namespace_stats to it, row by row.
      this.#run("DELETE FROM manifests WHERE pack_no = ?", [packNo]);
      if (!blobsToo) continue;
      this.#run("DELETE FROM blobs WHERE pack_no = ?", [packNo]);
      this.#run("DELETE FROM packs WHERE pack_no = ?", [packNo]);
    }
    // The Bloom filter keeps the forgotten ids: a false positive costs one query, no more.
  }

  /**
   * Whether a gc run this index applied deleted (or will delete) a loose blob.
   * @param blobId The blob id.
   * @returns `true` when retired.
   */
  isRetiredBlob(blobId: string): boolean {
    return this.#exists("SELECT 1 FROM retired_blobs WHERE blob_id = ?", [idBytes(blobId)]);
  }

  /**
   * Forgets loose blobs garbage collection deleted (a gc run this index applies).
   * @param blobIds The blob ids.
   * @param options `nested` when the caller already opened a transaction.
   */
  dropLooseBlobs(blobIds: readonly string[], options: { nested?: boolean } = {}): void {
    const work = () => {
      for (const id of blobIds) {
        this.#run("INSERT OR IGNORE INTO retired_blobs (blob_id) VALUES (?)", [idBytes(id)]);
        this.#run("DELETE FROM blobs WHERE blob_id = ? AND pack_no IS NULL", [idBytes(id)]);
      }
    };
    if (options.nested) work();
    else this.transaction(work);
  }

  /**
   * Calls `fn` for every manifest, grouped by artifact (namespace, then key)
   * and newest first within one: what garbage collection marks from. The
   * body's blob ids come without the inline body, metadata or content type.
   * @param fn Called per manifest.
   */
  forEachManifest(
    fn: (m: {
      id: string;
      namespace: string;
      key: string;
      created: number;
      deleted: boolean;
      blobs: string[];
      packId: string | null;
    }) => void,
  ): void {
    const s = this.#stmt(
      "SELECT m.manifest_id, m.namespace, m.key, m.created, m.deleted, m.blob_ids, p.pack_id " +
        "FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no " +
        "ORDER BY m.namespace, m.key, m.manifest_id DESC",
    );
    for (const row of s.iterate()) {
      const r = row as unknown as SqlValue[];
      fn({
        id: manifestIdOf(r[0]),
        namespace: str(r[1]),
        key: str(r[2]),
        created: num(r[3]),
        deleted: r[4] === 1,
        blobs: r[5] instanceof Uint8Array ? splitIds(r[5]) : [],
        packId: r[6] === null ? null : str(r[6]),
      });
    }
  }

  /** The pack_no of an indexed pack, or `null` when it is not indexed. */
  #packNo(packId: string): number | null {
    const r = this.#one("SELECT pack_no FROM packs WHERE pack_id = ?", [packId]);
    return r ? num(r[0]) : null;
  }

  /**
   * Records a loose blob (one too large for a pack).
   * @param blob The blob (with `packId` and `offset` `null`).
   */
  registerLooseBlob(blob: BlobRecord): void {
    this.#putBlobs([blob], null);
  }

  /**
   * Records blobs with multi-row statements: a pack's blobs cost a few
   * statements, not one each (each statement is a call into SQLite).
   */
  #putBlobs(blobs: readonly BlobRecord[], packNo: number | null): void {
    for (const b of blobs) {
      this.#bloom?.add(b.blobId);
    }
    for (const [at, n] of batches(blobs.length)) {
      const params: SqlValue[] = [];
      const ids = new IdArena(n);
      for (const b of blobs.slice(at, at + n)) {
        params.push(
          ids.one(b.blobId),
          KIND_CODE[b.kind],
          b.rawSize,
          b.storedSize,
          packNo,
          b.offset,
        );
      }
      if (this.#deferred !== undefined) {
        // Bulk load: into the heap; finishBulk sorts them into the blobs table.
        this.#run(
          "INSERT INTO temp.bulk_blobs (blob_id, kind, raw_size, stored_size, pack_no, offset) " +
            "VALUES " + rows(n, 6),
          params,
        );
        continue;
      }
      // A row pointing at what garbage collection retired gives way to this copy.
      this.#run(
        "INSERT INTO blobs (blob_id, kind, raw_size, stored_size, pack_no, offset) VALUES " +
          rows(n, 6) +
          " ON CONFLICT (blob_id) DO UPDATE SET kind = excluded.kind, raw_size = excluded.raw_size, " +
          "stored_size = excluded.stored_size, pack_no = excluded.pack_no, offset = excluded.offset " +
          "WHERE excluded.pack_no IS NOT NULL AND (" +
          "blobs.pack_no IN (SELECT p.pack_no FROM packs p JOIN retired_packs r ON r.pack_id = p.pack_id) " +
          "OR (blobs.pack_no IS NULL AND blobs.blob_id IN (SELECT blob_id FROM retired_blobs)))",
        params,
      );
    }
  }

  /**
   * Records manifests and moves current versions forward, with multi-row
   * statements (see {@linkcode StoreIndex.indexPack}).
   * @returns How many manifests were new.
   */
  #putManifests(manifests: readonly ManifestRecord[], packNo: number | null): number {
    let added = 0;
    for (const [at, n] of batches(manifests.length)) {
      const batch = manifests.slice(at, at + n);
      const params: SqlValue[] = [];
      let idCount = 0;
      for (const m of batch) idCount += 1 + m.blobs.length;
      const ids = new IdArena(idCount, n);
      for (const m of batch) {
        params.push(
          ids.ulid(m.id),
          m.namespace,
          m.key,
          m.created,
          m.size,
          digestColumn(m, ids),
          m.contentType === "" ? null : m.contentType,
          Object.keys(m.metadata).length === 0 ? null : JSON.stringify(m.metadata),
          m.deleted ? 1 : 0,
          m.inline ?? null,
          m.blobs.length === 0 ? null : ids.many(m.blobs),
          packNo,
        );
      }
      this.#writable();
      this.#changes++;
      // A manifest already indexed (same id, also twice in one batch: TOC and host log) is
      // ignored and not counted. The current version of its key is the greatest id: nothing else
      // to update; the statistics trigger follows it (a bulk load computes them at its end).
      const r = this.#stmt(
        "INSERT OR IGNORE INTO manifests (manifest_id, namespace, key, created, size, digest, content_type, metadata, deleted, inline_body, blob_ids, pack_no) VALUES " +
          rows(n, 12),
      ).run(...params);
      added += Number(r.changes);
    }
    return added;
  }

  #manifestAt(seq: number): ManifestRecord | undefined {
    const r = this.#one(
      `SELECT ${RECORD_COLUMNS} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no WHERE m.seq = ?`,
      [seq],
    );
    return r ? this.#record(r) : undefined;
  }

  /** A manifest's row, selected as {@linkcode RECORD_COLUMNS}, as a record. */
  #record(r: SqlValue[]): ManifestRecord {
    const blobs = r[11] instanceof Uint8Array ? splitIds(r[11]) : [];
    const record: ManifestRecord = {
      id: manifestIdOf(r[0]),
      storeId: this.storeId,
      namespace: str(r[1]),
      key: str(r[2]),
      created: num(r[3]),
      size: num(r[4]),
      digest: digestOf(r[5], r[11]),
      contentType: r[6] === null ? "" : str(r[6]),
      metadata: r[7] === null ? {} : JSON.parse(str(r[7])),
      deleted: r[8] === 1,
      blobs,
      packId: r[10] === null ? null : str(r[10]),
    };
    if (r[9] instanceof Uint8Array) record.inline = r[9];
    return record;
  }

  /**
   * The current version of an artifact, or `undefined` when it does not exist
   * or its newest manifest is a tombstone.
   * @param namespace The namespace. @param key The key.
   * @returns The manifest.
   */
  current(namespace: string, key: string): ManifestRecord | undefined {
    // One query (its row read with the lookup): every get starts here.
    const r = this.#one(
      `SELECT ${RECORD_COLUMNS} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no ` +
        "WHERE m.namespace = ? AND m.key = ? ORDER BY m.manifest_id DESC LIMIT 1",
      [namespace, key],
    );
    if (!r || r[8] === 1) return undefined;
    return this.#record(r);
  }

  /**
   * One version of an artifact (a tombstone included), looked up by its id.
   * @param namespace The namespace. @param key The key.
   * @param version The version's (manifest's) id.
   * @returns The manifest, or `undefined` when the artifact has no such version.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { StoreIndex } from "./store_index.ts";
   * const index = await StoreIndex.create("0123456789abcdef0123456789abcdef");
   * assert.equal(index.version("ns", "k", "01arz3ndektsv4rrffq69g5fav"), undefined);
   * index.close();
   * ```
   */
  version(namespace: string, key: string, version: string): ManifestRecord | undefined {
    const id = new Uint8Array(16);
    if (!ulidInto(version, id, 0)) return undefined;
    const r = this.#one(
      `SELECT ${RECORD_COLUMNS} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no ` +
        "WHERE m.manifest_id = ? AND m.namespace = ? AND m.key = ?",
      [id, namespace, key],
    );
    // Spelt exactly as indexed (ids are lower case), as a listing of the versions would match it.
    const m = r ? this.#record(r) : undefined;
    return m?.id === version ? m : undefined;
  }

  /**
   * Every manifest of an artifact, newest first, tombstones included.
   * @param namespace The namespace. @param key The key.
   * @returns The manifests.
   */
  versions(namespace: string, key: string): ManifestRecord[] {
    return this.#all(
      `SELECT ${RECORD_COLUMNS} FROM manifests m LEFT JOIN packs p ON p.pack_no = m.pack_no ` +
        "WHERE m.namespace = ? AND m.key = ? ORDER BY m.manifest_id DESC",
      [namespace, key],
    ).map((r) => this.#record(r));
  }

  /**
   * Live artifacts of a namespace in key order, after a cursor.
   * @param namespace The namespace.
   * @param options Prefix, cursor and limit.
   * @returns The current manifests.
   */
  list(namespace: string, options: IndexListOptions = {}): ManifestRecord[] {
    const prefix = options.prefix ?? "";
    const limit = Math.max(1, Math.min(options.limit ?? 1000, 100_000));
    const after = options.after;
    const lower = after !== undefined && after >= prefix ? after : prefix;
    const lowerOp = after !== undefined && after >= prefix ? ">" : ">=";
    const end = prefixEnd(prefix);
    // A walk of manifests_by_key in key order: per key, the row of its greatest id, kept when
    // it is not a tombstone; it stops after `limit` keys. Their rows are read in the same query
    // (a query per row cost 23 µs each: 4.9 s of listing 210,000 keys).
    const current = end !== undefined
      ? `SELECT seq, key, max(manifest_id), deleted FROM manifests WHERE namespace = ? AND key ${lowerOp} ? AND key < ? GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?`
      : `SELECT seq, key, max(manifest_id), deleted FROM manifests WHERE namespace = ? AND key ${lowerOp} ? AND substr(key, 1, ?) = ? GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?`;
    const rows = this.#all(
      `SELECT ${RECORD_COLUMNS} FROM (${current}) c JOIN manifests m ON m.seq = c.seq ` +
        // In the key walk's order (ordering by m.key instead sorted the page again).
        "LEFT JOIN packs p ON p.pack_no = m.pack_no ORDER BY c.key",
      end !== undefined
        ? [namespace, lower, end, limit]
        : [namespace, lower, prefix.length, prefix, limit],
    );
    return rows.map((r) => this.#record(r));
  }

  /**
   * The namespaces that hold at least one live artifact, in order.
   * @returns The namespaces.
   */
  namespaces(): string[] {
    // namespace_stats has a row exactly for each namespace with a live artifact; a bulk load
    // fills it at its end.
    return this.#all(
      this.#deferred !== undefined
        ? "SELECT DISTINCT namespace FROM (" + CURRENT_VERSIONS +
          ") WHERE deleted = 0 ORDER BY namespace"
        : "SELECT namespace FROM namespace_stats ORDER BY namespace",
      [],
    ).map((r) => str(r[0]));
  }

  /**
   * Per-namespace statistics: for each namespace holding live artifacts, how
   * many there are and the sum of their current versions' sizes (tombstones
   * count for nothing). Kept exact as manifests are indexed, in any order;
   * read from its own table, never computed by a scan.
   *
   * @returns The statistics, in namespace order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { StoreIndex } from "./store_index.ts";
   * const index = await StoreIndex.create("01JSTOREID0000000000000000");
   * assert.deepEqual(index.namespaceStats(), []);
   * index.close();
   * ```
   */
  namespaceStats(): Array<{ namespace: string; artifacts: number; bytes: number }> {
    return this.#all(
      "SELECT namespace, artifacts, bytes FROM namespace_stats ORDER BY namespace",
      [],
    ).map((r) => ({ namespace: str(r[0]), artifacts: num(r[1]), bytes: num(r[2]) }));
  }

  /**
   * Where a blob lives.
   * @param blobId The blob id.
   * @returns Its record, or `undefined` when unknown.
   */
  blob(blobId: string): BlobRecord | undefined {
    const r = this.#one(
      "SELECT b.kind, b.raw_size, b.stored_size, p.pack_id, b.offset FROM blobs b " +
        "LEFT JOIN packs p ON p.pack_no = b.pack_no WHERE b.blob_id = ?",
      [idBytes(blobId)],
    );
    if (!r) return undefined;
    return {
      blobId,
      kind: r[0] === 1 ? "chunk" : "regular",
      rawSize: num(r[1]),
      storedSize: num(r[2]),
      packId: r[3] === null ? null : str(r[3]),
      offset: r[4] === null ? null : num(r[4]),
    };
  }

  /**
   * Whether the index knows a blob. A Bloom filter of the known ids answers
   * most misses without a query (built on first use; blob ids are uniform
   * digests, so their own bits are the filter's hashes).
   * @param blobId The blob id.
   * @returns `true` when known.
   */
  hasBlob(blobId: string): boolean {
    this.#bloom ??= this.#buildBloom();
    if (!this.#bloom.has(blobId)) return false;
    return this.#exists("SELECT 1 FROM blobs WHERE blob_id = ?", [idBytes(blobId)]);
  }

  #buildBloom(): BlobBloom {
    const count = num(this.#one("SELECT count(*) FROM blobs", [])?.[0]);
    const bloom = new BlobBloom(Math.max(count * 2, 1 << 16));
    for (const r of this.#stmt("SELECT blob_id FROM blobs").iterate()) {
      bloom.add(((r as unknown as SqlValue[])[0] as Uint8Array).toHex());
    }
    return bloom;
  }

  /**
   * Whether a pack is indexed.
   * @param packId The pack id.
   * @returns `true` when indexed.
   */
  hasPack(packId: string): boolean {
    return this.#exists("SELECT 1 FROM packs WHERE pack_id = ?", [packId]);
  }

  /**
   * Indexed pack ids greater than `after`, in order.
   * @param after A pack id or `""`.
   * @returns The ids.
   */
  packIdsAfter(after: string): string[] {
    return this.#all("SELECT pack_id FROM packs WHERE pack_id > ? ORDER BY pack_id", [after])
      .map((r) => str(r[0]));
  }

  /** Every indexed pack, in id order. @returns The packs. */
  packs(): PackRecord[] {
    return this.#all(
      "SELECT pack_id, size, blob_count, manifest_count FROM packs " +
        "WHERE pack_id NOT IN (SELECT pack_id FROM retired_packs) ORDER BY pack_id",
      [],
    ).map((r) => ({
      packId: str(r[0]),
      size: num(r[1]),
      blobCount: num(r[2]),
      manifestCount: num(r[3]),
    }));
  }

  /**
   * The blobs the index places in one pack (through `blobs_by_pack`), in
   * offset order. A blob stored in several packs is placed in the first one
   * indexed only.
   * @param packId The pack id.
   * @returns The blobs.
   */
  blobsInPack(packId: string): BlobRecord[] {
    return this.#all(
      "SELECT blob_id, kind, raw_size, stored_size, offset FROM blobs " +
        "WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?) ORDER BY offset",
      [packId],
    ).map((r) => ({
      blobId: (r[0] as Uint8Array).toHex(),
      kind: r[1] === 1 ? "chunk" : "regular",
      rawSize: num(r[2]),
      storedSize: num(r[3]),
      packId,
      offset: r[4] === null ? null : num(r[4]),
    }));
  }

  /**
   * Every loose blob (one stored as its own object, `pack_id` null, through
   * `blobs_by_pack`), in id order.
   * @returns The blobs.
   */
  looseBlobs(): BlobRecord[] {
    return this.#all(
      "SELECT blob_id, kind, raw_size, stored_size FROM blobs WHERE pack_no IS NULL ORDER BY blob_id",
      [],
    ).map((r) => ({
      blobId: (r[0] as Uint8Array).toHex(),
      kind: r[1] === 1 ? "chunk" : "regular",
      rawSize: num(r[2]),
      storedSize: num(r[3]),
      packId: null,
      offset: null,
    }));
  }

  /**
   * The ids of the manifests the index took from one pack (through
   * `manifests_by_pack`), in id order.
   * @param packId The pack id.
   * @returns The manifest ids.
   */
  manifestIdsInPack(packId: string): string[] {
    return this.#all(
      "SELECT manifest_id FROM manifests WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?)",
      [packId],
    ).map((r) => manifestIdOf(r[0])).sort();
  }

  /**
   * Whether the index holds a manifest (through its unique id index).
   * @param manifestId The manifest id.
   * @returns `true` when indexed.
   */
  hasManifest(manifestId: string): boolean {
    const id = new Uint8Array(16);
    // An id that is not a ULID is in no manifest.
    if (!ulidInto(manifestId, id, 0)) return false;
    return this.#exists("SELECT 1 FROM manifests WHERE manifest_id = ?", [id]);
  }

  /**
   * Blob ids named by manifests but absent from the blobs table, each with
   * how many manifest references name it and one manifest that does (for
   * verification: every manifest's blobs must exist). Reads every manifest's
   * blob list once, probing the blobs primary key per id.
   * @returns The unknown blobs, in id order.
   */
  unknownManifestBlobs(): Array<{ blobId: string; references: number; example: ManifestRecord }> {
    const unknown = new Map<string, { references: number; seq: number }>();
    for (
      const [seq, ids] of this.#all(
        "SELECT seq, blob_ids FROM manifests WHERE blob_ids IS NOT NULL",
        [],
      )
    ) {
      for (const id of splitIds(ids as Uint8Array)) {
        const seen = unknown.get(id);
        if (seen) {
          seen.references++;
          seen.seq = Math.min(seen.seq, num(seq));
        } else if (!this.#exists("SELECT 1 FROM blobs WHERE blob_id = ?", [idBytes(id)])) {
          unknown.set(id, { references: 1, seq: num(seq) });
        }
      }
    }
    return [...unknown.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([blobId, u]) => ({
      blobId,
      references: u.references,
      example: this.#manifestAt(u.seq)!,
    }));
  }

  /**
   * The manifests (every version, tombstones have no blobs) whose bodies
   * name one of `blobIds`, per blob id: the artifacts a damaged blob belongs
   * to (verification names them). Reads every manifest's blob list once.
   * @param blobIds Blob ids (hex).
   * @returns For each blob id named by some manifest, those manifests in index order.
   */
  manifestsNamingBlobs(blobIds: ReadonlySet<string>): Map<string, ManifestRecord[]> {
    const found = new Map<string, number[]>();
    if (blobIds.size === 0) return new Map();
    for (
      const [seq, ids] of this.#all(
        "SELECT seq, blob_ids FROM manifests WHERE blob_ids IS NOT NULL ORDER BY seq",
        [],
      )
    ) {
      for (const id of new Set(splitIds(ids as Uint8Array))) {
        if (!blobIds.has(id)) continue;
        const list = found.get(id);
        if (list) list.push(num(seq));
        else found.set(id, [num(seq)]);
      }
    }
    return new Map([...found].map(([id, seqs]) => [id, seqs.map((q) => this.#manifestAt(q)!)]));
  }

  /**
   * The high-water mark: a pack id such that every pack up to it that was
   * durable when this index last listed the Location has been listed and
   * indexed (`""` when the index has never listed). It moves only after a
   * listing ({@linkcode StoreIndex.setHighWaterMark}), never because a pack
   * was added: a handle's own packs say nothing about packs other writers
   * added meanwhile (docs/FORMAT.md §7, the catch-up rule).
   * @returns The pack id, or `""`.
   */
  highWaterMark(): string {
    const stored = this.meta(HIGH_WATER_MARK) ?? "";
    return this.#pendingMark > stored ? this.#pendingMark : stored;
  }

  /**
   * Moves the high-water mark forward after a listing; a mark behind the
   * current one is ignored. On a published host cache (read-only) the mark is
   * kept in memory and written with the first other change: a listing that
   * found nothing new copies no file, and a mark lost with it only makes the
   * next listing start earlier.
   * @param packId The new mark: the last pack id listed, clamped by the lister's clock.
   */
  setHighWaterMark(packId: string): void {
    if (packId <= this.highWaterMark()) return;
    if (this.#file?.published) this.#pendingMark = packId;
    else this.setMeta(HIGH_WATER_MARK, packId);
  }

  /** Counts and sizes. @returns The counts. */
  counts(): IndexCounts {
    const c = (sql: string) => num(this.#one(sql, [])?.[0]);
    return {
      // Kept exact by the statistics triggers (and computed at the end of a bulk load): a
      // count over the artifacts table would read all of it (0.4 s for a million, from a file).
      artifacts: this.#deferred !== undefined
        ? c(`SELECT count(*) FROM (${CURRENT_VERSIONS}) WHERE deleted = 0`)
        : c("SELECT coalesce(sum(artifacts), 0) FROM namespace_stats"),
      manifests: c("SELECT count(*) FROM manifests"),
      blobs: c("SELECT count(*) FROM blobs"),
      packs: c("SELECT count(*) FROM packs"),
      blobBytes: c("SELECT coalesce(sum(raw_size), 0) FROM blobs"),
      packBytes: c("SELECT coalesce(sum(size), 0) FROM packs"),
    };
  }

  /**
   * Reads or writes a value of the meta table.
   * @param name The name.
   * @returns Its value, or `undefined`.
   */
  meta(name: string): string | undefined {
    const r = this.#one("SELECT value FROM meta WHERE name = ?", [name]);
    return r ? str(r[0]) : undefined;
  }

  /**
   * Sets a value of the meta table.
   * @param name The name. @param value The value.
   */
  setMeta(name: string, value: string): void {
    this.#run(
      "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      [name, value],
    );
  }

  /**
   * The query plan SQLite picks for a statement (for tests that check every
   * hot lookup uses an index).
   * @param sql The statement. @param params Sample parameters.
   * @returns The plan's detail lines.
   */
  explain(sql: string, params: Array<string | number | null> = []): string[] {
    return this.#db.exec(`EXPLAIN QUERY PLAN ${sql}`, params)[0]?.values.map((r) => str(r[3])) ??
      [];
  }

  /** Serializes the database. @returns The bytes of a SQLite file. */
  export(): Uint8Array {
    return this.#db.export();
  }

  /**
   * Publishes a file-backed index as the host cache: closes its working
   * copy, stamps it ({@linkcode stampFile}) and renames it to `path`, then
   * goes on reading it there, read-only (the next write copies it again).
   * Does nothing for an in-memory index or one already published.
   * @param path Where the host cache lives.
   * @param durable Flush the file (and its directory) to the disk first.
   * @returns Whether it published.
   */
  async publish(path: string, durable: boolean): Promise<boolean> {
    const file = this.#file;
    if (!file || file.published || this.#deferred !== undefined) return false;
    const work = this.#db.file!.path;
    this.#stmts.clear();
    this.#db.close();
    try {
      await stampFile(work, durable);
      await Deno.rename(work, path);
    } catch (e) {
      const lock = HELD.get(this.#db);
      this.#db = new Database({ path: work });
      if (lock) HELD.set(this.#db, lock);
      StoreIndex.#tune(this.#db);
      throw e;
    }
    release(this.#db);
    if (durable) {
      try {
        using dir = await Deno.open(path.slice(0, path.lastIndexOf("/")) || "/");
        await dir.sync();
      } catch { /* a directory that cannot be synced here is synced by the OS later */ }
    }
    this.#db = new Database({ path, readOnly: true });
    StoreIndex.#tune(this.#db);
    this.#file = { workDir: file.workDir, published: true };
    this.#head = headOf(path);
    return true;
  }

  /** Releases the database (a working copy never published is deleted). */
  close(): void {
    this.#stmts.clear();
    StoreIndex.#discard(this.#db);
  }
}

export { INDEX_SCHEMA_VERSION };
