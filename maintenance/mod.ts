/**
 * One-shot maintenance agents, started only explicitly (CLI, API, HTTP),
 * never automatically. Each takes the maintenance lease in
 * `system.state/maintenance/lease` first, so at most one runs per store, on
 * any host, and sets the maintenance mode that tells other handles what they
 * may still do (`offline` or `read-only`).
 *
 * Every agent has the same shape ({@linkcode MaintenanceAgent}): created by
 * `createXAgent(store, bus, config)` (every config field has a default),
 * checked by `validate()` without touching the Location, run once by
 * `run({ signal })`, observed through `stats()` (a copy, live while running),
 * `problems()` (each naming its object) and the `maintenance.started`,
 * `maintenance.progress`, `maintenance.completed` / `maintenance.failed`
 * events on the bus.
 *
 * | agent | factory | config | mode |
 * | --- | --- | --- | --- |
 * | RebuildIndex | {@linkcode createRebuildIndexAgent} | {@linkcode RebuildConfig}: `source`, `recoveryKit`, `hostStorage`, `batchSize`, `parallelism`, `leaseTTL`, `force` | offline |
 * | Verify | {@linkcode createVerificationAgent} | {@linkcode VerifyConfig}: `data`, `subset`, `parallelism`, `leaseTTL`, `force` | read-only |
 * | MigrateIndex | {@linkcode createMigrateIndexAgent} | {@linkcode MigrateConfig}: `manifestStorage`, `hostStorage`, `leaseTTL`, `force` | offline |
 * | MoveStore | {@linkcode createMoveStoreAgent} | {@linkcode MoveConfig}: `destination`, `destinationLocation`, `parallelism`, `leaseTTL`, `force`, `deleteSource` | read-only |
 *
 * Durations (`leaseTTL`) are in milliseconds; cancellation is an
 * `AbortSignal` (the agent stops cleanly: lease released, the store as it
 * was). The CLI and the HTTP endpoint read the same options from flags and
 * JSON bodies through one parser (`maintenance/options.ts`). Errors a caller
 * may catch: {@linkcode HostStorageRequiredError},
 * {@linkcode RecoveryKitRequiredError}, {@linkcode RecoveryKitMismatchError},
 * {@linkcode NoSnapshotError}, the move's {@linkcode DestinationHoldsStoreError},
 * {@linkcode DestinationNotEmptyError} and {@linkcode CopyMismatchError}, and
 * the lease's {@linkcode LeaseHeldError} / {@linkcode LeaseLostError}.
 *
 * @example Rebuild a store's index after its host cache was lost
 * ```ts
 * import { initStore, openStore, MemoryDriver, EventBus } from "@capsa/capsa";
 * import { createRebuildIndexAgent } from "@capsa/capsa/maintenance";
 *
 * const driver = new MemoryDriver();
 * const { store } = await initStore(driver);
 * await store.put("ns", "k", new TextEncoder().encode("v"));
 * const bus = new EventBus();
 * const agent = createRebuildIndexAgent(store, bus, { source: "Auto", parallelism: 16 });
 * agent.validate();
 * await agent.run({ signal: AbortSignal.timeout(60_000) });
 * console.log(agent.stats());
 * await store.close();
 * ```
 *
 * @module
 */

export {
  type ExclusiveOptions,
  HostStorageRequiredError,
  type MaintenanceAgent,
  type MaintenanceContext,
  NoSnapshotError,
  RecoveryKitMismatchError,
  RecoveryKitRequiredError,
  runExclusive,
  type RunOptions,
} from "./agent.ts";
export {
  createRebuildIndexAgent,
  REBUILD_DEFAULTS,
  type RebuildConfig,
  type RebuildIndexAgent,
  type RebuildSource,
  type RebuildStats,
} from "./rebuild_index.ts";
export {
  createVerificationAgent,
  inVerifySubset,
  type VerificationAgent,
  VERIFY_DEFAULTS,
  type VerifyConfig,
  type VerifyProblem,
  type VerifyProblemKind,
  type VerifyStats,
  type VerifySubset,
} from "./verify.ts";
export {
  CopyMismatchError,
  createMoveStoreAgent,
  DestinationHoldsStoreError,
  DestinationNotEmptyError,
  MOVE_DEFAULTS,
  type MoveConfig,
  type MoveProblem,
  type MoveProblemKind,
  type MoveStats,
  type MoveStoreAgent,
} from "./move_store.ts";
export {
  createMigrateIndexAgent,
  MIGRATE_DEFAULTS,
  type MigrateConfig,
  type MigrateIndexAgent,
  type MigrateProblem,
  type MigrateStats,
} from "./migrate_index.ts";
export {
  createGarbageCollectAgent,
  type GarbageCollectAgent,
  GC_DEFAULTS,
  type GcConfig,
  type GcPlan,
  type GcProblem,
  type GcStats,
  retainedVersions,
  type RetentionPolicy,
  type RetentionVersion,
} from "./gc.ts";
export { LeaseHeldError, LeaseLostError } from "../store/lease.ts";
