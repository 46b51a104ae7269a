import assert from "node:assert/strict";
import { PassphraseRequiredError, WrongPassphraseError } from "../format/crypto.ts";
import { CapsaError, type ErrorCode, StoreCorruptedError } from "../errors.ts";
import { LeaseHeldError } from "../store/lease.ts";
import { RecoveryKitRequiredError } from "../maintenance/mod.ts";
import {
  describeError,
  EXIT,
  exitCodeOf,
  formatBytes,
  formatDuration,
  UsageError,
} from "./_output.ts";

Deno.test("exitCodeOf() maps usage to 2, lease_held to 4, corruption to 5, passphrases to 6, anything else to 1", () => {
  assert.equal(exitCodeOf(new UsageError("x")), EXIT.usage);
  assert.equal(exitCodeOf(new LeaseHeldError("Verify on h (pid 1)", 0)), EXIT.leaseHeld);
  assert.equal(exitCodeOf(new StoreCorruptedError(["store.json: missing"])), EXIT.corrupted);
  assert.equal(exitCodeOf(new RecoveryKitRequiredError()), EXIT.corrupted);
  assert.equal(exitCodeOf(new CapsaError("not_found", "gone")), EXIT.failed);
  assert.equal(exitCodeOf(new TypeError("bug")), EXIT.failed);
  assert.equal(exitCodeOf(new WrongPassphraseError(1)), EXIT.passphrase);
  assert.equal(exitCodeOf(new PassphraseRequiredError()), EXIT.passphrase);
  assert.deepEqual(Object.values(EXIT), [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("describeError() gives one line with a stable code for every kind of error", () => {
  assert.deepEqual(describeError(new CapsaError("x_y" as ErrorCode, "line one\n  line two")), {
    code: "x_y",
    message: "line one line two",
  });
  assert.equal(
    describeError(new Deno.errors.NotCapable("Requires read access")).code,
    "permission_denied",
  );
  assert.equal(describeError(new Deno.errors.PermissionDenied("EACCES")).code, "permission_denied");
  assert.equal(describeError(new Deno.errors.NotFound("nope")).code, "not_found");
  assert.equal(describeError(new Deno.errors.IsADirectory("dir")).code, "is_a_directory");
  assert.equal(describeError(new Deno.errors.AddrInUse("busy")).code, "addr_in_use");
  assert.equal(describeError(new Deno.errors.NotADirectory("x")).code, "not_a_directory");
  const internal = describeError(new RangeError("bad"));
  assert.equal(internal.code, "internal");
  assert.match(internal.message, /^bad \(an unexpected error/);
  assert.equal(describeError("a string").code, "internal");
});

Deno.test("formatBytes() and formatDuration() read naturally", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.0 GiB");
  assert.equal(formatDuration(850), "850 ms");
  assert.equal(formatDuration(12_400), "12.4 s");
  assert.equal(formatDuration(185_000), "3 min 5 s");
  assert.equal(formatDuration(7_440_000), "2 h 4 min");
});
