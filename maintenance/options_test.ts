import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import {
  boolean,
  choice,
  duration,
  integer,
  MOVE_OPTIONS,
  type OptionSource,
  parseDuration,
  parseMigrateOptions,
  parseMoveOptions,
  parseRebuildOptions,
  parseVerifyOptions,
  readOptions,
  subset,
  text,
} from "./options.ts";

/** Asserts that reading `input` fails with an InvalidArgumentError whose message matches. */
function refused(read: () => unknown, message: RegExp, what = ""): void {
  assert.throws(read, (e) => {
    assert.ok(e instanceof InvalidArgumentError, `${what}: ${String(e)}`);
    assert.match(e.message, message, what);
    return true;
  });
}

Deno.test("parseDuration() reads ms, s, m, h and d, zero included, and nothing else", () => {
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("30d"), 2_592_000_000);
  assert.equal(parseDuration("0s"), 0);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1500ms"), 1500);
  for (const bad of ["", "30", "1w", "-5m", "1.5h", "m", "30 m", "1e3s"]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

Deno.test("integer(): digits from flags, JSON integers from JSON, within bounds", () => {
  const spec = { n: integer(1, 256, "n") };
  assert.deepEqual(readOptions(spec, { n: "8" }, "flags"), { n: 8 });
  assert.deepEqual(readOptions(spec, { n: 256 }, "json"), { n: 256 });
  for (const bad of ["0", "-1", "1e3", "x", "300", "8.0", ""]) {
    refused(
      () => readOptions(spec, { n: bad }, "flags"),
      /^--n must be an integer from 1 to 256/,
      bad,
    );
  }
  for (const bad of ["8", 0, 1.5, 257, true, [8]]) {
    refused(
      () => readOptions(spec, { n: bad }, "json"),
      /^n must be an integer from 1 to 256/,
      String(bad),
    );
  }
});

Deno.test("duration(): `30m` from both sources, milliseconds from JSON, at least the minimum", () => {
  const spec = { ttl: duration(1000, "ttl") };
  assert.deepEqual(readOptions(spec, { ttl: "30m" }, "flags"), { ttl: 1_800_000 });
  assert.deepEqual(readOptions(spec, { ttl: "30m" }, "json"), { ttl: 1_800_000 });
  assert.deepEqual(readOptions(spec, { ttl: 5000 }, "json"), { ttl: 5000 });
  refused(() => readOptions(spec, { ttl: "5000" }, "flags"), /^--ttl must be a duration like 90s/);
  refused(() => readOptions(spec, { ttl: "soon" }, "json"), /^ttl must be a duration like 90s/);
  refused(
    () => readOptions(spec, { ttl: "500ms" }, "flags"),
    /^--ttl must be at least 1s, got "500ms"/,
  );
  refused(() => readOptions(spec, { ttl: 10 }, "json"), /^ttl must be at least 1s, got 10/);
  refused(() => readOptions(spec, { ttl: 1.5 }, "json"), /duration/);
});

Deno.test("boolean(), choice(), subset() and text() accept their forms and name the option when not", () => {
  const specs = {
    on: boolean("on"),
    mode: choice({ FullScan: "full-scan", Auto: "auto" }, "mode"),
    part: subset("part"),
    name: text("name"),
  };
  const both = (input: Record<string, unknown>, from: OptionSource) =>
    readOptions(specs, input, from);
  assert.deepEqual(both({ on: true, mode: "full-scan", part: "2/7", name: "x" }, "flags"), {
    on: true,
    mode: "FullScan",
    part: { slice: [2, 7] },
    name: "x",
  });
  assert.deepEqual(both({ on: false, mode: "FullScan", part: "12.5%" }, "json"), {
    on: false,
    mode: "FullScan",
    part: { fraction: 0.125 },
  });
  assert.deepEqual(both({ mode: "auto" }, "json"), { mode: "Auto" }, "aliases work in JSON too");
  refused(() => both({ on: "yes" }, "json"), /^on must be true or false, got "yes"/);
  refused(
    () => both({ mode: "sideways" }, "flags"),
    /^--mode must be full-scan or auto, got "sideways"/,
  );
  refused(
    () => both({ mode: "sideways" }, "json"),
    /^mode must be FullScan or Auto, got "sideways"/,
  );
  for (const bad of ["3/2", "0/3", "101%", "x", "1/"]) {
    refused(() => both({ part: bad }, "flags"), /^--part must be/, bad);
  }
  refused(() => both({ name: "" }, "json"), /^name must be a non-empty string/);
  refused(() => both({ name: 5 }, "json"), /^name must be a non-empty string/);
});

Deno.test("readOptions(): JSON refuses unknown keys and counts null as absent; flags ignore other keys", () => {
  const specs = { parallelism: integer(1, 8, "parallelism"), jsonOnly: text() };
  assert.deepEqual(readOptions(specs, { parallelism: null }, "json"), {});
  refused(() => readOptions(specs, { paralelism: 2 }, "json"), /unknown parameter "paralelism"/);
  assert.deepEqual(
    readOptions(specs, { parallelism: "2", json: true, jsonOnly: "ignored" }, "flags"),
    { parallelism: 2 },
  );
  refused(() => readOptions(MOVE_OPTIONS, {}, "json"), /^destination is required/);
  assert.deepEqual(readOptions(MOVE_OPTIONS, {}, "flags"), {});
});

Deno.test("parse*Options(): every agent reads the same options from flags and from JSON", () => {
  assert.deepEqual(
    parseRebuildOptions(
      { source: "full-scan", "batch-size": "10", parallelism: "4", "lease-ttl": "2m", force: true },
      "flags",
    ),
    parseRebuildOptions(
      { source: "FullScan", batchSize: 10, parallelism: 4, leaseTTL: 120_000, force: true },
      "json",
    ),
  );
  assert.deepEqual(parseRebuildOptions({ recoveryKit: "kit" }, "json"), {
    recoveryKit: new TextEncoder().encode("kit"),
  });
  assert.deepEqual(
    parseVerifyOptions({ data: true, subset: "10%", seed: "7" }, "flags"),
    parseVerifyOptions({ data: true, subset: "10%", seed: 7 }, "json"),
  );
  assert.deepEqual(parseVerifyOptions({ data: true, subset: "10%", seed: 7 }, "json").subset, {
    fraction: 0.1,
    seed: 7,
  });
  assert.deepEqual(
    parseMigrateOptions({ "manifest-storage": "replicated", "lease-ttl": "1h" }, "flags"),
    { manifestStorage: "Replicated", leaseTTL: 3_600_000 },
  );
  const { destination, ...fromJson } = parseMoveOptions(
    { destination: "file:///x", parallelism: 2, deleteSource: true },
    "json",
  );
  assert.equal(destination, "file:///x");
  assert.deepEqual(
    parseMoveOptions({ parallelism: "2", "delete-source": true }, "flags"),
    fromJson,
  );
});

Deno.test("parseVerifyOptions(): subset needs data, seed needs a percentage subset, on both sources", () => {
  refused(
    () => parseVerifyOptions({ subset: "1/2" }, "flags"),
    /^--subset restricts the data checks: add --data$/,
  );
  refused(
    () => parseVerifyOptions({ subset: "1/2" }, "json"),
    /^subset restricts the data checks: add data: true$/,
  );
  refused(
    () => parseVerifyOptions({ data: true, subset: "1/2", seed: "3" }, "flags"),
    /^--seed goes with a percentage --subset/,
  );
  refused(
    () => parseVerifyOptions({ data: true, seed: 3 }, "json"),
    /^seed goes with a percentage subset/,
  );
});
