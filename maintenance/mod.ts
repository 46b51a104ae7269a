/**
 * One-shot maintenance agents, started only explicitly (CLI, API, HTTP),
 * never automatically. Each takes the maintenance lease in
 * `system.state/maintenance/lease` first, so at most one runs per store, on
 * any host.
 *
 * This is the TypeScript form of the seed package `maintenance` v0.3.0:
 *
 * | seed (Go) | capsa (TypeScript) |
 * | --- | --- |
 * | `core.MaintenanceAgent` (`Validate() error`, `Run(ctx) error`) | {@linkcode MaintenanceAgent} (`validate()`, `run({ signal })`) |
 * | `NewRebuildIndexAgent(store, bus, cfg) (RebuildIndexAgent, error)` | {@linkcode createRebuildIndexAgent}`(store, bus, config)` |
 * | `RebuildIndexAgent.Stats() RebuildStats` | `agent.stats()` |
 * | `RebuildConfig.Source` | `source` |
 * | `RebuildConfig.RecoveryKit []byte` | `recoveryKit: Uint8Array` |
 * | `RebuildConfig.HostStorage curator.TransitStore` | `hostStorage: Driver` (a host directory driver) |
 * | `RebuildConfig.BatchSize` (default 1000) | `batchSize` (default 1000) |
 * | `RebuildConfig.Parallelism` (default 8) | `parallelism` (default 8) |
 * | `RebuildConfig.LeaseTTL time.Duration` (default 30m) | `leaseTTL` in ms (default 1,800,000) |
 * | `RebuildSourceAuto` / `RebuildSourceSnapshot` / `RebuildSourceFullScan` | `"Auto"` / `"Snapshot"` / `"FullScan"` |
 * | `RebuildStats.Source`, `SnapshotUsed`, `ManifestsScanned`, `ManifestsIndexed`, `ManifestsSkipped`, `BlobsRegistered`, `PacksIndexed`, `PointerRecovered`, `DescriptorRewrote` | `source`, `snapshotUsed`, `manifestsScanned`, `manifestsIndexed`, `manifestsSkipped`, `blobsRegistered`, `packsIndexed`, `pointerRecovered`, `descriptorRewrote` |
 * | `RebuildStats.Duration time.Duration` | `duration` in ms |
 * | `ErrHostStorageRequired` | {@linkcode HostStorageRequiredError} |
 * | `ErrNoSnapshot` | {@linkcode NoSnapshotError} |
 * | `ctx` cancellation | `AbortSignal` |
 * | `VerificationAgent` (reserved in the seed; specified by capsa's design) | {@linkcode createVerificationAgent}`(store, bus, config)`: `VerifyConfig` (`data`, `subset`, `parallelism`, `leaseTTL`, `force`), `stats()`, `problems()` |
 * | `MigrateIndexAgent` (reserved in the seed; specified by capsa's design) | {@linkcode createMigrateIndexAgent}`(store, bus, config)`: `MigrateConfig` (`manifestStorage`, `hostStorage`, `leaseTTL`, `force`), `stats()`, `problems()` |
 * | `MoveStoreAgent` (reserved in the seed; specified by capsa's design) | {@linkcode createMoveStoreAgent}`(store, bus, config)`: `MoveConfig` (`destination`, `destinationLocation`, `parallelism`, `leaseTTL`, `force`, `deleteSource`), `stats()`, `problems()` |
 *
 * Additions of capsa, not in the seed: `RebuildConfig.force` (break a live
 * lease, loudly), {@linkcode RecoveryKitRequiredError} and
 * {@linkcode RecoveryKitMismatchError}, `agent.problems()` (each unparsable
 * object with its key), and `LeaseHeldError` / `LeaseLostError` from the
 * lease.
 *
 * @example Rebuild a store's index after its host cache was lost
 * ```ts
 * import { initStore, openStore, MemoryDriver, EventBus } from "../mod.ts";
 * import { createRebuildIndexAgent } from "./mod.ts";
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
export { LeaseHeldError, LeaseLostError } from "../store/lease.ts";
