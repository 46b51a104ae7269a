import assert from "node:assert/strict";
import { InvalidArgumentError } from "../errors.ts";
import {
  isUlid,
  MAX_ULID_TIME,
  ulid,
  ULID_LENGTH,
  ulidFloor,
  UlidGenerator,
  ulidTime,
} from "./ulid.ts";

Deno.test("ulidTime() reads the time of the ULID specification's example", () => {
  assert.equal(ulidTime("01arz3ndektsv4rrffq69g5fav"), 1469922850259);
  assert.equal(ulidTime("00000000000000000000000000"), 0);
  assert.equal(ulidTime("7zzzzzzzzzzzzzzzzzzzzzzzzz"), MAX_ULID_TIME);
});

Deno.test("UlidGenerator.next() encodes the clock's time and the random bytes", () => {
  const gen = new UlidGenerator({
    clock: () => 1469922850259,
    random: (b) => b.fill(0xff),
  });
  assert.equal(gen.next(), "01arz3ndekzzzzzzzzzzzzzzzz");
  const zeros = new UlidGenerator({ clock: () => 0, random: (b) => b.fill(0) });
  assert.equal(zeros.next(), "00000000000000000000000000");
  assert.equal(zeros.next(), "00000000000000000000000001");
  const pattern = new UlidGenerator({
    clock: () => 1,
    random: (b) => b.set([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x21]),
  });
  // 0x80 00.. 21 = 10000 00000 … 00001 00001 in 5-bit groups.
  assert.equal(pattern.next(), "0000000001g000000000000011");
});

Deno.test("UlidGenerator.next() is strictly increasing within a millisecond and when the clock steps back", () => {
  let now = 1_700_000_000_000;
  const gen = new UlidGenerator({ clock: () => now });
  const ids: string[] = [];
  for (let i = 0; i < 1000; i++) {
    if (i === 500) now -= 60_000;
    if (i === 800) now += 120_000;
    ids.push(gen.next());
  }
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `id ${i}`);
  assert.equal(ulidTime(ids[499]!), 1_700_000_000_000);
  assert.equal(ulidTime(ids[799]!), 1_700_000_000_000); // kept while the clock was behind
  assert.equal(ulidTime(ids[800]!), 1_700_000_060_000);
});

Deno.test("UlidGenerator.next() carries the increment across bytes and past an exhausted millisecond", () => {
  const gen = new UlidGenerator({
    clock: () => 1000,
    random: (b) => {
      b.fill(0xff);
      b[0] = 0x7f;
    },
  });
  const a = gen.next();
  const b = gen.next(); // 7f ff … ff + 1 = 80 00 … 00
  assert.ok(a < b);
  assert.equal(b.slice(10), "g000000000000000");
  const full = new UlidGenerator({ clock: () => 1000, random: (x) => x.fill(0xff) });
  const c = full.next();
  const d = full.next(); // the random part wraps: the next millisecond is used
  assert.ok(c < d);
  assert.equal(ulidTime(d), 1001);
});

Deno.test("UlidGenerator.next() refuses a clock a ULID cannot hold", () => {
  for (const t of [-1, 1.5, Number.NaN, MAX_ULID_TIME + 1]) {
    assert.throws(() => new UlidGenerator({ clock: () => t }).next(), InvalidArgumentError);
  }
});

Deno.test("ulid() makes canonical, increasing ids near the current time", () => {
  let prev = "";
  for (let i = 0; i < 2000; i++) {
    const id = ulid();
    assert.equal(id.length, ULID_LENGTH);
    assert.ok(isUlid(id));
    assert.ok(prev < id);
    prev = id;
  }
  assert.ok(Math.abs(ulidTime(prev) - Date.now()) < 5000);
});

Deno.test("isUlid() accepts only canonical lower-case ULIDs", () => {
  assert.equal(isUlid("01arz3ndektsv4rrffq69g5fav"), true);
  assert.equal(isUlid("01ARZ3NDEKTSV4RRFFQ69G5FAV"), false); // one spelling per id
  assert.equal(isUlid("01arz3ndektsv4rrffq69g5faV"), false);
  assert.equal(isUlid("01arz3ndektsv4rrffq69g5fa"), false);
  assert.equal(isUlid("01arz3ndektsv4rrffq69g5favx"), false);
  assert.equal(isUlid("81arz3ndektsv4rrffq69g5fav"), false); // beyond 48 bits
  for (const bad of ["i", "l", "o", "u", "-"]) {
    assert.equal(isUlid("01arz3ndektsv4rrffq69g5fa" + bad), false, bad);
  }
  assert.equal(isUlid(undefined), false);
  assert.throws(() => ulidTime("nope"), InvalidArgumentError);
  assert.throws(() => ulidTime("01ARZ3NDEKTSV4RRFFQ69G5FAV"), InvalidArgumentError);
});

Deno.test("ulidFloor() sorts at or before every ULID of its millisecond and after earlier ones", () => {
  const t = 1_700_000_000_000;
  const floor = ulidFloor(t);
  assert.ok(isUlid(floor));
  assert.equal(ulidTime(floor), t);
  const gen = new UlidGenerator({ clock: () => t, random: (b) => b.fill(0) });
  assert.ok(floor <= gen.next());
  const earlier = new UlidGenerator({ clock: () => t - 1, random: (b) => b.fill(0xff) }).next();
  assert.ok(earlier < floor);
  assert.equal(ulidFloor(-5), "00000000000000000000000000");
});
