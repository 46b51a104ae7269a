/**
 * capsa: a deduplicating, content-addressed object store for Deno.
 *
 * Data lives in a Location (a local directory, an S3 bucket, or memory)
 * behind a {@linkcode Driver}; a SQLite index answers every lookup and can be
 * rebuilt from the Location at any time. Maintenance agents live in
 * `@capsa/capsa/maintenance`, drivers other than memory in
 * `@capsa/capsa/drivers/*`, the Recovery Kit in `@capsa/capsa/kit` and the
 * HTTP endpoint in `@capsa/capsa/http`, so a user of one part never loads
 * another's dependencies.
 *
 * @example Create a store, write and read an artifact
 * ```ts
 * import { initStore, MemoryDriver } from "@capsa/capsa";
 *
 * const { store, recoveryKit } = await initStore(new MemoryDriver());
 * // Give recoveryKit to the operator: it can rewrite a lost descriptor.
 * await store.put("docs", "readme.txt", new TextEncoder().encode("hello"));
 * const bytes = await store.get("docs", "readme.txt");
 * console.log(new TextDecoder().decode(bytes)); // "hello"
 * await store.close();
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export {
  compareKeys,
  type Driver,
  type DriverCapabilities,
  type ListOptions,
  MAX_KEY_BYTES,
  type ObjectInfo,
  type PutOptions as DriverPutOptions,
  validateKey,
  validateListArgs,
  validatePrefix,
  validateRange,
} from "./drivers/driver.ts";
export { MemoryDriver, type MemoryDriverOptions } from "./drivers/memory.ts";
export {
  retry,
  type RetryCall,
  type RetryEvent,
  RetryingDriver,
  type RetryOptions,
  type RetryPolicy,
} from "./drivers/retrying.ts";
export {
  createLocationRegistry,
  type LocationOpener,
  LocationRegistry,
  type OpenLocationOptions,
  parseLocation,
} from "./drivers/location.ts";
export {
  type ArtifactInfo,
  type ArtifactPage,
  type BatchItem,
  type BatchOptions,
  type BatchResult,
  type BatchSummary,
  type Body,
  type EncryptionOptions,
  type GetOptions,
  type IndexSource,
  initStore,
  type InitStoreOptions,
  type InitStoreResult,
  type KeySlotInfo,
  type ListArtifactsOptions,
  type MaintenanceMode,
  openStore,
  type OpenStoreOptions,
  type PutOptions,
  Store,
  type StoreOptions,
  type StoreStatus,
  WriteBatch,
} from "./store/store.ts";
export * from "./store/events.ts";
export {
  type Compression,
  type ConfigSettings,
  defaultConfig,
  type ManifestStorage,
  type RetentionConfig,
  type RetentionSettings,
  type StoreConfig,
} from "./format/config.ts";
export type { Descriptor, EncryptionParams } from "./format/descriptor.ts";
export {
  type KdfCost,
  type KdfParams,
  type KeySlot,
  PassphraseRequiredError,
  WrongPassphraseError,
} from "./format/crypto.ts";
export type { Hasher } from "./format/hashing.ts";
export type { ChunkingParams } from "./format/chunker.ts";
export type { HashAlgorithm } from "./format/hashing.ts";
export {
  acquireLease,
  Lease,
  LeaseHeldError,
  LeaseLostError,
  type LeaseOptions,
  type LeaseRecord,
  readLease,
} from "./store/lease.ts";
export {
  type BlobRecord,
  type IndexCounts,
  type IndexedPack,
  type IndexListOptions,
  type ManifestRecord,
  type PackRecord,
  StoreIndex,
} from "./index/store_index.ts";
export type { Manifest } from "./format/manifest.ts";
export type { BlobKind } from "./format/pack.ts";
