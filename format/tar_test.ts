import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidArchiveError, readTar, TAR_BLOCK, type TarEntry } from "./tar.ts";
import { writeTarForTest } from "../tests/tar.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A stream of `bytes`, `piece` bytes per chunk (odd sizes cross every boundary). */
function chunked(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

interface Seen {
  path: string;
  type: TarEntry["type"];
  body?: string;
  linkpath?: string;
}

async function readAll(stream: ReadableStream<Uint8Array>, how: "bytes" | "stream" = "bytes") {
  const out: Seen[] = [];
  for await (const e of readTar(stream)) {
    if (e.type !== "file") {
      out.push({ path: e.path, type: e.type, ...(e.linkpath ? { linkpath: e.linkpath } : {}) });
      continue;
    }
    const body = how === "bytes"
      ? await e.bytes()
      : new Uint8Array(await new Response(e.stream()).arrayBuffer());
    out.push({ path: e.path, type: e.type, body: dec.decode(body) });
  }
  return out;
}

async function tarOf(dir: string, args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command("tar", { args: ["-c", "-C", dir, ...args, "-f", "-", "."] })
    .output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  return out.stdout;
}

async function treeDir(): Promise<{ dir: string; files: Map<string, string> }> {
  const dir = await Deno.makeTempDir();
  const files = new Map<string, string>([
    ["a.txt", "alpha"],
    ["empty", ""],
    [`deep/${"d".repeat(120)}/${"n".repeat(150)}.bin`, "long name"],
    ["ünï/cödé ✓.txt", "utf-8 name"],
    ["big.bin", "x".repeat(70_000)],
  ]);
  for (const [path, text] of files) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), text);
  }
  await Deno.symlink("a.txt", join(dir, "link"));
  return { dir, files };
}

for (const format of ["pax", "gnu", "ustar"] as const) {
  Deno.test(`readTar() reads what the system tar writes (--format=${format}), in any chunking`, async () => {
    const { dir, files } = await treeDir();
    try {
      if (format === "ustar") {
        // ustar cannot hold the 280-byte name: leave it out.
        await Deno.remove(join(dir, "deep"), { recursive: true });
        files.delete([...files.keys()].find((k) => k.startsWith("deep/"))!);
      }
      const tar = await tarOf(dir, [`--format=${format}`]);
      for (const [piece, how] of [[1 << 20, "bytes"], [7, "stream"], [513, "bytes"]] as const) {
        const seen = await readAll(chunked(tar, piece), how);
        const got = new Map(seen.filter((s) => s.type === "file").map((s) => [s.path, s.body]));
        assert.deepEqual(
          got,
          new Map([...files].map(([k, v]) => [`./${k}`, v])),
          `${format}, chunks of ${piece}`,
        );
        assert.deepEqual(seen.find((s) => s.path === "./link"), {
          path: "./link",
          type: "symlink",
          linkpath: "a.txt",
        });
        assert.ok(seen.some((s) => s.path === "./ünï/" && s.type === "directory"));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("readTar() skips the bodies the caller does not read", async () => {
  const tar = writeTarForTest([
    { path: "a", body: enc.encode("x".repeat(1000)) },
    { path: "b", body: enc.encode("bee") },
  ]);
  const paths: string[] = [];
  let last = "";
  for await (const e of readTar(chunked(tar, 100))) {
    paths.push(e.path);
    if (e.path === "b") last = dec.decode(await e.bytes());
  }
  assert.deepEqual([paths, last], [["a", "b"], "bee"]);
});

async function failure(tar: Uint8Array, read = true): Promise<InvalidArchiveError> {
  let error: unknown;
  try {
    for await (const e of readTar(chunked(tar, 300))) if (read) await e.bytes();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof InvalidArchiveError, `expected InvalidArchiveError, got ${error}`);
  assert.equal(error.code, "invalid_archive");
  return error;
}

Deno.test("readTar() refuses a header whose checksum is wrong, naming its offset", async () => {
  const tar = writeTarForTest([
    { path: "a", body: enc.encode("alpha") },
    { path: "b", body: enc.encode("beta") },
  ]);
  tar[TAR_BLOCK * 2 + 10] = 0x41; // the second header's name: "b" becomes "bA"
  const e = await failure(tar);
  assert.equal(e.offset, 1024);
  assert.match(e.message, /header at byte 1024 has a wrong checksum/);
  const gz = await failure(new Uint8Array([0x1f, 0x8b, ...new Uint8Array(600)]));
  assert.equal(gz.offset, 0);
  assert.match(gz.message, /\.tar\.gz is not accepted/);
});

Deno.test("readTar() refuses a tar cut short: in a header, in a body, before the end marker, or empty", async () => {
  const tar = writeTarForTest([
    { path: "a", body: enc.encode("alpha") },
    { path: "b", body: enc.encode("b".repeat(2000)) },
  ]);
  // Entry a: header 0, body 512; entry b: header 1024, body 1536–3536 (padded to 3584).
  const cases: [number, number, RegExp, boolean][] = [
    [1024 + 100, 1024, /inside the header that starts at byte 1024/, true],
    [2000, 1024, /inside the body of "b" \(entry at byte 1024/, true],
    [2000, 1024, /inside the body of "b"/, false],
    [3584, 3584, /without its end-of-archive marker/, true],
    [0, 0, /the tar ends at byte 0/, true],
  ];
  for (const [cut, offset, message, read] of cases) {
    const e = await failure(tar.slice(0, cut), read);
    assert.equal(e.offset, offset, `cut at ${cut}`);
    assert.match(e.message, message);
  }
});

Deno.test("readTar() refuses a malformed pax record and a pax header with no entry after it", async () => {
  const good = writeTarForTest([{ path: "ü".repeat(3), body: enc.encode("x") }]);
  // The pax record is "13 path=üüü\n" (12 bytes + …): break its length.
  const bad = good.slice();
  bad[512] = "9".charCodeAt(0);
  // The header checksum does not cover the pax data, so only the record is wrong.
  const e = await failure(bad);
  assert.equal(e.offset, 0);
  assert.match(e.message, /malformed record/);
  const orphan = good.slice(0, 1024);
  const withEnd = new Uint8Array([...orphan, ...new Uint8Array(1024)]);
  assert.match((await failure(withEnd)).message, /followed by the end of the archive/);
});

Deno.test("readTar() passes a failing stream's own error through, and keeps failing", async () => {
  const boom = new Error("socket reset");
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) {
        sent = true;
        c.enqueue(writeTarForTest([{ path: "a", body: new Uint8Array(5000) }]).slice(0, 1500));
      } else c.error(boom);
    },
  });
  const it = readTar(stream);
  const first = await it.next();
  assert.ok(!first.done);
  await assert.rejects(first.value.bytes(), (e) => e === boom);
  await assert.rejects(it.next(), (e) => e === boom);
});
