/**
 * Index databases as older capsa versions wrote them, for migration tests.
 */

import assert from "node:assert/strict";
import { loadSqlite, type SqlValue } from "../index/_sqlite.ts";
import { migrate, MIGRATIONS } from "../index/schema.ts";
import { ulidFromBytes } from "../index/_ulid_bytes.ts";
import { StoreIndex } from "../index/store_index.ts";
import { encodeSnapshot } from "../format/snapshot.ts";

/**
 * Rewrites a current (version 5) index database as capsa before schema 4
 * wrote it: manifest ids as text, every digest stored, the `artifacts` table
 * (filled, as version 3 did, with the greatest id of each key; its triggers
 * fill `namespace_stats`), and `schema_version` 3. The schema is made by the
 * first three steps themselves, so the fixture cannot drift from the real
 * version 3 schema.
 * @param bytes An exported current database.
 * @returns The version 3 database.
 */
export async function asVersion3(bytes: Uint8Array): Promise<Uint8Array> {
  const SQL = await loadSqlite();
  const from = new SQL.Database(bytes);
  const v3 = new SQL.Database();
  migrate(v3, MIGRATIONS.slice(0, 3));
  const copy = (table: string, map: (row: SqlValue[]) => SqlValue[] = (r) => r) => {
    const rows = from.exec(`SELECT * FROM ${table}`)[0];
    if (!rows) return;
    const marks = rows.columns.map(() => "?").join(", ");
    for (const row of rows.values) {
      v3.run(`INSERT INTO ${table} (${rows.columns.join(", ")}) VALUES (${marks})`, map(row));
    }
  };
  v3.run("DELETE FROM meta WHERE name <> 'schema_version'");
  from.run("DELETE FROM meta WHERE name = 'schema_version'");
  copy("meta");
  copy("packs");
  copy("blobs");
  copy("retired_packs");
  copy("retired_blobs");
  // Columns in the order of both versions' manifests tables.
  copy("manifests", (r) => {
    const [
      seq,
      id,
      ns,
      key,
      created,
      size,
      digest,
      type,
      metadata,
      deleted,
      inline,
      blobIds,
      pack,
    ] = r;
    const fullDigest = digest instanceof Uint8Array
      ? (digest.length === 0 ? null : digest)
      : (blobIds instanceof Uint8Array && blobIds.length === 32 ? blobIds : null);
    return [
      seq!,
      ulidFromBytes(id as Uint8Array),
      ns!,
      key!,
      created!,
      size!,
      fullDigest,
      type!,
      metadata!,
      deleted!,
      inline!,
      blobIds!,
      pack!,
    ];
  });
  v3.run(
    "INSERT INTO artifacts (namespace, key, manifest_id, seq, deleted, size) " +
      "SELECT namespace, key, max(manifest_id), seq, deleted, CASE WHEN deleted THEN 0 ELSE size END " +
      "FROM manifests GROUP BY namespace, key",
  );
  from.close();
  const out = v3.export();
  v3.close();
  return out;
}

/**
 * Rewrites a current index database as capsa before schema 2 wrote it: no
 * statistics table, no `size` column, no triggers, no retired tables, and
 * `schema_version` 1. Checked against a database made by the version 1 step
 * alone, so the fixture cannot drift from the real v1 schema.
 * @param bytes An exported current database.
 * @returns The version 1 database.
 */
export async function asVersion1(bytes: Uint8Array): Promise<Uint8Array> {
  const SQL = await loadSqlite();
  const db = new SQL.Database(await asVersion3(bytes));
  db.run("DROP TABLE retired_packs");
  db.run("DROP TABLE retired_blobs");
  db.run("DROP TRIGGER artifacts_stats_delete");
  db.run("DROP TRIGGER artifacts_stats_insert");
  db.run("DROP TRIGGER artifacts_stats_update");
  db.run("DROP TABLE namespace_stats");
  db.run("ALTER TABLE artifacts DROP COLUMN size");
  db.run("UPDATE meta SET value = '1' WHERE name = 'schema_version'");
  const v1 = new SQL.Database();
  migrate(v1, MIGRATIONS.slice(0, 1));
  const schema = (d: typeof db) =>
    d.exec("SELECT type, name, sql FROM sqlite_master ORDER BY name")[0]!.values;
  assert.deepEqual(schema(db), schema(v1));
  v1.close();
  const out = db.export();
  db.close();
  return out;
}

/**
 * Rewrites a current (version 5) index database as capsa at schema 4 wrote
 * it: `manifests_by_key` without `deleted` and `size`, and `schema_version`
 * 4. Everything else is the same.
 * @param bytes An exported current database.
 * @returns The version 4 database.
 */
export async function asVersion4(bytes: Uint8Array): Promise<Uint8Array> {
  const SQL = await loadSqlite();
  const db = new SQL.Database(bytes);
  db.run("DROP INDEX manifests_by_key");
  db.run("CREATE INDEX manifests_by_key ON manifests (namespace, key, manifest_id)");
  db.run("UPDATE meta SET value = '4' WHERE name = 'schema_version'");
  const out = db.export();
  db.close();
  return out;
}

/**
 * A snapshot of an index holding `count` meta rows of random hex (a body
 * that barely compresses, so it spans many ranged reads), and the values.
 * @param storeId The store.
 * @param count How many rows (`m0`, `m1`, …).
 * @returns The snapshot's bytes and each row's value.
 */
export async function randomIndexSnapshot(
  storeId: string,
  count: number,
): Promise<{ bytes: Uint8Array; values: string[] }> {
  const index = await StoreIndex.create(storeId);
  const values = Array.from(
    { length: count },
    () => crypto.getRandomValues(new Uint8Array(60)).toHex(),
  );
  values.forEach((v, i) => index.setMeta(`m${i}`, v));
  const bytes = encodeSnapshot(
    { storeId, schemaVersion: index.schemaVersion, highWaterMark: "", createdAt: 1 },
    index.export(),
  );
  index.close();
  return { bytes, values };
}
