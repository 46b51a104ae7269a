/**
 * The public API: every runtime name documented for `mod.ts` and each subpath
 * of `deno.json` "exports" (README.md "As a library", docs/DESIGN.md §9). A
 * move inside the tree must not change it; a deliberate change updates this
 * list in the same commit. Types are checked by `deno check` and
 * `deno doc --lint`; this test checks the names a user imports at run time.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

const PUBLIC_API: Record<string, readonly string[]> = {
  ".": [
    "ArtifactNotFoundError",
    "CapsaError",
    "ClosedError",
    "CorruptObjectError",
    "ERROR_CODES",
    "EXIT_CODES",
    "EventBus",
    "HostStorageRequiredError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LocationRegistry",
    "MAX_KEY_BYTES",
    "MaintenanceModeError",
    "MemoryDriver",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "ReadOnlyStoreError",
    "RetryingDriver",
    "Store",
    "StoreCorruptedError",
    "StoreIndex",
    "StoreMovedError",
    "TransientError",
    "UnsupportedFormatVersionError",
    "acquireLease",
    "compareKeys",
    "createLocationRegistry",
    "defaultConfig",
    "initStore",
    "isErrorCode",
    "openStore",
    "parseLocation",
    "PassphraseRequiredError",
    "readLease",
    "retry",
    "validateKey",
    "validateListArgs",
    "validatePrefix",
    "validateRange",
    "WriteBatch",
    "WrongPassphraseError",
  ],
  "./drivers/localfs": [
    "CapsaError",
    "canonicalLocation",
    "defaultCacheRoot",
    "defaultHostDir",
    "LocalFsDriver",
    "LocalFsError",
    "localFsPath",
    "openHostStorage",
    "openLocalFs",
  ],
  "./drivers/s3": [
    "RetryingDriver",
    "S3Driver",
    "openS3",
    "parseS3Url",
  ],
  "./drivers/faulty": [
    "ALL_METHODS",
    "FaultyDriver",
    "READ_METHODS",
    "WRITE_METHODS",
  ],
  "./drivers/conformance": [
    "AWKWARD_KEYS",
    "CONFORMANCE_CASES",
    "HOSTILE_KEYS",
    "testDriverConformance",
  ],
  "./maintenance": [
    "CopyMismatchError",
    "DestinationHoldsStoreError",
    "DestinationNotEmptyError",
    "GC_DEFAULTS",
    "HostStorageRequiredError",
    "LeaseHeldError",
    "LeaseLostError",
    "MIGRATE_DEFAULTS",
    "MOVE_DEFAULTS",
    "NoSnapshotError",
    "REBUILD_DEFAULTS",
    "RecoveryKitMismatchError",
    "RecoveryKitRequiredError",
    "VERIFY_DEFAULTS",
    "createGarbageCollectAgent",
    "createMigrateIndexAgent",
    "createMoveStoreAgent",
    "createRebuildIndexAgent",
    "createVerificationAgent",
    "inVerifySubset",
    "retainedVersions",
    "runExclusive",
  ],
  "./kit": [
    "CapsaError",
    "MAX_KIT_LOCATION_LENGTH",
    "MAX_RECOVERY_KIT_BYTES",
    "RECOVERY_KIT_VERSION",
    "RecoveryKitInvalidError",
    "descriptorFromKit",
    "encodeRecoveryKit",
    "parseRecoveryKit",
  ],
  "./http": [
    "DEFAULT_JOB_KINDS",
    "ERROR_STATUS",
    "HttpError",
    "JobRegistry",
    "MAINTENANCE_RETRY_AFTER_SECONDS",
    "TRANSIENT_RETRY_AFTER_SECONDS",
    "createApp",
    "isLoopback",
    "rebuildJob",
    "serve",
    "statusOf",
    "toHttpError",
  ],
};

Deno.test("deno.json exports exactly the documented subpaths", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.deepEqual(Object.keys(config.exports).sort(), Object.keys(PUBLIC_API).sort());
});

for (const [subpath, names] of Object.entries(PUBLIC_API)) {
  Deno.test(`"${subpath}" exports every documented name, and nothing else`, async () => {
    const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
    const mod = await import(new URL(config.exports[subpath], ROOT).href);
    for (const name of names) assert.notEqual(mod[name], undefined, `${subpath}: ${name}`);
    assert.deepEqual(Object.keys(mod).sort(), [...names].sort());
  });
}
