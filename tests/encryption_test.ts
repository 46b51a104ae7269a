/**
 * Encryption end to end (docs/FORMAT.md §9): what an encrypted store puts on
 * the Location and the host never shows a file's bytes or names; every file
 * comes back with the passphrase; wrong or missing passphrases and tampered
 * sealed bytes are typed errors that change nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CorruptObjectError } from "../errors.ts";
import { openLocalFs } from "../drivers/localfs/mod.ts";
import { initStore, openStore } from "../mod.ts";

const KDF = { memoryKiB: 1024, iterations: 1, parallelism: 1 };
const MARKER = "ZEBRA-MARKER-91c3";
const NAME = "quarterly-secret-report";

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await walk(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

function encodings(text: string): Uint8Array[] {
  const utf8 = new TextEncoder().encode(text);
  const utf16 = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) utf16[i * 2] = text.charCodeAt(i);
  return [utf8, utf16, new TextEncoder().encode(btoa(text).slice(0, 12))];
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("an encrypted store shows no file content or name on the Location or the host", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const host = await openLocalFs(join(root, "host"), { create: true });
    const { store, recoveryKit } = await initStore(driver, {
      hostStorage: host,
      encryption: { passphrase: "correct horse", kdf: KDF },
    });
    const bodies = new Map<string, Uint8Array>();
    const text = (MARKER + " lorem ipsum dolor sit amet ").repeat(4000);
    for (let i = 0; i < 20; i++) {
      const body = new TextEncoder().encode(i % 2 === 0 ? `${text}${i}` : `${MARKER} small ${i}`);
      bodies.set(`${NAME}/${i}.txt`, body);
      await store.put("docs", `${NAME}/${i}.txt`, body);
    }
    await store.snapshotIndex();
    await store.close();
    assert.ok(recoveryKit.includes("key-slot: "));

    const needles = [...encodings(MARKER), ...encodings(NAME)];
    const files = [...await walk(join(root, "store")), ...await walk(join(root, "host"))];
    assert.ok(files.some((f) => f.includes("/packs/")));
    assert.ok(files.some((f) => f.includes("snapshots")));
    assert.ok(files.some((f) => f.endsWith("index/cache")));
    for (const f of files) {
      const bytes = await Deno.readFile(f);
      for (const n of needles) assert.ok(!contains(bytes, n), `${f} holds a marker`);
    }

    const again = await openStore(driver, { hostStorage: host, passphrase: "correct horse" });
    assert.equal(again.state, "Ready");
    for (const [key, body] of bodies) assert.deepEqual(await again.get("docs", key), body);
    await again.close();
    const cold = await openStore(driver, { passphrase: "correct horse" });
    for (const [key, body] of bodies) assert.deepEqual(await cold.get("docs", key), body);
    await cold.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("wrong and missing passphrases are typed errors that change nothing", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const { store } = await initStore(driver, { encryption: { passphrase: "right", kdf: KDF } });
    await store.put("ns", "k", "v");
    await store.close();
    const before = await walk(join(root, "store"));
    await assert.rejects(
      openStore(driver, { passphrase: "wrong" }),
      (e: unknown) => (e as { code?: string }).code === "wrong_passphrase",
    );
    await assert.rejects(
      openStore(driver),
      (e: unknown) =>
        (e as { code?: string }).code === "passphrase_required" &&
        /CAPSA_PASSPHRASE/.test((e as Error).message) &&
        /--passphrase-file/.test((e as Error).message),
    );
    assert.deepEqual(await walk(join(root, "store")), before);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("one flipped byte in a sealed blob is a CorruptObjectError naming the pack", async () => {
  const root = await Deno.makeTempDir();
  try {
    const driver = await openLocalFs(join(root, "store"), { create: true });
    const { store } = await initStore(driver, {
      encryption: { passphrase: "p", kdf: KDF },
      config: { compression: "none" },
    });
    await store.put("ns", "k", new Uint8Array(5000).fill(7));
    await store.close();
    const pack = (await walk(join(root, "store"))).find((f) => f.includes("/packs/"))!;
    const bytes = await Deno.readFile(pack);
    bytes[100] = bytes[100]! ^ 1;
    await Deno.writeFile(pack, bytes);
    const again = await openStore(driver, { passphrase: "p" });
    await assert.rejects(
      again.get("ns", "k"),
      (e: unknown) =>
        e instanceof CorruptObjectError && e.key.startsWith("packs/") &&
        /authentication/.test(e.reason),
    );
    await again.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
