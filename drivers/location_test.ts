import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import { createLocationRegistry, LocationRegistry, parseLocation } from "./location.ts";
import { MemoryDriver } from "./memory.ts";

Deno.test("parseLocation() turns paths into file: URLs and keeps URLs", () => {
  assert.equal(parseLocation("/srv/store").href, "file:///srv/store");
  assert.equal(parseLocation("store", "/home/op").href, "file:///home/op/store");
  assert.equal(parseLocation("./a b", "/x/").pathname, "/x/a%20b");
  assert.equal(parseLocation("s3://bucket/prefix?region=eu").protocol, "s3:");
  assert.equal(parseLocation("memory:").protocol, "memory:");
  // A one-letter "scheme" is a Windows drive, never a URL scheme.
  assert.equal(parseLocation("C:/data", "/w").protocol, "file:");
  for (const bad of ["", "   ", "a\u0000b"]) {
    assert.throws(() => parseLocation(bad), InvalidArgumentError);
  }
});

Deno.test("LocationRegistry refuses a duplicate or malformed scheme and names the known ones", async () => {
  const r = new LocationRegistry();
  r.register("mem2", () => Promise.resolve(new MemoryDriver()));
  assert.throws(
    () => r.register("mem2", () => Promise.resolve(new MemoryDriver())),
    /already registered/,
  );
  assert.throws(
    () => r.register("Bad Scheme", () => Promise.resolve(new MemoryDriver())),
    InvalidArgumentError,
  );
  await assert.rejects(r.open("ftp://host/x"), /unknown Location scheme "ftp:" \(known: mem2:\)/);
  const d = await r.open("mem2://anything");
  assert.equal(d.kind, "memory");
  await d.close();
});

Deno.test("createLocationRegistry() opens memory:, shared memory:NAME, paths and file: URLs", async () => {
  const r = createLocationRegistry();
  assert.deepEqual(r.schemes(), ["file", "memory", "s3"]);
  const a = await r.open("memory:shared");
  const b = await r.open("memory:shared");
  await a.put("k", new Uint8Array([1]));
  assert.deepEqual(await b.get("k"), new Uint8Array([1]));
  const fresh = await r.open("memory:");
  await assert.rejects(fresh.get("k"));
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      r.open(`${dir}/missing`),
      "a missing directory is not created unless asked",
    );
    const byPath = await r.open(`${dir}/store`, { create: true, durable: false });
    await byPath.put("x/y", new Uint8Array([2]));
    const byUrl = await r.open(`file://${dir}/store`);
    assert.deepEqual(await byUrl.get("x/y"), new Uint8Array([2]));
    assert.equal(byUrl.kind, "localfs");
    await assert.rejects(r.open(`file://otherhost${dir}/store`), /must be local/);
    await assert.rejects(r.open(`file://${dir}/store?x=1`), /no query/);
    for (const d of [a, b, fresh, byPath, byUrl]) await d.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
