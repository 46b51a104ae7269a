/**
 * `capsa get --to` restores everything it safely can (issue #11 points 4
 * and 6): a key that cannot be a file name here, a key that would escape,
 * and an artifact whose bytes are damaged are each named on stderr and
 * skipped, the rest is restored byte for byte, and the command exits 1 with
 * a summary that says the restore is incomplete. `capsa verify --data` names
 * the artifacts a damaged blob belongs to. Real processes, a real store.
 *
 * @module
 */

import assert from "node:assert/strict";
import { body } from "./data.ts";
import { capsa, capsaOk } from "./processes.ts";

const enc = new TextEncoder();

async function walkFiles(dir: string, rel = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory) {
      for (const [k, v] of await walkFiles(`${dir}/${e.name}`, r)) out.set(k, v);
    } else out.set(r, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function packFiles(store: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of Deno.readDir(`${store}/packs`)) {
    for await (const f of Deno.readDir(`${store}/packs/${d.name}`)) {
      out.push(`${store}/packs/${d.name}/${f.name}`);
    }
  }
  return out;
}

Deno.test("capsa get --to restores every safe key: a 300-byte file name and `..` are named and skipped, a backslash restored, exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-restore-" });
  const host = ["--host-dir", `${dir}/host`];
  const store = `${dir}/store`;
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    const keys = new Map<string, Uint8Array>();
    for (let i = 0; i < 30; i++) keys.set(`d${i % 3}/f${i}.txt`, enc.encode(`file ${i}\n`));
    keys.set("back\\slash", enc.encode("a backslash is an ordinary character here\n"));
    for (const [k, v] of keys) await capsaOk(["put", store, "ns", k, ...host], { stdin: v });
    const long = `d1/${"n".repeat(300)}`; // a key segment no file system takes
    await capsaOk(["put", store, "ns", long, ...host], { stdin: enc.encode("long\n") });
    await capsaOk(["put", store, "ns", "..", ...host], { stdin: enc.encode("dots\n") });

    const r = await capsa(["get", store, "ns", "--to", `${dir}/out`, ...host]);
    assert.equal(r.code, 1, r.stderr);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("capsa: warning: "));
    assert.equal(warnings.length, 2, r.stderr);
    assert.match(
      r.stderr,
      /warning: unsafe_key: ns\/d1\/n{300}: not restored: .*longer than 255 bytes/,
    );
    assert.match(r.stderr, /warning: unsafe_key: ns\/\.\.: not restored: .*"\.\." segment/);
    assert.doesNotMatch(r.stderr, /internal|os error/);
    assert.match(r.stdout, /^restored 31 of 33 files .*; 2 not restored \(each named above\)$/m);
    assert.deepEqual(await walkFiles(`${dir}/out`), keys);
    // Nothing was written beside the target.
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["host", "kit", "out", "store"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one damaged blob: get --to restores the rest, names the artifact, exits 1; verify --data names it too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-restore-" });
  const host = ["--host-dir", `${dir}/host`];
  const store = `${dir}/store`;
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 60; i++) {
      const key = `sub/f${String(i).padStart(2, "0")}.bin`;
      files.set(key, body(1000 + i, 2000 + i * 37)); // above the inline threshold: in a pack
      await Deno.writeFile(`${dir}/src/${key}`, files.get(key)!);
    }
    await capsaOk(["put", store, "ns", "--from", `${dir}/src`, ...host]);

    // Flip one byte in the middle of one file's bytes inside its pack.
    const victim = "sub/f17.bin";
    const needle = files.get(victim)!.subarray(500, 564);
    let damaged = false;
    for (const path of await packFiles(store)) {
      const bytes = await Deno.readFile(path);
      const at = indexOf(bytes, needle);
      if (at < 0) continue;
      bytes[at + 10]! ^= 0x01;
      await Deno.writeFile(path, bytes);
      damaged = true;
    }
    assert.ok(damaged, "the victim's bytes were found in a pack");

    const r = await capsa(["get", store, "ns", "--to", `${dir}/out`, "--json", ...host]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^capsa: warning: corrupt_object: ns\/sub\/f17\.bin: /m);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    // 59 files and two directories (`.` and sub/.), each an artifact.
    assert.equal(doc["files"], 61);
    assert.equal(doc["total"], 62);
    assert.deepEqual(
      (doc["notRestored"] as Array<{ key: string; code: string }>).map((p) => [p.key, p.code]),
      [[victim, "corrupt_object"]],
    );
    const restored = await walkFiles(`${dir}/out`);
    const expected = new Map(files);
    expected.delete(victim);
    assert.deepEqual(restored, expected, "every other file byte for byte, no partial victim");

    const v = await capsa(["verify", store, "--data", ...host]);
    assert.equal(v.code, 3, v.stdout + v.stderr);
    assert.match(v.stdout + v.stderr, /ns\/sub\/f17\.bin/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa get --to: a small or a large file whose path is a directory there is named and skipped, no temporary file left; modes (read-only too) and times restored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-restore-" });
  const host = ["--host-dir", `${dir}/host`];
  const store = `${dir}/store`;
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    const tree = `${dir}/tree`;
    await Deno.mkdir(`${tree}/sub`, { recursive: true });
    const files: Record<string, Uint8Array> = {
      "small.txt": enc.encode("small\n"),
      "big.bin": body(3, 1_500_000), // past the 1 MiB read whole: streamed
      "sub/ro.txt": enc.encode("read-only\n"),
      "sub/ok.txt": enc.encode("ok\n"),
    };
    for (const [k, v] of Object.entries(files)) await Deno.writeFile(`${tree}/${k}`, v);
    await Deno.chmod(`${tree}/sub/ro.txt`, 0o444);
    await Deno.utime(`${tree}/sub/ok.txt`, 1_000_000_000, 1_000_000_000.25);
    await capsaOk(["put", store, "ns", "--from", tree, ...host]);

    const out = `${dir}/out`;
    await Deno.mkdir(`${out}/small.txt/inside`, { recursive: true });
    await Deno.mkdir(`${out}/big.bin`, { recursive: true });
    const r = await capsa(["get", store, "ns", "--to", out, ...host]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /warning: is_a_directory: ns\/small\.txt: .*is a directory/);
    assert.match(r.stderr, /warning: is_a_directory: ns\/big\.bin: .*is a directory/);
    assert.deepEqual(await Deno.readFile(`${out}/sub/ro.txt`), files["sub/ro.txt"]);
    assert.deepEqual(await Deno.readFile(`${out}/sub/ok.txt`), files["sub/ok.txt"]);
    assert.equal((await Deno.stat(`${out}/sub/ro.txt`)).mode! & 0o777, 0o444);
    assert.equal((await Deno.stat(`${out}/sub/ok.txt`)).mtime!.getTime(), 1_000_000_000_250);
    const names = (d: string) => [...Deno.readDirSync(d)].map((e) => e.name).sort();
    assert.deepEqual(names(out), ["big.bin", "small.txt", "sub"]);
    assert.deepEqual(names(`${out}/sub`), ["ok.txt", "ro.txt"]);
    assert.deepEqual(names(`${out}/small.txt`), ["inside"]);

    // Once the directories are gone, the same command restores everything.
    await Deno.remove(`${out}/small.txt`, { recursive: true });
    await Deno.remove(`${out}/big.bin`, { recursive: true });
    await capsaOk(["get", store, "ns", "--to", out, ...host]);
    assert.deepEqual(await walkFiles(out), new Map(Object.entries(files)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
