import assert from "node:assert/strict";
import { CorruptObjectError, UnsupportedFormatVersionError } from "../errors.ts";
import { canonicalChecksum, canonicalJson } from "./fields.ts";
import { decodeGcEpoch, decodeGcRun, encodeGcEpoch, encodeGcRun, type GcRun } from "./gc.ts";

const KEY = "system.state/gc/runs/01arz3ndektsv4rrffq69g5fav";
const STORE = "0123456789abcdef0123456789abcdef";
const run: GcRun = {
  storeId: STORE,
  runId: "01arz3ndektsv4rrffq69g5fav",
  startedAt: 1_700_000_000_000,
  notBefore: 1_700_000_900_000,
  packs: ["01arz3ndektsv4rrffq69g5fa1", "01arz3ndektsv4rrffq69g5fa0"],
  looseBlobs: ["ab".repeat(32)],
  written: ["01arz3ndektsv4rrffq69g5fb0"],
};
const enc = new TextEncoder();
const dec = new TextDecoder();

function reseal(edit: (v: Record<string, unknown>) => void): Uint8Array {
  const v = JSON.parse(dec.decode(encodeGcRun(run)));
  delete v.checksum;
  edit(v);
  return enc.encode(canonicalJson({ ...v, checksum: canonicalChecksum(v) }));
}

Deno.test("encodeGcRun() sorts the ids; decodeGcRun() reads them back and checks the store", () => {
  const back = decodeGcRun(KEY, encodeGcRun(run), STORE);
  assert.deepEqual(back.packs, [...run.packs].sort());
  assert.throws(() => decodeGcRun(KEY, encodeGcRun(run), "f".repeat(32)), /belongs to store/);
});

Deno.test("decodeGcRun() refuses every damaged or foreign record with a typed error naming it", () => {
  const good = encodeGcRun(run);
  const cases: Array<[Uint8Array, RegExp]> = [
    [good.subarray(0, good.length - 10), /not JSON/],
    [good.map((b, i) => (i === 40 ? b ^ 1 : b)), /./],
    [enc.encode("[]"), /not a JSON object/],
    [
      reseal((v) => (v.packs = ["01arz3ndektsv4rrffq69g5fa1", "01arz3ndektsv4rrffq69g5fa0"])),
      /strictly ascending/,
    ],
    [reseal((v) => (v.looseBlobs = ["xyz"])), /"looseBlobs"\[0\]/],
    [reseal((v) => (v.notBefore = -1)), /"notBefore" must be a non-negative integer/],
    [reseal((v) => (v.runId = "nope")), /"runId" must be a ULID/],
    [reseal((v) => (v.written = ["01arz3ndektsv4rrffq69g5fa0"])), /both written and deleted/],
    [reseal((v) => (v.format = "capsa-other")), /not a capsa gc run record/],
  ];
  for (const [bytes, reason] of cases) {
    assert.throws(
      () => decodeGcRun(KEY, bytes),
      (e: unknown) => e instanceof CorruptObjectError && e.key === KEY && reason.test(e.message),
      String(reason),
    );
  }
  assert.throws(
    () => decodeGcRun(KEY, reseal((v) => (v.formatVersion = 2))),
    UnsupportedFormatVersionError,
  );
});

Deno.test("decodeGcEpoch() round-trips and refuses damage", () => {
  const epoch = { storeId: STORE, runId: run.runId, notBefore: 5 };
  const bytes = encodeGcEpoch(epoch);
  assert.deepEqual(decodeGcEpoch("system.state/gc/epoch", bytes), epoch);
  assert.throws(
    () => decodeGcEpoch("system.state/gc/epoch", bytes.map((b, i) => (i === 30 ? b ^ 4 : b))),
    CorruptObjectError,
  );
  assert.throws(() => decodeGcEpoch("system.state/gc/epoch", new Uint8Array(5000)), /bound/);
});
