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
