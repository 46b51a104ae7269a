/**
 * The Recovery Kit: a small, human-readable, versioned text given to the
 * operator at `init`, from which a store's descriptor (`store.json` and its
 * replicas) can be rewritten if every copy is lost. Keep it offline, like a
 * restic password or a kopia repository config.
 *
 * - {@linkcode encodeRecoveryKit} writes it from the descriptor.
 * - {@linkcode parseRecoveryKit} reads it back, strictly: every problem is a
 *   {@linkcode RecoveryKitInvalidError} whose `reason` says which.
 * - {@linkcode descriptorFromKit} turns it into the descriptor to write.
 *
 * The kit's `checksum` line is the descriptor's own checksum (the `checksum`
 * field of `store.json`), so an operator can check a kit against a store by
 * eye, and a kit with a mistyped field is refused rather than written back.
 * Comments and blank lines may be added before the checksum line, and a kit
 * saved with CRLF line endings (or a BOM) by a Windows editor still parses.
 *
 * @example From init to rebuild
 * ```ts
 * import { descriptorFromKit, encodeRecoveryKit, parseRecoveryKit } from "./mod.ts";
 * import { createDescriptor } from "../core/descriptor.ts";
 *
 * const descriptor = createDescriptor();
 * const kit = encodeRecoveryKit(descriptor, { location: "s3://backups/capsa" });
 * // … every replica of store.json is lost; the operator brings the kit back …
 * const restored = descriptorFromKit(parseRecoveryKit(kit));
 * console.log(restored.storeId === descriptor.storeId); // true
 * ```
 *
 * @module
 */

export {
  descriptorFromKit,
  encodeRecoveryKit,
  type EncodeRecoveryKitOptions,
  MAX_KIT_LOCATION_LENGTH,
  MAX_RECOVERY_KIT_BYTES,
  parseRecoveryKit,
  RECOVERY_KIT_VERSION,
  type RecoveryKit,
  RecoveryKitInvalidError,
  type RecoveryKitInvalidErrorOptions,
  type RecoveryKitProblem,
} from "./kit.ts";

// Re-exported so that this module's API is complete on its own.
export type { Descriptor, EncryptionParams, KdfParams } from "../core/descriptor.ts";
export type { ChunkingParams } from "../core/chunker.ts";
export type { HashAlgorithm } from "../core/hashing.ts";
export { CapsaError, type CapsaErrorOptions } from "../core/errors.ts";
