/**
 * The StoreIndex schema and its forward-only migrations.
 *
 * Each step runs in one transaction with the version row inside it, so a
 * database is always at exactly one version. A database whose version is
 * newer than {@linkcode INDEX_SCHEMA_VERSION} is refused, never downgraded.
 *
 * @module
 */

import type { Database, SqlValue } from "./_sqlite.ts";
import { CapsaError } from "../errors.ts";
import { ulidInto, ulidToBytes } from "./_ulid_bytes.ts";

const PROBE = new Uint8Array(16);
function isCanonicalUlid(id: string): boolean {
  return ulidInto(id, PROBE, 0);
}

/** One migration step: brings the schema from `version - 1` to `version`. */
export interface MigrationStep {
  /** The version this step produces. */
  version: number;
  /** What it changes, for logs and the docs. */
  description: string;
  /** The SQL to run inside the step's transaction. */
  sql: string;
  /** SQL functions the step's SQL calls, registered on the database before it runs. */
  functions?: Record<string, (...args: Array<SqlValue | bigint>) => SqlValue>;
}

/**
 * Schema version 1.
 *
 * Text keys compare as UTF-8 bytes (SQLite's BINARY collation), which is the
 * same order as {@linkcode compareKeys} and every driver's listing.
 */
const V1 = `
CREATE TABLE meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Packs are referred to by pack_no (a small integer) everywhere else.
CREATE TABLE packs (
  pack_no        INTEGER PRIMARY KEY,
  pack_id        TEXT NOT NULL UNIQUE,
  size           INTEGER NOT NULL,
  blob_count     INTEGER NOT NULL,
  manifest_count INTEGER NOT NULL
);

-- blob_id: the 32 digest bytes. kind: 0 regular, 1 chunk. pack_no NULL: a loose blob
-- (blobs/<2 hex>/<id>).
CREATE TABLE blobs (
  blob_id     BLOB PRIMARY KEY,
  kind        INTEGER NOT NULL,
  raw_size    INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  pack_no     INTEGER,
  offset      INTEGER
) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs (pack_no, offset);

-- digest: 32 bytes (NULL for a tombstone). blob_ids: the body's blob ids, 32 bytes each,
-- concatenated in order (NULL when the body is inline or deleted).
CREATE TABLE manifests (
  seq          INTEGER PRIMARY KEY,
  manifest_id  TEXT NOT NULL UNIQUE,
  namespace    TEXT NOT NULL,
  key          TEXT NOT NULL,
  created      INTEGER NOT NULL,
  size         INTEGER NOT NULL,
  digest       BLOB,
  content_type TEXT,
  metadata     TEXT,
  deleted      INTEGER NOT NULL,
  inline_body  BLOB,
  blob_ids     BLOB,
  pack_no      INTEGER
);
CREATE INDEX manifests_by_key ON manifests (namespace, key, manifest_id);
CREATE INDEX manifests_by_pack ON manifests (pack_no);

-- The current version of each artifact: the manifest with the greatest id.
-- A deleted artifact keeps its row (deleted = 1) so that an older manifest
-- indexed late can never bring it back.
CREATE TABLE artifacts (
  namespace   TEXT NOT NULL,
  key         TEXT NOT NULL,
  manifest_id TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  deleted     INTEGER NOT NULL,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
`;

/**
 * Schema version 2: per-namespace statistics.
 *
 * `namespace_stats` holds, for each namespace, how many artifacts are live
 * and the sum of their current versions' sizes, kept exact as current
 * versions change (a tombstone counts for nothing). The step fills it from
 * `artifacts` and `manifests`, so an index migrated from version 1 holds the
 * same rows as one built at version 2.
 */
const V2 = `
CREATE TABLE namespace_stats (
  namespace TEXT PRIMARY KEY,
  artifacts INTEGER NOT NULL,
  bytes     INTEGER NOT NULL
) WITHOUT ROWID;

-- The current version's size, so that the statistics follow every change of
-- the current version inside SQLite (triggers), with no extra statement per put.
ALTER TABLE artifacts ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE artifacts SET size = (SELECT m.size FROM manifests m WHERE m.seq = artifacts.seq);

INSERT INTO namespace_stats (namespace, artifacts, bytes)
  SELECT namespace, count(*), sum(size) FROM artifacts WHERE deleted = 0 GROUP BY namespace;

CREATE TRIGGER artifacts_stats_insert AFTER INSERT ON artifacts WHEN new.deleted = 0 BEGIN
  INSERT INTO namespace_stats (namespace, artifacts, bytes) VALUES (new.namespace, 1, new.size)
    ON CONFLICT (namespace) DO UPDATE SET artifacts = artifacts + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER artifacts_stats_update AFTER UPDATE ON artifacts BEGIN
  INSERT INTO namespace_stats (namespace, artifacts, bytes)
    VALUES (new.namespace,
            (1 - new.deleted) - (1 - old.deleted),
            (CASE WHEN new.deleted THEN 0 ELSE new.size END) - (CASE WHEN old.deleted THEN 0 ELSE old.size END))
    ON CONFLICT (namespace) DO UPDATE SET artifacts = artifacts + excluded.artifacts, bytes = bytes + excluded.bytes;
  DELETE FROM namespace_stats WHERE namespace = new.namespace AND artifacts <= 0;
END;
`;

/**
 * Schema version 3: packs garbage collection retired (docs/FORMAT.md §8).
 * A pack named by a superseding pack, or deleted by a gc run, is recorded
 * here and never indexed again, in whatever order packs are read; an
 * artifact row removed with its last manifest updates the statistics.
 */
const V3 = `
CREATE TABLE retired_packs (
  pack_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Loose blobs a gc run deleted (or will, once its grace period ends): never registered again.
CREATE TABLE retired_blobs (
  blob_id BLOB PRIMARY KEY
) WITHOUT ROWID;

-- An artifact whose every manifest was retired loses its row: the statistics follow.
CREATE TRIGGER artifacts_stats_delete AFTER DELETE ON artifacts WHEN old.deleted = 0 BEGIN
  UPDATE namespace_stats SET artifacts = artifacts - 1, bytes = bytes - old.size
    WHERE namespace = old.namespace;
  DELETE FROM namespace_stats WHERE namespace = old.namespace AND artifacts <= 0;
END;
PRAGMA secure_delete = OFF;
`;

/**
 * Schema version 4: a leaner index (docs/DESIGN.md §5.1).
 *
 * - `manifests.manifest_id` holds the ULID's 16 bytes (`capsa_ulid_bytes`),
 *   not its 26 characters; byte order is the ids' text order.
 * - `manifests.digest` is NULL when the body is one blob whose id is the
 *   digest (docs/DESIGN.md §4.2: a body of one regular blob, or of one chunk): the
 *   digest is read from `blob_ids`. A digest that is really empty beside one
 *   blob id is stored as an empty blob, so every row reads back as written.
 * - `artifacts` and the unique index over the text id go. The current version
 *   of a key is its greatest manifest id, found through `manifests_by_key`
 *   (namespace, key, manifest_id); a tombstone is a manifest, so it keeps a
 *   deleted artifact dead as before. `manifests_by_id` (the 16 bytes) keeps
 *   ids unique: indexing a manifest twice is still a no-op.
 * - The statistics triggers move to `manifests`: a row that is (or was) the
 *   greatest id of its key moves `namespace_stats` from the previous current
 *   version to the new one. The table's rows are already exact and stay.
 */
const V4 = `
-- The pages the old tables free stay in the file (VACUUM would attach a database, which Deno
-- allows only with every permission): zeroed, they cost nothing in a compressed snapshot, and
-- later rows reuse them. A rebuild writes a file without them.
PRAGMA secure_delete = ON;
DROP TRIGGER artifacts_stats_insert;
DROP TRIGGER artifacts_stats_update;
DROP TRIGGER artifacts_stats_delete;
DROP TABLE artifacts;

CREATE TABLE manifests_v4 (
  seq          INTEGER PRIMARY KEY,
  manifest_id  BLOB NOT NULL,
  namespace    TEXT NOT NULL,
  key          TEXT NOT NULL,
  created      INTEGER NOT NULL,
  size         INTEGER NOT NULL,
  digest       BLOB,
  content_type TEXT,
  metadata     TEXT,
  deleted      INTEGER NOT NULL,
  inline_body  BLOB,
  blob_ids     BLOB,
  pack_no      INTEGER
);
INSERT INTO manifests_v4 (seq, manifest_id, namespace, key, created, size, digest, content_type,
                          metadata, deleted, inline_body, blob_ids, pack_no)
  SELECT seq, capsa_ulid_bytes(manifest_id), namespace, key, created, size,
         CASE WHEN length(blob_ids) = 32 AND digest IS NULL THEN X''
              WHEN length(blob_ids) = 32 AND digest = blob_ids THEN NULL
              ELSE digest END,
         content_type, metadata, deleted, inline_body, blob_ids, pack_no
  FROM manifests ORDER BY seq;
DROP TABLE manifests;
ALTER TABLE manifests_v4 RENAME TO manifests;
CREATE UNIQUE INDEX manifests_by_id ON manifests (manifest_id);
CREATE INDEX manifests_by_key ON manifests (namespace, key, manifest_id);
CREATE INDEX manifests_by_pack ON manifests (pack_no);

-- A manifest that becomes the greatest id of its key replaces the previous current version
-- in the statistics (a tombstone counts for nothing).
CREATE TRIGGER manifests_stats_insert AFTER INSERT ON manifests
WHEN NOT EXISTS (SELECT 1 FROM manifests n WHERE n.namespace = new.namespace AND n.key = new.key
                 AND n.manifest_id > new.manifest_id)
BEGIN
  INSERT INTO namespace_stats (namespace, artifacts, bytes)
    SELECT new.namespace,
      (1 - new.deleted) - coalesce((SELECT 1 - p.deleted FROM manifests p
        WHERE p.namespace = new.namespace AND p.key = new.key AND p.manifest_id < new.manifest_id
        ORDER BY p.manifest_id DESC LIMIT 1), 0),
      (CASE WHEN new.deleted THEN 0 ELSE new.size END) - coalesce((SELECT CASE WHEN p.deleted THEN 0 ELSE p.size END
        FROM manifests p
        WHERE p.namespace = new.namespace AND p.key = new.key AND p.manifest_id < new.manifest_id
        ORDER BY p.manifest_id DESC LIMIT 1), 0)
    WHERE true
    ON CONFLICT (namespace) DO UPDATE SET artifacts = artifacts + excluded.artifacts, bytes = bytes + excluded.bytes;
  DELETE FROM namespace_stats WHERE namespace = new.namespace AND artifacts <= 0;
END;

-- Removing the current version (garbage collection) makes the next greatest id current, or
-- leaves the key with no version.
CREATE TRIGGER manifests_stats_delete AFTER DELETE ON manifests
WHEN NOT EXISTS (SELECT 1 FROM manifests n WHERE n.namespace = old.namespace AND n.key = old.key
                 AND n.manifest_id > old.manifest_id)
BEGIN
  INSERT INTO namespace_stats (namespace, artifacts, bytes)
    SELECT old.namespace,
      coalesce((SELECT 1 - p.deleted FROM manifests p
        WHERE p.namespace = old.namespace AND p.key = old.key
        ORDER BY p.manifest_id DESC LIMIT 1), 0) - (1 - old.deleted),
      coalesce((SELECT CASE WHEN p.deleted THEN 0 ELSE p.size END FROM manifests p
        WHERE p.namespace = old.namespace AND p.key = old.key
        ORDER BY p.manifest_id DESC LIMIT 1), 0) - (CASE WHEN old.deleted THEN 0 ELSE old.size END)
    WHERE true
    ON CONFLICT (namespace) DO UPDATE SET artifacts = artifacts + excluded.artifacts, bytes = bytes + excluded.bytes;
  DELETE FROM namespace_stats WHERE namespace = old.namespace AND artifacts <= 0;
END;
PRAGMA secure_delete = OFF;
`;

/**
 * Schema version 5: `manifests_by_key` also holds each row's `deleted` and
 * `size`, so that the walk of every key's current version (the per-namespace
 * statistics a rebuild fills, and the statistics triggers' look at the
 * previous version) reads the index alone instead of looking each row up in
 * the table: 1,000,000 manifests, 1.7 → 0.6 s (docs/DESIGN.md §5.1). The
 * index is built again; nothing else changes.
 */
const V5 = `
PRAGMA secure_delete = ON;
DROP INDEX manifests_by_key;
CREATE INDEX manifests_by_key ON manifests (namespace, key, manifest_id, deleted, size);
PRAGMA secure_delete = OFF;
`;

/** `capsa_ulid_bytes(text)`: a manifest id's 16 bytes; fails the step on anything else. */
function ulidBytesSql(id: SqlValue | bigint): SqlValue {
  // A plain error: the caller reports the database as one that could not be migrated.
  if (typeof id !== "string" || !isCanonicalUlid(id)) {
    throw new Error(`manifest id ${JSON.stringify(String(id))} is not a ULID`);
  }
  return ulidToBytes(id);
}

/** Every step, in order. */
export const MIGRATIONS: readonly MigrationStep[] = [
  { version: 1, description: "packs, blobs, manifests, artifacts", sql: V1 },
  { version: 2, description: "per-namespace statistics (namespace_stats)", sql: V2 },
  {
    version: 3,
    description:
      "packs and loose blobs retired by garbage collection (retired_packs, retired_blobs)",
    sql: V3,
  },
  {
    version: 4,
    description:
      "a leaner index: manifest ids as 16 bytes, no digest equal to the single blob id, no artifacts table (current version = greatest id)",
    sql: V4,
    functions: { capsa_ulid_bytes: ulidBytesSql },
  },
  {
    version: 5,
    description:
      "manifests_by_key covers deleted and size (the current versions read from the index alone)",
    sql: V5,
  },
];

/** The schema version this code writes. */
export const INDEX_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * The index was written by a newer capsa than this one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IndexTooNewError } from "./schema.ts";
 * const e = new IndexTooNewError(9, 1);
 * assert.deepEqual(e.code, "index_too_new");
 * ```
 */
export class IndexTooNewError extends CapsaError {
  /** The database's version. */
  readonly found: number;
  /** The newest version this code knows. */
  readonly supported: number;
  /**
   * Creates the error.
   * @param found The database's version.
   * @param supported The newest version this code knows.
   */
  constructor(found: number, supported: number) {
    super(
      "index_too_new",
      `the index has schema version ${found}, newer than this capsa supports (${supported}): upgrade capsa, or rebuild the index`,
    );
    this.found = found;
    this.supported = supported;
  }
}

/**
 * Reads the schema version of a database (0 when it has no meta table).
 * @param db The database.
 * @returns The version.
 */
export function schemaVersionOf(db: Database): number {
  const hasMeta = db.exec(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
  ).length > 0;
  if (!hasMeta) return 0;
  const rows = db.exec("SELECT value FROM meta WHERE name = 'schema_version'");
  const v = Number(rows[0]?.values[0]?.[0] ?? 0);
  return Number.isSafeInteger(v) ? v : 0;
}

/**
 * Applies every step after the database's version, one transaction each.
 *
 * @param db The database.
 * @param steps The steps (default {@linkcode MIGRATIONS}); tests pass their own.
 * @returns The versions applied.
 * @throws {IndexTooNewError} when the database is newer than the last step.
 */
export function migrate(db: Database, steps: readonly MigrationStep[] = MIGRATIONS): number[] {
  const current = schemaVersionOf(db);
  const newest = steps[steps.length - 1]?.version ?? 0;
  if (current > newest) throw new IndexTooNewError(current, newest);
  const applied: number[] = [];
  for (const step of steps) {
    if (step.version <= current) continue;
    for (const [name, fn] of Object.entries(step.functions ?? {})) {
      db.native.function(name, { deterministic: true }, fn);
    }
    db.run("BEGIN");
    try {
      db.run(step.sql);
      db.run(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?) " +
          "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [String(step.version)],
      );
      db.run("COMMIT");
    } catch (e) {
      db.run("ROLLBACK");
      throw e;
    }
    applied.push(step.version);
  }
  return applied;
}
