import assert from "node:assert/strict";
import { intFlag, namePositionals, parseCommandLine, parseListen, splitCommand } from "./_args.ts";
import { UsageError } from "./_output.ts";

Deno.test("splitCommand() finds the command after global flags, skipping --host-dir's value", () => {
  assert.deepEqual(splitCommand(["--json", "--host-dir", "/h", "ls", "loc"]), {
    command: "ls",
    rest: ["--json", "--host-dir", "/h", "loc"],
  });
  assert.deepEqual(splitCommand(["--host-dir=/h", "status", "x"]), {
    command: "status",
    rest: ["--host-dir=/h", "x"],
  });
  assert.deepEqual(splitCommand(["--help"]), { command: undefined, rest: ["--help"] });
  assert.deepEqual(splitCommand(["--", "ls"]), { command: undefined, rest: ["--", "ls"] });
});

Deno.test("parseCommandLine() accepts global flags anywhere and turns mistakes into UsageError", () => {
  const r = parseCommandLine("get", ["loc", "-q", "ns", "--json", "-o", "f", "--", "-k"], {
    output: { type: "string", short: "o" },
  });
  assert.deepEqual(r.positionals, ["loc", "ns", "-k"]);
  assert.equal(r.values["output"], "f");
  assert.equal(r.values["quiet"], true);
  assert.equal(r.values["json"], true);
  assert.throws(() => parseCommandLine("get", ["--nope"], {}), UsageError);
  assert.throws(() => parseCommandLine("get", ["--host-dir"], {}), /capsa get --help/);
});

Deno.test("namePositionals() names positionals in lower case and counts them", () => {
  assert.deepEqual(
    namePositionals("put", ["l", "n", "k"], ["LOCATION", "NAMESPACE", "KEY", "FILE?"]),
    {
      location: "l",
      namespace: "n",
      key: "k",
      file: undefined,
    },
  );
  assert.throws(
    () => namePositionals("put", ["l"], ["LOCATION", "NAMESPACE"]),
    /missing NAMESPACE/,
  );
  assert.throws(
    () => namePositionals("ls", ["l", "n", "x"], ["LOCATION", "NAMESPACE?"]),
    /unexpected/,
  );
});

Deno.test("parseListen() and intFlag() accept the documented forms only", () => {
  assert.deepEqual(parseListen("127.0.0.1:8787"), { hostname: "127.0.0.1", port: 8787 });
  assert.deepEqual(parseListen("[::1]:0"), { hostname: "::1", port: 0 });
  assert.deepEqual(parseListen("localhost:80"), { hostname: "localhost", port: 80 });
  for (const bad of ["8787", "host:", ":80", "h:99999", "::1:80"]) {
    assert.throws(() => parseListen(bad), UsageError, bad);
  }
  assert.equal(intFlag({ n: "8" }, "n"), 8);
  assert.equal(intFlag({}, "n"), undefined);
  for (const bad of ["0", "-1", "1e3", "x", "300"]) {
    assert.throws(() => intFlag({ n: bad }, "n", 256), UsageError, bad);
  }
});
