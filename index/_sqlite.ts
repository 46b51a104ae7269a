/**
 * SQLite for the StoreIndex: the runtime's built-in native SQLite
 * (`node:sqlite`, in Deno since 2.2), behind the small API capsa uses.
 *
 * A database lives in memory (`:memory:`, persisted by
 * {@linkcode Database.export}, SQLite's serialize, and loaded again by passing
 * those bytes to the constructor) or in a file SQLite opens in place (the
 * host cache, docs/DESIGN.md §5.3): opening a file reads nothing but the
 * pages a query touches. capsa used sql.js (SQLite compiled to
 * WebAssembly) before; the native library builds a large index faster, because
 * sql.js copies every page written through its emulated file system
 * (docs/DESIGN.md, "The index engine").
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";

/** A value SQLite stores: integers come back as numbers, blobs as bytes. */
export type SqlValue = number | string | Uint8Array | null;

/** The rows of one statement run by {@linkcode Database.exec}. */
export interface QueryExecResult {
  /** Column names. */
  columns: string[];
  /** Rows, each an array of values in column order. */
  values: SqlValue[][];
}

/** A prepared statement whose rows are arrays (column order). */
export type Statement = StatementSync;

/** Where a database lives: a file opened in place (created when absent, unless read-only). */
export interface DatabaseFile {
  /** The file's path. */
  path: string;
  /** Open it read-only (default `false`). */
  readOnly?: boolean;
}

/** A SQLite database, in memory or in a file. */
export class Database {
  /** The native handle, for hot paths that prepare their own statements. */
  readonly native: DatabaseSync;
  /** The file the database lives in, or `undefined` in memory. */
  readonly file: DatabaseFile | undefined;

  /**
   * Opens an empty in-memory database, one from the bytes of a SQLite file,
   * or a database file in place.
   * @param from A serialized database (copied), or a file to open.
   */
  constructor(from?: Uint8Array | DatabaseFile) {
    if (from !== undefined && !(from instanceof Uint8Array)) {
      this.file = { path: from.path, readOnly: from.readOnly ?? false };
      this.native = new DatabaseSync(from.path, { readOnly: from.readOnly ?? false });
      return;
    }
    this.file = undefined;
    this.native = new DatabaseSync(":memory:");
    if (from !== undefined) this.native.deserialize(from);
  }

  /**
   * Prepares a statement returning rows as arrays.
   * @param sql The statement.
   * @returns The statement.
   */
  prepare(sql: string): Statement {
    const s = this.native.prepare(sql);
    // Deno has it; the bundled Node type definitions predate it.
    (s as unknown as { setReturnArrays(on: boolean): void }).setReturnArrays(true);
    return s;
  }

  /**
   * Runs SQL: one statement with parameters, or any number without.
   * @param sql The SQL.
   * @param params Parameters of a single statement.
   * @returns This database.
   */
  run(sql: string, params?: SqlValue[]): this {
    if (params === undefined || params.length === 0) this.native.exec(sql);
    else this.native.prepare(sql).run(...params);
    return this;
  }

  /**
   * Runs one query and returns its rows (an empty array when it has none),
   * in sql.js's shape: `[{ columns, values }]`.
   * @param sql The query.
   * @param params Its parameters.
   * @returns The result.
   */
  exec(sql: string, params: SqlValue[] = []): QueryExecResult[] {
    const s = this.prepare(sql);
    const values = s.all(...params) as unknown as SqlValue[][];
    if (values.length === 0) return [];
    return [{ columns: s.columns().map((c) => c.name), values }];
  }

  /** @returns The bytes of a SQLite file holding this database. */
  export(): Uint8Array {
    return this.native.serialize();
  }

  /** Releases the database. */
  close(): void {
    this.native.close();
  }
}

/** What {@linkcode loadSqlite} returns: the database class. */
export interface SqliteModule {
  /** The database class. */
  Database: typeof Database;
}

/**
 * Returns the SQLite module (nothing to load: it is built in; kept async so
 * callers need not change if that ever changes).
 * @returns The module.
 */
export function loadSqlite(): Promise<SqliteModule> {
  return Promise.resolve({ Database });
}
