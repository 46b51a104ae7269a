/**
 * Encrypted stores through the `capsa` CLI, in real processes: what lands on
 * disk (store and host directory) never shows a file's content or name; the
 * passphrase comes from the environment or a file, never argv; wrong and
 * missing passphrases exit 6 and change nothing; key slots are added,
 * changed and removed (never the last); a rebuild with the Recovery Kit
 * works after every descriptor replica and every key slot is lost, and the
 * kit alone opens nothing; `capsa serve` refuses to start with a wrong
 * passphrase.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { containsBytes, filesUnder } from "./disk.ts";
import { capsa, capsaOk, CLI, denoRun } from "./processes.ts";

const MARKER = "OKAPI-MARKER-7d1e";
const NAMES = ["tax-return-2025.pdf", "medical/letter-from-dr-okafor.txt", "payroll.csv"];
const KDF = "m=1024,t=1,p=1";

/** Every encoding of a text capsa could store it in: UTF-8, UTF-16LE, JSON-escaped, base64. */
function needles(text: string): Uint8Array[] {
  const enc = new TextEncoder();
  const utf16 = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) utf16[i * 2] = text.charCodeAt(i);
  return [enc.encode(text), utf16, enc.encode(JSON.stringify(text)), enc.encode(btoa(text))];
}

/** A snapshot of a directory: every file's path, size and modification time. */
async function state(dir: string): Promise<string> {
  const lines: string[] = [];
  for (const f of await filesUnder(dir)) {
    const info = await Deno.stat(f);
    lines.push(`${f} ${info.size} ${info.mtime?.getTime()}`);
  }
  return lines.join("\n");
}

interface Fixture {
  root: string;
  store: string;
  host: string;
  kit: string;
  src: string;
  env: Record<string, string>;
  run(args: string[], env?: Record<string, string>): ReturnType<typeof capsa>;
  ok(args: string[], env?: Record<string, string>): ReturnType<typeof capsaOk>;
}

async function fixture(): Promise<Fixture> {
  const root = await Deno.makeTempDir();
  const f: Fixture = {
    root,
    store: join(root, "store"),
    host: join(root, "host"),
    kit: join(root, "kit.txt"),
    src: join(root, "src"),
    env: { CAPSA_PASSPHRASE: "first passphrase" },
    run: (args, env) =>
      capsa([...args, "--host-dir", join(root, "host")], { env: { ...f.env, ...env } }),
    ok: (args, env) =>
      capsaOk([...args, "--host-dir", join(root, "host")], { env: { ...f.env, ...env } }),
  };
  await f.ok(["init", f.store, "--encrypt", "--kdf", KDF, "--kit", f.kit]);
  for (const [i, name] of NAMES.entries()) {
    const path = join(f.src, name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    // Text that compresses (so compressed blobs are sealed too), a small file, and a large one.
    const body = i === 2
      ? `${MARKER}\n`.repeat(200_000) // 3.6 MB: cut into chunks
      : `${MARKER} ${name} `.repeat(i === 0 ? 1 : 3000);
    await Deno.writeTextFile(path, body);
  }
  await f.ok(["put", f.store, "private", "--from", f.src]);
  await f.ok(["snapshot", f.store]);
  return f;
}

Deno.test("an encrypted store's files on disk hold no content or name; get --to restores every byte", async () => {
  const f = await fixture();
  try {
    const files = [...await filesUnder(f.store), ...await filesUnder(f.host)];
    assert.ok(files.some((p) => p.includes("/packs/")), "packs written");
    assert.ok(files.some((p) => p.includes("/snapshots/")), "a snapshot written");
    assert.ok(files.some((p) => p.endsWith("/index/cache")), "a host cache written");
    const secrets = [MARKER, ...NAMES, ...NAMES.map((n) => n.split("/").pop()!), "private"];
    for (const p of files) {
      const bytes = await Deno.readFile(p);
      for (const s of secrets) {
        for (const n of needles(s)) assert.ok(!containsBytes(bytes, n), `${p} holds ${s}`);
      }
    }
    const status = JSON.parse((await f.ok(["status", f.store, "--json"])).stdout);
    assert.equal(status.encryption, "aes-256-gcm");
    assert.match((await f.ok(["status", f.store])).stdout, /^encryption\s+aes-256-gcm$/m);
    // Format version 3: a capsa without encryption refuses it ("upgrade capsa"), never misreads.
    const descriptor = JSON.parse(await Deno.readTextFile(join(f.store, "store.json")));
    assert.equal(descriptor.formatVersion, 3);
    assert.deepEqual(Object.keys(descriptor.encryption), ["cipher", "keyCheck"]);
    const kit = await Deno.readFile(f.kit);
    for (const s of secrets) for (const n of needles(s)) assert.ok(!containsBytes(kit, n));

    const out = join(f.root, "out");
    await f.ok(["get", f.store, "private", "--to", out]);
    for (const name of NAMES) {
      assert.deepEqual(
        await Deno.readFile(join(out, name)),
        await Deno.readFile(join(f.src, name)),
      );
    }
    // A second put of the same tree writes nothing: digests are keyed, and still compared.
    const again = await f.ok(["put", f.store, "private", "--from", f.src, "--json"]);
    // (Directories are artifacts too: the tree's root and medical/.)
    assert.equal(JSON.parse(again.stdout).newVersions, 0);
    assert.equal(JSON.parse(again.stdout).unchanged, NAMES.length + 2);
    const verify = await f.ok(["verify", f.store, "--data", "--json"]);
    assert.equal(JSON.parse(verify.stdout).problems.length, 0);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("wrong, missing and command-line passphrases: exit 6 (2 for argv), nothing changed", async () => {
  const f = await fixture();
  try {
    const before = await state(f.root);
    const wrong = await f.run(["ls", f.store, "private"], { CAPSA_PASSPHRASE: "nope" });
    assert.equal(wrong.code, 6, wrong.stderr);
    assert.match(wrong.stderr, /^capsa: wrong_passphrase: /);
    const missing = await capsa(["ls", f.store, "private", "--host-dir", f.host]);
    assert.equal(missing.code, 6, missing.stderr);
    assert.match(
      missing.stderr,
      /passphrase_required: .*CAPSA_PASSPHRASE.*--passphrase-file.*prompt/,
    );
    const argv = await f.run(["ls", f.store, "--passphrase", "first passphrase"]);
    assert.equal(argv.code, 2);
    assert.match(argv.stderr, /never taken from the command line/);
    const put = await f.run(["put", f.store, "private", "new.txt", join(f.src, "payroll.csv")], {
      CAPSA_PASSPHRASE: "nope",
    });
    assert.equal(put.code, 6);
    assert.equal(await state(f.root), before);
    // A passphrase file works, the environment unset.
    const file = join(f.root, "pass.txt");
    await Deno.writeTextFile(file, "first passphrase\n", { mode: 0o600 });
    const ls = await capsaOk([
      "ls",
      f.store,
      "private",
      "--passphrase-file",
      file,
      "--host-dir",
      f.host,
    ]);
    assert.match(ls.stdout, /payroll\.csv/);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("capsa key: add, passwd, remove; the last slot is refused; a removed passphrase stops", async () => {
  const f = await fixture();
  try {
    const list = async (pass: string) =>
      JSON.parse(
        (await f.ok(["key", "list", f.store, "--json"], { CAPSA_PASSPHRASE: pass })).stdout,
      )
        .slots as Array<{ slotId: string; label: string; current: boolean }>;
    assert.equal((await list("first passphrase")).length, 1);
    await f.ok(["key", "add", f.store, "--label", "recovery", "--kdf", KDF], {
      CAPSA_NEW_PASSPHRASE: "second passphrase",
    });
    const two = await list("second passphrase");
    assert.equal(two.length, 2);
    assert.equal(two.find((s) => s.current)!.label, "recovery");
    await f.ok(["key", "passwd", f.store, "--kdf", KDF], {
      CAPSA_PASSPHRASE: "first passphrase",
      CAPSA_NEW_PASSPHRASE: "third passphrase",
    });
    assert.equal((await f.run(["ls", f.store], { CAPSA_PASSPHRASE: "first passphrase" })).code, 6);
    const now = await list("third passphrase");
    assert.equal(now.length, 2);
    const recovery = now.find((s) => s.label === "recovery")!;
    await f.ok(["key", "remove", f.store, recovery.slotId], {
      CAPSA_PASSPHRASE: "third passphrase",
    });
    assert.equal((await f.run(["ls", f.store], { CAPSA_PASSPHRASE: "second passphrase" })).code, 6);
    const last = (await list("third passphrase"))[0]!;
    const before = await state(f.store);
    const refused = await f.run(["key", "remove", f.store, last.slotId], {
      CAPSA_PASSPHRASE: "third passphrase",
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /last_key_slot/);
    assert.equal(await state(f.store), before);
    const unknown = await f.run(["key", "remove", f.store, "0123456789abcdef"], {
      CAPSA_PASSPHRASE: "third passphrase",
    });
    assert.match(unknown.stderr, /not_found/);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("rebuild --kit after every descriptor replica and key slot is lost: kit + passphrase restore it", async () => {
  const f = await fixture();
  try {
    for (const p of ["store.json", "system.state/descriptor", "system.keys", "system.state/keys"]) {
      await Deno.remove(join(f.store, p), { recursive: true });
    }
    await Deno.remove(f.host, { recursive: true });
    // The kit alone opens nothing.
    const noPass = await capsa(["rebuild", f.store, "--kit", f.kit, "--host-dir", f.host]);
    assert.equal(noPass.code, 6, noPass.stderr);
    assert.match(noPass.stderr, /passphrase_required/);
    const wrong = await f.run(["rebuild", f.store, "--kit", f.kit], { CAPSA_PASSPHRASE: "nope" });
    assert.equal(wrong.code, 6, wrong.stderr);
    assert.ok(
      !(await filesUnder(f.store)).some((p) => p.endsWith("store.json")),
      "nothing written",
    );
    const rebuilt = await f.ok(["rebuild", f.store, "--kit", f.kit]);
    assert.match(rebuilt.stderr, /key_slots_restored/);
    const out = join(f.root, "out");
    await f.ok(["get", f.store, "private", "--to", out]);
    for (const name of NAMES) {
      assert.deepEqual(
        await Deno.readFile(join(out, name)),
        await Deno.readFile(join(f.src, name)),
      );
    }
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("capsa serve refuses to start with a wrong passphrase", async () => {
  const f = await fixture();
  try {
    const token = join(f.root, "token");
    await Deno.writeTextFile(token, "t".repeat(32), { mode: 0o600 });
    const r = await f.run(["serve", f.store, "--listen", "127.0.0.1:0", "--token-file", token], {
      CAPSA_PASSPHRASE: "nope",
    });
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /wrong_passphrase/);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("every command works on an encrypted store: stat, rm, gc, migrate, move, serve", async () => {
  const f = await fixture();
  try {
    const stat = JSON.parse(
      (await f.ok(["stat", f.store, "private", "payroll.csv", "--json"])).stdout,
    );
    assert.equal(stat.size, (await Deno.stat(join(f.src, "payroll.csv"))).size);
    await f.ok(["rm", f.store, "private", "tax-return-2025.pdf"]);
    await f.ok(["put", f.store, "private", "payroll.csv", join(f.src, "tax-return-2025.pdf")]);
    await f.ok(["gc", f.store, "--keep-versions", "1", "--grace", "0s"]);
    const verify = JSON.parse((await f.ok(["verify", f.store, "--data", "--json"])).stdout);
    assert.deepEqual(verify.problems, []);
    await f.ok(["migrate", f.store, "--manifest-storage", "replicated"]);
    const moved = join(f.root, "moved");
    await f.ok(["move", f.store, moved]);
    // Moved with its keys unchanged: the same passphrase opens it at the new Location.
    const got = await f.ok(["get", moved, "private", "payroll.csv"]);
    assert.deepEqual(got.bytes, await Deno.readFile(join(f.src, "tax-return-2025.pdf")));
    assert.equal((await f.run(["ls", moved, "private"], { CAPSA_PASSPHRASE: "nope" })).code, 6);

    // capsa serve, the passphrase given at start: an object over HTTP.
    const token = join(f.root, "token");
    await Deno.writeTextFile(token, "t".repeat(32), { mode: 0o600 });
    await Deno.chmod(token, 0o600);
    const child = denoRun([
      CLI,
      "serve",
      moved,
      "--listen",
      "127.0.0.1:0",
      "--token-file",
      token,
      "--json",
      "--host-dir",
      join(f.root, "serve-host"),
    ], { env: f.env }).spawn();
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/\}\s*$/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`capsa serve did not start: ${text} ${await stderr}`);
      text += value;
    }
    const { url } = JSON.parse(text) as { url: string };
    const res = await fetch(`${url}/v1/objects/private/medical/letter-from-dr-okafor.txt`, {
      headers: { Authorization: `Bearer ${"t".repeat(32)}` },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(
      new Uint8Array(await res.arrayBuffer()),
      await Deno.readFile(join(f.src, "medical/letter-from-dr-okafor.txt")),
    );
    child.kill("SIGINT");
    await reader.cancel().catch(() => {});
    assert.equal((await child.status).code, 0, await stderr);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});
