// The subset of sql.js's API that capsa uses (sql.js ships no types of its own).

export type SqlValue = number | string | Uint8Array | null;

export interface QueryExecResult {
  columns: string[];
  values: SqlValue[][];
}

export interface Statement {
  bind(values?: SqlValue[] | Record<string, SqlValue>): boolean;
  step(): boolean;
  get(params?: SqlValue[]): SqlValue[];
  getAsObject(params?: SqlValue[]): Record<string, SqlValue>;
  run(values?: SqlValue[]): void;
  reset(): void;
  free(): boolean;
}

export interface Database {
  run(sql: string, params?: SqlValue[]): Database;
  exec(sql: string, params?: SqlValue[]): QueryExecResult[];
  prepare(sql: string, params?: SqlValue[]): Statement;
  export(): Uint8Array;
  close(): void;
  getRowsModified(): number;
}

export interface SqlJsStatic {
  Database: new (data?: Uint8Array | null) => Database;
}

declare const initSqlJs: (config?: unknown) => Promise<SqlJsStatic>;
export default initSqlJs;
