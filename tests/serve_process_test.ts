/**
 * `capsa serve` as a real process facing misbehaving clients (issue #11
 * point 7 and its minor list): a client that drops its PUT body halfway gets
 * a 4xx and the server logs one line, no stack; a read that hits a damaged
 * blob after its response started is cut short (never wrong bytes) and
 * logged as one line; `%0A` in a key and a percent-escape that is not UTF-8
 * are 400; a token file whose token no client can send is refused, and one
 * that others may read gets a warning.
 *
 * @module
 */

import assert from "node:assert/strict";
import { body } from "./data.ts";
import { capsa, capsaOk, denoRun, killProcess } from "./processes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const TOKEN = "0123456789abcdef-serve-token";
const AUTH = { Authorization: `Bearer ${TOKEN}` };

interface Served {
  url: string;
  port: number;
  /** Stops the server (SIGINT) and returns everything it wrote to stderr. */
  stop(): Promise<string>;
}

async function startServe(store: string, dir: string): Promise<Served> {
  await Deno.writeTextFile(`${dir}/token`, `${TOKEN}\n`, { mode: 0o600 });
  await Deno.chmod(`${dir}/token`, 0o600);
  const child = denoRun([
    `${Deno.cwd()}/cli.ts`,
    "serve",
    store,
    "--listen",
    "127.0.0.1:0",
    "--token-file",
    `${dir}/token`,
    "--json",
    "--host-dir",
    `${dir}/host`,
  ]).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/\}\s*$/.test(text)) {
    const { value, done } = await reader.read();
    if (done) {
      await killProcess(child);
      throw new Error(`capsa serve did not start: ${text} ${await stderr}`);
    }
    text += value;
  }
  const listening = JSON.parse(text) as { url: string; port: number };
  return {
    url: listening.url,
    port: listening.port,
    async stop() {
      child.kill("SIGINT");
      await reader.cancel().catch(() => {});
      const status = await child.status;
      const err = await stderr;
      assert.equal(status.code, 0, err);
      return err;
    },
  };
}

/** Sends raw bytes on a new connection, optionally half-closing, and returns what came back. */
async function rawExchange(port: number, request: Uint8Array, halfClose: boolean): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(request);
    if (halfClose) await conn.closeWrite();
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return dec.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

Deno.test("capsa serve: a dropped PUT body is a 400 and one log line, nothing stored; a late read failure cuts the body and logs one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-serve-" });
  const store = `${dir}/store`;
  const host = ["--host-dir", `${dir}/host`];
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    // A body of several blobs (above the chunk threshold), the last of them damaged below.
    const big = body(77, 3_000_000);
    await capsaOk(["put", store, "ns", "big.bin", ...host], { stdin: big });
    const server = await startServe(store, dir);
    let stderr: string;
    try {
      // 1. The client announces 100,000 bytes, sends 10 and stops sending.
      const head = `PUT /v1/objects/ns/dropped.bin HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${TOKEN}\r\nContent-Length: 100000\r\n\r\n0123456789`;
      const answer = await rawExchange(server.port, enc.encode(head), true);
      assert.match(answer, /^HTTP\/1\.1 400 /, answer);
      assert.match(answer, /"code":"incomplete_body"/);
      const gone = await fetch(`${server.url}/v1/objects/ns/dropped.bin`, { headers: AUTH });
      assert.equal(gone.status, 404, "nothing was stored");
      await gone.body?.cancel();

      // 2. Damage the last megabyte of the big body inside its pack, then read it.
      const needle = big.subarray(big.length - 200_000, big.length - 199_936);
      let damaged = false;
      for await (const d of Deno.readDir(`${store}/packs`)) {
        for await (const f of Deno.readDir(`${store}/packs/${d.name}`)) {
          const path = `${store}/packs/${d.name}/${f.name}`;
          const bytes = await Deno.readFile(path);
          for (let i = 0; i + needle.length <= bytes.length; i++) {
            if (bytes[i] === needle[0] && needle.every((b, j) => bytes[i + j] === b)) {
              bytes[i + 5]! ^= 0x40;
              await Deno.writeFile(path, bytes);
              damaged = true;
              break;
            }
          }
        }
      }
      assert.ok(damaged, "the big body's bytes were found in a pack");
      const res = await fetch(`${server.url}/v1/objects/ns/big.bin`, { headers: AUTH });
      assert.equal(res.status, 200); // its first blob is sound: the response starts
      const got = await res.arrayBuffer().then((b) => new Uint8Array(b), () => undefined);
      assert.ok(got === undefined || got.length < big.length, "the body is cut, never completed");
      if (got) assert.deepEqual(got, big.subarray(0, got.length), "no wrong byte");
    } finally {
      stderr = await server.stop();
    }
    const lines = stderr.split("\n").filter((l) => l !== "");
    assert.doesNotMatch(stderr, /^\s+at /m, `no stack trace: ${stderr}`);
    assert.equal(lines.length, 2, stderr);
    assert.match(
      lines[0]!,
      /^capsa http: PUT http:\/\/[^ ]+\/v1\/objects\/ns\/dropped\.bin: 400 incomplete_body: /,
    );
    assert.match(
      lines[1]!,
      /^capsa http: GET http:\/\/[^ ]+\/v1\/objects\/ns\/big\.bin: the response was cut after it started: corrupt_object: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa serve: %0A and a non-UTF-8 escape in a path are 400; a token no client can send is refused, a readable token file warned about", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-serve-" });
  const store = `${dir}/store`;
  const host = ["--host-dir", `${dir}/host`];
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    const server = await startServe(store, dir);
    try {
      for (const path of ["ns/a%0Ab", "ns/a%E0%A4", "n%0As/a"]) {
        const r = await fetch(`${server.url}/v1/objects/${path}`, {
          method: "PUT",
          body: "x",
          headers: AUTH,
        });
        const doc = await r.json();
        assert.equal(r.status, 400, `${path}: ${JSON.stringify(doc)}`);
        assert.equal(doc.code, "invalid_argument");
      }
      // The same bytes escaped properly are an ordinary key, and the refused one was not stored.
      const ok = await fetch(`${server.url}/v1/objects/ns/a%25E0%25A4`, {
        method: "PUT",
        body: "x",
        headers: AUTH,
      });
      assert.equal(ok.status, 201);
      assert.equal((await ok.json()).key, "a%E0%A4");
      const list = await (await fetch(`${server.url}/v1/objects/ns`, { headers: AUTH })).json();
      assert.deepEqual(list.items.map((i: { key: string }) => i.key), ["a%E0%A4"]);
    } finally {
      assert.equal(await server.stop(), "");
    }

    await Deno.writeTextFile(`${dir}/spaced`, "0123456789 abcdef-token\n", { mode: 0o600 });
    const spaced = await capsa([
      "serve",
      store,
      "--listen",
      "127.0.0.1:0",
      "--token-file",
      `${dir}/spaced`,
      ...host,
    ]);
    assert.equal(spaced.code, 2, spaced.stderr);
    assert.match(spaced.stderr, /holds a space, a control or a non-ASCII character/);

    // A token file others may read: a warning on stderr, and the server starts.
    await Deno.writeTextFile(`${dir}/open`, `${TOKEN}\n`);
    await Deno.chmod(`${dir}/open`, 0o644);
    const child = denoRun([
      `${Deno.cwd()}/cli.ts`,
      "serve",
      store,
      "--listen",
      "127.0.0.1:0",
      "--token-file",
      `${dir}/open`,
      ...host,
    ]).spawn();
    const err = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await err.read();
      if (done) break;
      text += value;
    }
    await err.cancel();
    await killProcess(child);
    assert.match(
      text,
      /^capsa: warning: token_file_readable: .*open may be read by other users \(mode 644\): chmod 600 /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capsa serve: curl --data-binary @files.tar to POST ?batch fills one pack; a tar cut off by the client keeps the files before the cut", async () => {
  const dir = await Deno.makeTempDir({ prefix: "capsa-serve-batch-" });
  const store = `${dir}/store`;
  const host = ["--host-dir", `${dir}/host`];
  const countPacks = async () => {
    let n = 0;
    if (!(await Deno.stat(`${store}/packs`).then(() => true, () => false))) return 0;
    for await (const d of Deno.readDir(`${store}/packs`)) {
      for await (const _ of Deno.readDir(`${store}/packs/${d.name}`)) n++;
    }
    return n;
  };
  try {
    await capsaOk(["init", store, "--kit", `${dir}/kit`, ...host]);
    await Deno.mkdir(`${dir}/files/sub`, { recursive: true });
    for (let i = 0; i < 300; i++) {
      await Deno.writeFile(`${dir}/files/${i % 2 ? "sub/" : ""}f${i}`, body(i, 1000 + i * 7));
    }
    await Deno.symlink("f0", `${dir}/files/link`);
    const tar = await new Deno.Command("tar", {
      args: ["-cf", `${dir}/files.tar`, "-C", `${dir}/files`, "."],
    }).output();
    assert.equal(tar.code, 0);
    const server = await startServe(store, dir);
    let stderr: string;
    try {
      const packs = await countPacks();
      const curl = await new Deno.Command("curl", {
        args: [
          "-sS",
          "-H",
          `Authorization: Bearer ${TOKEN}`,
          "-H",
          "Content-Type: application/x-tar",
          "--data-binary",
          `@${dir}/files.tar`,
          "-w",
          "\n%{http_code}",
          `${server.url}/v1/objects/site?batch&prefix=v1/`,
        ],
      }).output();
      assert.equal(curl.code, 0, dec.decode(curl.stderr));
      const [json, status] = dec.decode(curl.stdout).split("\n");
      const answer = JSON.parse(json!);
      // The symbolic link is a failed item; the 300 files are stored.
      assert.deepEqual([status, answer.stored, answer.failed], ["207", 300, 1]);
      assert.match(
        answer.items.find((i: { key: string }) => i.key === "v1/link").error.message,
        /symbolic link/,
      );
      assert.equal((await countPacks()) - packs, 1, "one pack for 300 files");
      const got = await fetch(`${server.url}/v1/objects/site/v1/sub/f299`, { headers: AUTH });
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), body(299, 1000 + 299 * 7));

      // The client announces the whole tar, sends its first 20 KiB and stops sending.
      const bytes = await Deno.readFile(`${dir}/files.tar`);
      const head = `POST /v1/objects/cut?batch HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${TOKEN}\r\nContent-Type: application/x-tar\r\n` +
        `Content-Length: ${bytes.length}\r\n\r\n`;
      const raw = await rawExchange(
        server.port,
        new Uint8Array([...enc.encode(head), ...bytes.subarray(0, 20_000)]),
        true,
      );
      assert.match(raw, /^HTTP\/1\.1 400 /, raw);
      const cut = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4));
      assert.equal(cut.code, "incomplete_body");
      const listed = await (await fetch(`${server.url}/v1/objects/cut`, { headers: AUTH })).json();
      assert.ok(cut.stored > 0);
      assert.deepEqual(
        listed.items.map((i: { key: string }) => i.key).sort(),
        cut.items.filter((i: { version?: string }) => i.version).map((i: { key: string }) => i.key)
          .sort(),
        "exactly the entries the answer lists as stored are visible",
      );
    } finally {
      stderr = await server.stop();
    }
    assert.match(stderr, /POST http:\/\/[^ ]+\/v1\/objects\/cut\?batch: 400 incomplete_body: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
