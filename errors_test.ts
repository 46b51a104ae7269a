import assert from "node:assert/strict";
import {
  ArtifactNotFoundError,
  CapsaError,
  ClosedError,
  CorruptObjectError,
  ERROR_CODES,
  type ErrorCode,
  EXIT_CODES,
  HostStorageRequiredError,
  InvalidArgumentError,
  InvalidKeyError,
  isErrorCode,
  MaintenanceModeError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  ReadOnlyStoreError,
  StoreCorruptedError,
  StoreMovedError,
  TransientError,
  UnsupportedFormatVersionError,
} from "./errors.ts";
import { DescriptorConflictError } from "./format/descriptor.ts";
import { RecoveryKitInvalidError } from "./format/kit.ts";
import { IndexTooNewError } from "./index/schema.ts";
import { LocalFsError } from "./drivers/localfs/errors.ts";
import { LeaseHeldError, LeaseLostError } from "./store/lease.ts";
import {
  CopyMismatchError,
  DestinationHoldsStoreError,
  DestinationNotEmptyError,
  NoSnapshotError,
  RecoveryKitMismatchError,
  RecoveryKitRequiredError,
} from "./maintenance/mod.ts";
import { describeError, EXIT, exitCodeOf, UsageError } from "./cli/_output.ts";
import { ERROR_STATUS, HttpError, statusOf, toHttpError } from "./http/errors.ts";

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** The rows `| \`code\` | exit | status | … |` of docs/OPERATIONS.md's table of codes. */
async function documentedCodes(): Promise<Map<string, { exit: number; status: number }>> {
  const text = await Deno.readTextFile(new URL("./docs/OPERATIONS.md", import.meta.url));
  const rows = new Map<string, { exit: number; status: number }>();
  for (const line of text.split("\n")) {
    const m = /^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|/.exec(line);
    if (!m) continue;
    assert.ok(!rows.has(m[1]!), `docs/OPERATIONS.md lists ${m[1]} twice`);
    rows.set(m[1]!, { exit: Number(m[2]), status: Number(m[3]) });
  }
  return rows;
}

Deno.test("docs/OPERATIONS.md lists every error code, with its exit code and HTTP status", async () => {
  const documented = await documentedCodes();
  for (const code of CODES) {
    const row = documented.get(code);
    assert.ok(row, `docs/OPERATIONS.md does not list the code ${code}`);
    assert.equal(row.exit, ERROR_CODES[code].exit, `exit code of ${code} in docs/OPERATIONS.md`);
    assert.equal(
      row.status,
      ERROR_CODES[code].status,
      `HTTP status of ${code} in docs/OPERATIONS.md`,
    );
  }
  for (const code of documented.keys()) {
    assert.ok(isErrorCode(code), `docs/OPERATIONS.md lists ${code}, which is not in ERROR_CODES`);
  }
});

Deno.test("every code of the table is well formed and used by the production code", async () => {
  const exits = new Set<number>(Object.values(EXIT_CODES));
  for (const code of CODES) {
    const info = ERROR_CODES[code];
    assert.match(code, /^[a-z][a-z0-9_]*$/);
    assert.ok(
      exits.has(info.exit) && (info.exit as number) !== EXIT_CODES.ok,
      `exit code of ${code}`,
    );
    assert.ok(info.status >= 400 && info.status <= 599, `status of ${code}`);
    assert.ok(info.description.length > 0 && !info.description.includes("\n"), code);
  }
  // A code no production file names is dead: remove it from the table and the docs. The table
  // itself (the top of errors.ts) does not count; the classes below it do.
  const root = new URL("./", import.meta.url);
  const table = new URL("./errors.ts", import.meta.url).href;
  const sources: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.isDirectory ? `${entry.name}/` : entry.name, dir);
      if (entry.isDirectory) {
        if (!["node_modules", "tools", "tests", "bench", "docs", ".git"].includes(entry.name)) {
          await walk(url);
        }
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(url);
        sources.push(
          url.href === table ? text.slice(text.indexOf("export class CapsaError")) : text,
        );
      }
    }
  };
  await walk(root);
  const all = sources.join("\n");
  for (const code of CODES) assert.ok(all.includes(`"${code}"`), `no production code uses ${code}`);
});

Deno.test("a class cannot carry a code the table does not know", () => {
  // @ts-expect-error: "no_such_code" is not an ErrorCode.
  const e = new CapsaError("no_such_code", "x");
  assert.equal(e.retryable, false);
  // @ts-expect-error: neither may an HttpError.
  assert.equal(new HttpError("no_such_code", "x").status, 500);
});

/** One error of every class capsa throws. */
const SAMPLES: ReadonlyArray<CapsaError> = [
  new CapsaError("no_store", "the Location holds nothing"),
  new NotFoundError("packs/x"),
  new ArtifactNotFoundError("ns", "k"),
  new PreconditionFailedError("k"),
  new InvalidKeyError("../x", "escapes"),
  new PermissionDeniedError("store.json", "read"),
  new TransientError("503"),
  new InvalidArgumentError("bad"),
  new CorruptObjectError("packs/x", "bad checksum"),
  new ClosedError("memory driver"),
  new StoreCorruptedError(["store.json: missing"]),
  new StoreMovedError("/srv/b"),
  new MaintenanceModeError("offline", "RebuildIndex on h (pid 1)"),
  new ReadOnlyStoreError(),
  new HostStorageRequiredError(),
  new UnsupportedFormatVersionError("store.json", 9, [1]),
  new DescriptorConflictError([]),
  new RecoveryKitInvalidError("wrong_header", "nope"),
  new IndexTooNewError(9, 1),
  new LocalFsError("packs/x", "write", { errno: "ENOSPC" }),
  new LeaseHeldError("Verify on h (pid 1)", 0),
  new LeaseLostError("taken over"),
  new RecoveryKitRequiredError(),
  new RecoveryKitMismatchError("a", "b", "store.json"),
  new NoSnapshotError([]),
  new DestinationHoldsStoreError("/srv/b", "b", "store.json"),
  new DestinationNotEmptyError("/srv/b", "notes.txt"),
  new CopyMismatchError([{ kind: "copy_mismatch", key: "packs/x", detail: "differs" }]),
  new UsageError("missing LOCATION"),
  new HttpError("range_not_satisfiable", "outside"),
];

Deno.test("the HTTP endpoint and the CLI take statuses and exit codes from the table", () => {
  const classes = new Set<string>();
  for (const e of SAMPLES) {
    classes.add(e.constructor.name);
    const info = ERROR_CODES[e.code];
    assert.ok(info, `${e.constructor.name} has code ${e.code}, not in the table`);
    assert.equal(e.retryable, info.retryable, `retryable of ${e.constructor.name}`);
    const h = toHttpError(e);
    assert.equal(h.code, e.code);
    assert.equal(h.status, info.status, `HTTP status of ${e.constructor.name}`);
    assert.equal(h.toResponse().status, info.status);
    assert.equal(statusOf(e.code, e.retryable), info.status);
    assert.equal(ERROR_STATUS[e.code], info.status);
    assert.equal(exitCodeOf(e), info.exit, `exit code of ${e.constructor.name}`);
    assert.equal(describeError(e).code, e.code);
  }
  assert.equal(classes.size, SAMPLES.length, "one sample per class");
  // The documented exit codes are unchanged.
  assert.deepEqual(EXIT, {
    ok: 0,
    failed: 1,
    usage: 2,
    problems: 3,
    leaseHeld: 4,
    corrupted: 5,
    passphrase: 6,
  });
  assert.equal(exitCodeOf(new UsageError("x")), EXIT.usage);
  assert.equal(exitCodeOf(new LeaseHeldError("x", 0)), EXIT.leaseHeld);
  assert.equal(exitCodeOf(new StoreCorruptedError([])), EXIT.corrupted);
  assert.equal(exitCodeOf(new TypeError("bug")), EXIT.failed);
  assert.equal(toHttpError(new TypeError("bug")).status, ERROR_CODES.internal.status);
});

Deno.test("every code maps to a status and an exit code without a fallback", () => {
  for (const code of CODES) {
    const e = new CapsaError(code, "x");
    assert.equal(toHttpError(e).status, ERROR_CODES[code].status, code);
    assert.equal(exitCodeOf(e), ERROR_CODES[code].exit, code);
    assert.equal(e.retryable, ERROR_CODES[code].retryable, code);
  }
});
