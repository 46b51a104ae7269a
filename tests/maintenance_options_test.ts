/**
 * The CLI and the HTTP endpoint read maintenance options through one parser
 * (`maintenance/options.ts`): the same bad option is refused with the same
 * message on both surfaces, as a usage error (exit code 2) on the command
 * line and as 400 `invalid_argument` over HTTP, before any lease is taken.
 */

import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { initStore } from "../store/store.ts";
import { createApp } from "../http/app.ts";
import { COMMANDS } from "../cli/main.ts";
import { parseCommandLine } from "../cli/_args.ts";
import { exitCodeOf, Output, UsageError } from "../cli/_output.ts";
import { Passphrases } from "../cli/_passphrase.ts";

/** The error a CLI command gives for `argv`, before it opens any store. */
async function cliError(command: string, argv: string[]): Promise<UsageError> {
  const c = COMMANDS.find((c) => c.name === command)!;
  const args = parseCommandLine(command, argv, c.flags);
  let caught: unknown;
  try {
    await c.run({
      out: new Output({ quiet: true }),
      hostDir: undefined,
      passphrases: new Passphrases({}, () => {}),
    }, args);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UsageError, `${command} ${argv.join(" ")}: ${String(caught)}`);
  assert.equal(exitCodeOf(caught), 2);
  return caught;
}

/** The `{status, code, message}` HTTP answers to a job started with `body`. */
async function httpError(
  kind: string,
  body: Record<string, unknown>,
): Promise<{ status: number; code: string; message: string }> {
  const { store } = await initStore(new MemoryDriver());
  try {
    const app = createApp(store);
    const res = await app.request(`/v1/maintenance/${kind}`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    const { code, message } = await res.json();
    return { status: res.status, code, message };
  } finally {
    await store.close();
  }
}

const CASES: Array<{
  command: string;
  kind: string;
  argv: string[];
  body: Record<string, unknown>;
  message: (name: (flag: string, key: string) => string) => string;
}> = [
  {
    command: "rebuild",
    kind: "rebuild",
    argv: ["--lease-ttl", "soon"],
    body: { leaseTTL: "soon" },
    message: (n) =>
      `${n("--lease-ttl", "leaseTTL")} must be a duration like 90s, 30m, 2h or 30d, got "soon"`,
  },
  {
    command: "rebuild",
    kind: "rebuild",
    argv: ["--parallelism", "0"],
    body: { parallelism: 0 },
    message: (n) =>
      `${n("--parallelism", "parallelism")} must be an integer from 1 to 256, got ${n('"0"', "0")}`,
  },
  {
    command: "verify",
    kind: "verify",
    argv: ["--subset", "3/2", "--data"],
    body: { subset: "3/2", data: true },
    message: (n) => `${n("--subset", "subset")} must be n/m with 1 ≤ n ≤ m, got "3/2"`,
  },
  {
    command: "migrate",
    kind: "migrate",
    argv: ["--manifest-storage", "cloud"],
    body: { manifestStorage: "cloud" },
    message: (n) =>
      `${n("--manifest-storage", "manifestStorage")} must be ${
        n("remote, local or replicated", "Remote, Local or Replicated")
      }, got "cloud"`,
  },
  {
    command: "move",
    kind: "move",
    argv: ["--lease-ttl", "100ms"],
    body: { destination: "memory:", leaseTTL: "100ms" },
    message: (n) => `${n("--lease-ttl", "leaseTTL")} must be at least 1s, got "100ms"`,
  },
];

Deno.test("a bad maintenance option: the same message from the CLI (usage, exit 2) and HTTP (400 invalid_argument)", async () => {
  for (const c of CASES) {
    const positionals = c.command === "move" ? ["memory:", "memory:"] : ["memory:"];
    const cli = await cliError(c.command, [...positionals, ...c.argv]);
    assert.equal(cli.message, c.message((flag) => flag), `${c.command} ${c.argv.join(" ")}`);
    const http = await httpError(c.kind, c.body);
    assert.deepEqual(http, {
      status: 400,
      code: "invalid_argument",
      message: c.message((_flag, key) => key),
    });
  }
});
