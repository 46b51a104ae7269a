/**
 * Loads SQLite (sql.js) once per process, with the types capsa uses.
 *
 * capsa uses sql.js's inline build, whose wasm is embedded in the JavaScript:
 * it needs no file permission, no raw-import flag, and survives bundling.
 *
 * @module
 */

// @ts-types="./_sqljs_types.d.ts"
import initSqlJs from "sql.js/dist/sql-wasm-inline.js";
import type { SqlJsStatic } from "./_sqljs_types.d.ts";

export type { Database, SqlValue, Statement } from "./_sqljs_types.d.ts";

let loading: Promise<SqlJsStatic> | undefined;

/**
 * Returns the sql.js module, loading it on first use.
 * @returns The module.
 */
export function loadSqlite(): Promise<SqlJsStatic> {
  // Bundlers and Deno's npm shims may leave __dirname undefined; sql.js only reads it.
  const g = globalThis as { __dirname?: string };
  if (g.__dirname === undefined) g.__dirname = "/";
  loading ??= (initSqlJs as () => Promise<SqlJsStatic>)();
  return loading;
}
