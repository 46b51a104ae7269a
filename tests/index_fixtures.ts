/**
 * Index databases as older capsa versions wrote them, for migration tests.
 */

import assert from "node:assert/strict";
import { loadSqlite } from "../index/_sqlite.ts";
import { migrate, MIGRATIONS } from "../index/schema.ts";

/**
 * Rewrites a current (version 3) index database as capsa before schema 2
 * wrote it: no statistics table, no `size` column, no triggers, and
 * `schema_version` 1. Checked against a database made by the version 1 step
 * alone, so the fixture cannot drift from the real v1 schema.
 * @param bytes An exported current database.
 * @returns The version 1 database.
 */
export async function asVersion1(bytes: Uint8Array): Promise<Uint8Array> {
  const SQL = await loadSqlite();
  const db = new SQL.Database(bytes);
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
