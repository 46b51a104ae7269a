/**
 * `capsa rm --prefix P` (issue #15): deletes every live artifact of a
 * namespace under a key prefix (`--dry-run` lists them, `--json` reports),
 * fails `not_found` when nothing matches, and refuses an empty prefix and
 * flag mistakes with capsa's own one-line usage errors. Real processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { capsa, capsaOk } from "./processes.ts";

const enc = new TextEncoder();

Deno.test("capsa rm --prefix deletes every artifact under the prefix; --dry-run lists them; usage errors are one line", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-rm-" }));
  const host = ["--host-dir", `${dir}/host`];
  const store = `${dir}/store`;
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    await Deno.mkdir(`${dir}/tree`);
    for (let i = 0; i < 150; i++) {
      await Deno.writeFile(`${dir}/tree/f${String(i).padStart(3, "0")}`, enc.encode(`${i}\n`));
    }
    await capsaOk(["put", store, "ns", "--from", `${dir}/tree`, "--prefix", "old/", ...host]);
    await capsaOk(["put", store, "ns", "--from", `${dir}/tree`, "--prefix", "new/", ...host]);
    await capsaOk(["put", store, "ns", "old", ...host], {
      stdin: enc.encode("a key, not under old/"),
    });
    const ls = async (...extra: string[]) =>
      (await capsaOk(["ls", store, "ns", ...extra, ...host])).stdout.split("\n").filter((l) => l);
    const under = await ls("--prefix", "old/");
    assert.equal(under.length, 151, "150 files and the directory old/.");
    const all = await ls();

    const dry = JSON.parse(
      (await capsaOk(["rm", store, "ns", "--prefix", "old/", "--dry-run", "--json", ...host]))
        .stdout,
    );
    assert.deepEqual([dry.dryRun, dry.count, dry.keys], [true, 151, under]);
    const dryText = await capsaOk(["rm", store, "ns", "--prefix", "old/", "--dry-run", ...host]);
    assert.deepEqual(dryText.stdout.trim().split("\n"), [
      ...under,
      "would delete 151 artifacts of ns under old/",
    ]);
    assert.deepEqual(await ls(), all, "a dry run deletes nothing");

    const rm = await capsaOk(["rm", store, "ns", "--prefix", "old/", "--json", ...host]);
    assert.equal(rm.stderr, "", "no progress bar when stderr is piped");
    const doc = JSON.parse(rm.stdout);
    assert.deepEqual([doc.namespace, doc.prefix, doc.deleted, doc.alreadyGone], [
      "ns",
      "old/",
      151,
      0,
    ]);
    assert.deepEqual(await ls(), all.filter((k) => !k.startsWith("old/")));
    assert.ok((await ls()).includes("old"), "the key `old` is not under `old/`");
    const versions = JSON.parse(
      (await capsaOk(["stat", store, "ns", "old/f007", "--versions", "--json", ...host])).stdout,
    );
    assert.equal(versions.versions.length, 2, "a tombstone, the old version kept until gc");

    const text = await capsaOk(["rm", store, "ns", "--prefix", "new/f1", ...host]); // f100…f149
    assert.match(text.stdout, /^deleted 50 artifacts of ns under new\/f1, in \d+\.\d s\n$/);

    const none = await capsa(["rm", store, "ns", "--prefix", "old/", ...host]);
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /^capsa: not_found: no artifact of namespace "ns" starts with "old\/"/,
    );
    const noneDry = await capsa(["rm", store, "ns", "--prefix", "zzz", "--dry-run", ...host]);
    assert.equal(noneDry.code, 1);

    const before = await ls();
    for (
      const [args, message] of [
        [["--prefix", ""], /--prefix must not be empty/],
        [["--dry-run", "new/f001"], /--dry-run applies to rm --prefix P/],
        [
          ["new/f001", "--bogus"],
          /^capsa: usage: unknown flag --bogus; its flags: --prefix, --dry-run/,
        ],
        [["--prefix"], /--prefix/],
        [["--prefix", "new/", "new/f001"], /./],
      ] as Array<[string[], RegExp]>
    ) {
      const r = await capsa(["rm", store, "ns", ...args, ...host]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^capsa: [^\n]*\(see: capsa rm --help\)\n$/, r.stderr);
    }
    assert.deepEqual(await ls(), before, "a usage error deletes nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
