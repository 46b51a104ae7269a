/**
 * The GarbageCollectAgent (`capsa gc`): applies a retention policy, reclaims
 * the space of what nothing live references, and merges small packs, while
 * other processes keep reading and writing (docs/DESIGN.md §8, the rules in
 * docs/FORMAT.md §8).
 *
 * 1. **Mark**, after a catch-up: every artifact's versions under the policy
 *    ({@linkcode retainedVersions}); the kept manifests and the blobs they name.
 * 2. **Plan**: packs to rewrite (live fraction below `1 − maxUnused`, or
 *    smaller than a quarter of the target size when at least two such can be
 *    merged; any pack holding a version the policy drops), packs and loose
 *    blobs with nothing live (delete). A dry run
 *    stops here.
 * 3. **Rewrite**: the live blobs and kept manifests of the planned packs are
 *    copied (each blob checked against its id) into full packs whose TOC
 *    names the packs they **supersede**; each is indexed as it is written.
 * 4. **Publish**: a run record naming every pack and loose blob to delete and
 *    the time before which nothing is (`notBefore` = now + `grace`), then the
 *    epoch. Writers read the epoch before each commit, and indexes apply the
 *    run when they catch up.
 * 5. **Wait** out the grace period, **catch up** again, and **rescue** what
 *    manifests written meanwhile name: a blob only a doomed pack holds is
 *    copied into a new pack, a doomed loose blob is kept.
 * 6. **Delete** the doomed packs and loose blobs.
 *
 * A crash at any point leaves a store whose every index (and rebuild) gives
 * the same answers: copies are indexed as no-ops, superseded packs are
 * retired wherever they are read, and a run record exists before anything
 * is deleted.
 *
 * @module
 */

import { NotFoundError } from "../drivers/driver.ts";
import { CapsaError, CorruptObjectError, InvalidArgumentError } from "../errors.ts";
import { type RetentionConfig, writeConfigVersion } from "../format/config.ts";
import { encodeGcEpoch, encodeGcRun } from "../format/gc.ts";
import { compressionLevelOf } from "../format/config.ts";
import type { Manifest } from "../format/manifest.ts";
import {
  type BlobCompression,
  decodeStoredBlob,
  encodePack,
  type PackBlobInput,
  readPackToc,
} from "../format/pack.ts";
import { isUlid, ulidFloor, ulidTime } from "../format/ulid.ts";
import { readGcEpoch } from "../index/gc_runs.ts";
import type { BlobRecord, PackRecord, StoreIndex } from "../index/store_index.ts";
import {
  GC_EPOCH_KEY,
  gcRunKey,
  LOOSE_BLOB_PREFIX,
  looseBlobKey,
  PACK_PREFIX,
  packKey,
  parsePackKey,
} from "../layout.ts";
import { pool } from "../pool.ts";
import { EventBus } from "../store/events.ts";
import type { Store } from "../store/store.ts";
import { AgentBase, type MaintenanceContext, requireIntegers } from "./agent.ts";

/**
 * Which versions of an artifact garbage collection keeps. With no field set,
 * every version is kept. The current version of a live artifact is never
 * dropped.
 */
export interface RetentionPolicy {
  /** Keep the newest N versions holding data (tombstones do not count); at least 1. */
  keepVersions?: number;
  /** Keep every version younger than this many ms. */
  keepWithin?: number;
  /** An artifact whose current version is a deletion older than this (ms) loses its whole history. */
  dropDeletedAfter?: number;
}

/** The GarbageCollectAgent's configuration; every field has a default. */
export interface GcConfig extends RetentionPolicy {
  /** Per-namespace policies: each replaces the run's policy field by field. */
  namespaces?: Readonly<Record<string, RetentionPolicy>>;
  /** Plan only: report what would be done and freed, write and delete nothing. */
  dryRun?: boolean;
  /** A pack is rewritten when more than this fraction of it is unused (0–1; default 0.05). */
  maxUnused?: number;
  /** Merge packs smaller than a quarter of the target size (default true). */
  repackSmall?: boolean;
  /** How long (ms) doomed objects stay after the run is published (default 15 min). */
  grace?: number;
  /** Objects read or deleted at once (default 8). */
  parallelism?: number;
  /** Lease TTL in ms (default 30 min; renewed while the agent runs). */
  leaseTTL?: number | string;
  /** Break a live lease held by someone else. */
  force?: boolean;
  /**
   * Store this run's policy (its fields over the store's) in the config
   * history before collecting: later runs use it without being told
   * (not with `dryRun`).
   */
  savePolicy?: boolean;
}

/** The defaults of {@linkcode GcConfig}. */
export const GC_DEFAULTS: Readonly<{
  dryRun: boolean;
  maxUnused: number;
  repackSmall: boolean;
  grace: number;
  parallelism: number;
  leaseTTL: number;
  force: boolean;
  savePolicy: boolean;
}> = Object.freeze({
  dryRun: false,
  maxUnused: 0.05,
  repackSmall: true,
  grace: 15 * 60_000,
  parallelism: 8,
  leaseTTL: 30 * 60_000,
  force: false,
  savePolicy: false,
});

/** Statistics of a garbage collection; a progress snapshot while it runs. */
export interface GcStats {
  /** The phase: `mark`, `plan`, `rewrite`, `publish`, `grace`, `recheck`, `delete`, `done`. */
  phase: string;
  /** Whether this was a dry run. */
  dryRun: boolean;
  /** Packs whose TOC and live blobs were read. */
  packsRead: number;
  /** Packs written (superseding and rescue packs). */
  packsWritten: number;
  /** Packs deleted (or, in a dry run, that would be). */
  packsDeleted: number;
  /** Loose blobs deleted (or that would be). */
  looseBlobsDeleted: number;
  /** Blobs named by a kept manifest. */
  blobsKept: number;
  /** Blob copies dropped from rewritten or deleted packs, and loose blobs deleted. */
  blobsDropped: number;
  /** Blobs copied out of doomed packs because a manifest written during the run names them. */
  blobsRescued: number;
  /** Manifests kept. */
  manifestsKept: number;
  /** Manifests dropped by the retention policy. */
  manifestsDropped: number;
  /** Bytes of packs and loose blobs before. */
  bytesBefore: number;
  /** Bytes after (in a dry run: the estimate). */
  bytesAfter: number;
  /** `bytesBefore − bytesAfter`. */
  bytesFreed: number;
  /** Elapsed time in ms. */
  duration: number;
}

/** What a run plans to do (the dry run's answer). */
export interface GcPlan {
  /** Packs to rewrite into superseding packs. */
  rewrite: string[];
  /** Packs to delete: nothing in them is live. */
  delete: string[];
  /** Loose blobs to delete. */
  looseBlobs: string[];
  /** Manifests the policy drops. */
  manifestsDropped: number;
  /** Bytes the run would free (an estimate: TOC overheads aside). */
  bytesFreed: number;
}

/** One problem found (an object that could not be used, and was left alone). */
export interface GcProblem {
  /** The object. */
  key: string;
  /** What is wrong. */
  reason: string;
}

/** One version as the mark phase sees it. */
export interface RetentionVersion {
  /** When it was written (ms). */
  created: number;
  /** Whether it is a deletion. */
  deleted: boolean;
}

/**
 * Which of an artifact's versions a policy keeps.
 *
 * @param versions The versions, newest first (index 0 is the current one).
 * @param policy The policy.
 * @param now The time the policy is applied at (ms).
 * @returns One flag per version: `true` to keep it.
 *
 * @example Keep the newest two data versions
 * ```ts
 * import assert from "node:assert/strict";
 * import { retainedVersions } from "@capsa/capsa/maintenance";
 * const v = (created: number, deleted = false) => ({ created, deleted });
 * assert.deepEqual(
 *   retainedVersions([v(4), v(3), v(2, true), v(1)], { keepVersions: 2 }, 10),
 *   [true, true, false, false],
 * );
 * // An artifact deleted long ago loses everything; the current version of a live one never.
 * assert.deepEqual(retainedVersions([v(5, true), v(1)], { dropDeletedAfter: 3 }, 10), [false, false]);
 * assert.deepEqual(retainedVersions([v(5)], { keepVersions: 1, keepWithin: 1 }, 10), [true]);
 * ```
 */
export function retainedVersions(
  versions: readonly RetentionVersion[],
  policy: RetentionPolicy,
  now: number,
): boolean[] {
  const current = versions[0];
  if (current === undefined) return [];
  if (
    current.deleted && policy.dropDeletedAfter !== undefined &&
    now - current.created >= policy.dropDeletedAfter
  ) return versions.map(() => false);
  const limited = policy.keepVersions !== undefined || policy.keepWithin !== undefined;
  let data = 0;
  return versions.map((v, i) => {
    if (!v.deleted) data++;
    if (i === 0 || !limited) return true;
    const byCount = policy.keepVersions !== undefined && !v.deleted && data <= policy.keepVersions;
    const byAge = policy.keepWithin !== undefined && now - v.created < policy.keepWithin;
    return byCount || byAge;
  });
}

/** About what one manifest costs in a TOC (its JSON), for the plan's live fraction. */
const MANIFEST_BYTES_ESTIMATE = 320;

interface Mark {
  dropped: Set<string>;
  liveBlobs: Set<string>;
  perPack: Map<string, { live: number; dropped: number }>;
}

interface Batch {
  blobs: PackBlobInput[];
  manifests: Manifest[];
  supersedes: string[];
  bytes: number;
}

/** A dead blob's place in a doomed pack: where a rescue reads it from. */
interface DeadEntry {
  packId: string;
  kind: PackBlobInput["kind"];
  offset: number;
  storedLength: number;
  rawLength: number;
  compression: BlobCompression;
}

/** What a planned pack holds that is live. */
interface LiveContent {
  blobs: PackBlobInput[];
  manifests: Manifest[];
  droppedBlobs: number;
  /** The packs this one superseded (it was written by an earlier run). */
  supersedes: string[];
}

class GarbageCollectAgentImpl extends AgentBase<GcStats, GcProblem> {
  override readonly kind = "GarbageCollect";
  readonly #config: Required<Omit<GcConfig, keyof RetentionPolicy | "namespaces">> & {
    policy: RetentionPolicy;
    namespaces: Readonly<Record<string, RetentionPolicy>>;
  };
  #plan: GcPlan | undefined;
  #done = 0;
  #total = 0;

  constructor(store: Store, bus: EventBus, config: GcConfig) {
    const leaseTTL = config.leaseTTL ?? GC_DEFAULTS.leaseTTL;
    super(store, bus, { mode: "none", leaseTTL, force: config.force ?? GC_DEFAULTS.force }, {
      phase: "mark",
      dryRun: config.dryRun ?? GC_DEFAULTS.dryRun,
      packsRead: 0,
      packsWritten: 0,
      packsDeleted: 0,
      looseBlobsDeleted: 0,
      blobsKept: 0,
      blobsDropped: 0,
      blobsRescued: 0,
      manifestsKept: 0,
      manifestsDropped: 0,
      bytesBefore: 0,
      bytesAfter: 0,
      bytesFreed: 0,
      duration: 0,
    });
    const policy: RetentionPolicy = {};
    if (config.keepVersions !== undefined) policy.keepVersions = config.keepVersions;
    if (config.keepWithin !== undefined) policy.keepWithin = config.keepWithin;
    if (config.dropDeletedAfter !== undefined) policy.dropDeletedAfter = config.dropDeletedAfter;
    this.#config = {
      dryRun: config.dryRun ?? GC_DEFAULTS.dryRun,
      maxUnused: config.maxUnused ?? GC_DEFAULTS.maxUnused,
      repackSmall: config.repackSmall ?? GC_DEFAULTS.repackSmall,
      grace: config.grace ?? GC_DEFAULTS.grace,
      parallelism: config.parallelism ?? GC_DEFAULTS.parallelism,
      leaseTTL,
      force: config.force ?? GC_DEFAULTS.force,
      savePolicy: config.savePolicy ?? GC_DEFAULTS.savePolicy,
      policy,
      namespaces: config.namespaces ?? {},
    };
  }

  /**
   * The plan of the run (after the plan phase; in a dry run, the answer).
   * @returns A copy of the plan, or `undefined` before it is made.
   */
  plan(): GcPlan | undefined {
    const p = this.#plan;
    return p && {
      ...p,
      rewrite: [...p.rewrite],
      delete: [...p.delete],
      looseBlobs: [...p.looseBlobs],
    };
  }

  protected override check(): void {
    const c = this.#config;
    this.requireStore("config", "a Corrupted store cannot be garbage collected: rebuild it first");
    const storage = this.store.config!.manifestStorage;
    if (storage !== "Remote") {
      throw new CapsaError(
        "unsupported_feature",
        `garbage collection needs manifest storage Remote (this store's is ${storage}): ` +
          "run capsa migrate --manifest-storage remote first",
      );
    }
    if (
      typeof c.dryRun !== "boolean" || typeof c.repackSmall !== "boolean" ||
      typeof c.savePolicy !== "boolean"
    ) {
      throw new InvalidArgumentError("dryRun, repackSmall and savePolicy must be booleans");
    }
    if (c.savePolicy && c.dryRun) {
      throw new InvalidArgumentError(
        "savePolicy changes the store's config: run it without dryRun (preview with dryRun alone)",
      );
    }
    if (typeof c.maxUnused !== "number" || !(c.maxUnused >= 0 && c.maxUnused <= 1)) {
      throw new InvalidArgumentError(
        `maxUnused must be a fraction from 0 to 1, got ${c.maxUnused}`,
      );
    }
    requireIntegers({ parallelism: [c.parallelism, 1], grace: [c.grace, 0] });
    const policies = [["", c.policy], ...Object.entries(c.namespaces)] as const;
    for (const [ns, p] of policies) {
      const where = ns === "" ? "" : ` (namespace ${ns})`;
      if (p.keepVersions !== undefined) {
        if (!Number.isSafeInteger(p.keepVersions) || p.keepVersions < 1) {
          throw new InvalidArgumentError(
            `keepVersions${where} must be an integer ≥ 1, got ${p.keepVersions}`,
          );
        }
      }
      for (const name of ["keepWithin", "dropDeletedAfter"] as const) {
        const v = p[name];
        if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
          throw new InvalidArgumentError(`${name}${where} must be a duration ≥ 0 ms, got ${v}`);
        }
      }
    }
  }

  protected override progress(): { done: number; total: number } {
    return { done: this.#done, total: this.#total };
  }

  protected override work(ctx: MaintenanceContext): Promise<void> {
    return this.#collect(ctx);
  }

  /**
   * The policy for a namespace: the store's (config), its namespace's, then
   * this run's, then this run's for the namespace, each field over the last.
   */
  #policyFor(namespace: string): RetentionPolicy {
    const stored = this.store.config?.retention;
    const { namespaces: storedNs, ...storedBase } = stored ?? {};
    return {
      ...storedBase,
      ...storedNs?.[namespace],
      ...this.#config.policy,
      ...this.#config.namespaces[namespace],
    };
  }

  /** Writes the run's policy over the store's as a new config version, and adopts it. */
  async #savePolicy(ctx: MaintenanceContext): Promise<void> {
    const store = ctx.store;
    const config = store.config!;
    const stored = config.retention ?? {};
    const namespaces: Record<string, RetentionPolicy> = { ...stored.namespaces };
    for (const [ns, p] of Object.entries(this.#config.namespaces)) {
      namespaces[ns] = { ...namespaces[ns], ...p };
    }
    const retention: RetentionConfig = {
      ...stored,
      ...this.#config.policy,
      ...(Object.keys(namespaces).length > 0 ? { namespaces } : {}),
    };
    await ctx.lease.check();
    const { seq: _seq, createdAt: _at, ...settings } = config;
    const next = await writeConfigVersion(store.driver, { ...settings, retention }, {
      chunking: store.descriptor!.chunking,
      clock: store.clock,
    });
    store.adoptConfig(next);
  }

  /** Marks what the policy keeps, from every manifest of the index. */
  #mark(index: StoreIndex, now: number): Mark {
    const mark: Mark = { dropped: new Set(), liveBlobs: new Set(), perPack: new Map() };
    type M = Parameters<Parameters<StoreIndex["forEachManifest"]>[0]>[0];
    let group: M[] = [];
    const flush = () => {
      if (group.length === 0) return;
      const keep = retainedVersions(group, this.#policyFor(group[0]!.namespace), now);
      group.forEach((m, i) => {
        const counts = mark.perPack.get(m.packId ?? "") ?? { live: 0, dropped: 0 };
        mark.perPack.set(m.packId ?? "", counts);
        if (keep[i]) {
          counts.live++;
          this.counters.manifestsKept++;
          for (const b of m.blobs) mark.liveBlobs.add(b);
        } else {
          counts.dropped++;
          mark.dropped.add(m.id);
        }
      });
      group = [];
    };
    index.forEachManifest((m) => {
      const first = group[0];
      if (first && (first.namespace !== m.namespace || first.key !== m.key)) flush();
      group.push(m);
    });
    flush();
    this.counters.manifestsDropped = mark.dropped.size;
    this.counters.blobsKept = mark.liveBlobs.size;
    return mark;
  }

  async #collect(ctx: MaintenanceContext): Promise<void> {
    const { store, signal } = ctx;
    const driver = store.driver;
    if (this.#config.savePolicy) await this.#savePolicy(ctx);
    await store.refresh();
    const index = store.index;
    const descriptor = store.descriptor!;
    const config = store.config!;
    const startedAt = store.locationNow();

    // 1. Mark.
    this.counters.phase = "mark";
    const mark = this.#mark(index, startedAt);
    signal.throwIfAborted();

    // 2. Plan.
    this.counters.phase = "plan";
    const packs = index.packs();
    const loose = index.looseBlobs();
    // Packs a superseding pack or an applied run retired, still on the Location (an earlier
    // run stopped before deleting them): deleted by this run, their content is elsewhere.
    const packsOnLocation = new Map<string, number>();
    for await (const info of driver.list(PACK_PREFIX)) {
      const id = parsePackKey(info.key);
      if (id !== undefined) packsOnLocation.set(id, info.size);
    }
    const retiredPresent = [...packsOnLocation.keys()].filter((id) => index.isRetired(id));
    const looseOnLocation = new Map<string, number>();
    for await (const info of driver.list(LOOSE_BLOB_PREFIX)) {
      const id = info.key.slice(info.key.lastIndexOf("/") + 1);
      if (/^[0-9a-f]{64}$/.test(id) && info.key === looseBlobKey(id)) {
        looseOnLocation.set(id, info.size);
      }
    }
    this.counters.bytesBefore = [...packsOnLocation.values()].reduce((n, s) => n + s, 0) +
      [...looseOnLocation.values()].reduce((n, s) => n + s, 0);
    const target = config.packTargetSize;
    const rewrite: PackRecord[] = [];
    const dead: PackRecord[] = [];
    const small: PackRecord[] = [];
    let freed = retiredPresent.reduce((n, id) => n + packsOnLocation.get(id)!, 0);
    const liveOf = new Map<string, number>();
    for (const p of packs) {
      const liveBytes = index.blobsInPack(p.packId)
        .filter((b) => mark.liveBlobs.has(b.blobId))
        .reduce((n, b) => n + b.storedSize, 0);
      const counts = mark.perPack.get(p.packId) ?? { live: 0, dropped: 0 };
      const live = liveBytes + counts.live * MANIFEST_BYTES_ESTIMATE;
      liveOf.set(p.packId, live);
      if (liveBytes === 0 && counts.live === 0) {
        dead.push(p);
        freed += p.size;
      } else if (counts.dropped > 0 || (p.size - live) / p.size > this.#config.maxUnused) {
        // A version the policy drops leaves only when its pack is rewritten, however small.
        rewrite.push(p);
        freed += Math.max(0, p.size - live);
      } else if (this.#config.repackSmall && p.size < target / 4) small.push(p);
    }
    if (small.length >= 2) {
      rewrite.push(...small);
      // Merging saves the per-pack overhead; the bytes stay.
      freed += small.reduce((n, p) => n + Math.max(0, p.size - liveOf.get(p.packId)!), 0);
    }
    // Loose blobs nothing live names: indexed ones, and leftovers of interrupted puts.
    const doomedLoose: string[] = [];
    const indexedLoose = new Map(loose.map((b) => [b.blobId, b]));
    for (const [id, size] of looseOnLocation) {
      if (mark.liveBlobs.has(id)) continue;
      if (!indexedLoose.has(id) && index.blob(id)) continue; // a loose copy of a packed blob: kept
      doomedLoose.push(id);
      freed += size;
    }
    doomedLoose.sort();
    const planned = [...rewrite, ...dead].sort((a, b) => (a.packId < b.packId ? -1 : 1));
    // Only manifests in rewritten or deleted packs are dropped now; the rest at a later run.
    this.counters.manifestsDropped = planned.reduce(
      (n, p) => n + (mark.perPack.get(p.packId)?.dropped ?? 0),
      0,
    );
    this.#plan = {
      rewrite: rewrite.map((p) => p.packId).sort(),
      delete: [...dead.map((p) => p.packId), ...retiredPresent].sort(),
      looseBlobs: doomedLoose,
      manifestsDropped: this.counters.manifestsDropped,
      bytesFreed: freed,
    };
    if (this.#config.dryRun) {
      this.counters.packsDeleted = rewrite.length + dead.length + retiredPresent.length;
      this.counters.looseBlobsDeleted = doomedLoose.length;
      this.counters.bytesAfter = this.counters.bytesBefore - freed;
      this.counters.bytesFreed = freed;
      this.counters.phase = "done";
      return;
    }

    // 3. Rewrite: each planned pack's live content into superseding packs.
    this.counters.phase = "rewrite";
    this.#total = planned.length;
    const copiedBlobs = new Set<string>();
    const copiedManifests = new Set<string>();
    const deadEntries = new Map<string, DeadEntry>();
    const doomedPacks: string[] = [...retiredPresent];
    const written: string[] = [];
    let writtenBytes = 0;
    let batch: Batch = { blobs: [], manifests: [], supersedes: [], bytes: 0 };
    const seal = async (supersedes: boolean) => {
      if (batch.blobs.length === 0 && batch.manifests.length === 0) {
        doomedPacks.push(...batch.supersedes);
        batch = { blobs: [], manifests: [], supersedes: [], bytes: 0 };
        return;
      }
      const size = await this.#writePack(ctx, index, batch, supersedes);
      writtenBytes += size.bytes;
      written.push(size.packId);
      doomedPacks.push(...batch.supersedes);
      batch = { blobs: [], manifests: [], supersedes: [], bytes: 0 };
    };
    // Read ahead a few packs while the current one is copied.
    const reads = planned.map((p) => () => this.#readLive(ctx, p, mark, deadEntries));
    const ahead: Array<Promise<LiveContent | undefined>> = [];
    const window = Math.max(1, Math.min(this.#config.parallelism, 8));
    const start = (i: number) => {
      const read = reads[i]!();
      read.catch(() => {}); // awaited in order below; one not reached must not go unhandled
      ahead.push(read);
    };
    for (let i = 0; i < Math.min(window, reads.length); i++) start(i);
    for (let i = 0; i < planned.length; i++) {
      signal.throwIfAborted();
      const got = await ahead[i]!;
      if (i + window < reads.length) start(i + window);
      this.#done++;
      const p = planned[i]!;
      if (got === undefined) continue; // unusable: left alone, reported
      const blobs = got.blobs.filter((b) => !copiedBlobs.has(b.id));
      const manifests = got.manifests.filter((m) => !copiedManifests.has(m.id));
      const bytes = blobs.reduce((n, b) => n + b.bytes.length, 0) +
        manifests.length * MANIFEST_BYTES_ESTIMATE;
      if (batch.bytes > 0 && batch.bytes + bytes > target) await seal(true);
      for (const b of blobs) copiedBlobs.add(b.id);
      for (const m of manifests) copiedManifests.add(m.id);
      batch.blobs.push(...blobs);
      batch.manifests.push(...manifests);
      batch.supersedes.push(p.packId);
      // A pack an earlier run wrote names packs that may still be on the Location: the new
      // pack names them too, so that they stay retired once this one is gone.
      for (const id of got.supersedes) if (packsOnLocation.has(id)) batch.supersedes.push(id);
      batch.bytes += bytes;
      this.counters.blobsDropped += got.droppedBlobs;
    }
    await seal(true);
    doomedPacks.splice(0, doomedPacks.length, ...new Set(doomedPacks));
    doomedPacks.sort();
    if (doomedPacks.length === 0 && doomedLoose.length === 0) {
      this.#finish(writtenBytes, 0);
      return;
    }

    // 4. Publish the run, then the epoch.
    this.counters.phase = "publish";
    await ctx.lease.check();
    // Runs are ordered by id: after the newest published one, whatever the clocks say.
    let runId = await store.newId();
    const previous = (await readGcEpoch(driver).catch(() => undefined))?.runId ?? "";
    if (previous >= runId && isUlid(previous)) {
      runId = ulidFloor(ulidTime(previous) + 1).slice(0, 10) + runId.slice(10);
    }
    const notBefore = store.locationNow() + this.#config.grace;
    const run = {
      storeId: descriptor.storeId,
      runId,
      startedAt,
      notBefore,
      packs: doomedPacks,
      looseBlobs: doomedLoose,
      written: [...written].sort(),
    };
    await driver.put(gcRunKey(runId), encodeGcRun(run), {
      ifAbsent: driver.capabilities.createOnly,
    });
    await driver.put(
      GC_EPOCH_KEY,
      encodeGcEpoch({ storeId: descriptor.storeId, runId, notBefore }),
    );

    // 5. Wait out the grace period, catch up, rescue what new manifests name.
    this.counters.phase = "grace";
    while (store.locationNow() < notBefore) {
      signal.throwIfAborted();
      await ctx.lease.check();
      await sleep(Math.min(1000, notBefore - store.locationNow()), signal);
    }
    this.counters.phase = "recheck";
    await store.refresh(); // indexes every pack written since the mark, then applies this run
    const keptLoose = new Set<string>();
    const rescue = new Map<string, DeadEntry>();
    const doomedLooseSet = new Set(doomedLoose);
    index.forEachManifest((m) => {
      if (mark.dropped.has(m.id)) return;
      for (const b of m.blobs) {
        if (index.hasBlob(b)) continue;
        if (doomedLooseSet.has(b)) keptLoose.add(b);
        else {
          const at = deadEntries.get(b);
          if (at) rescue.set(b, at);
        }
      }
    });
    if (rescue.size > 0) {
      const hash = descriptor.hash;
      batch = { blobs: [], manifests: [], supersedes: [], bytes: 0 };
      for (const [id, at] of rescue) {
        const key = packKey(at.packId);
        const bytes = await driver.getRange(key, at.offset, at.storedLength);
        try {
          // Decompressed (bounded by the raw length) and checked; the stored bytes are copied.
          decodeStoredBlob({ key, id, ...at }, bytes, { hash, keys: store.keys });
        } catch (cause) {
          throw new CorruptObjectError(
            key,
            `blob ${id}, named by a manifest written during garbage collection, cannot be read back`,
            { cause },
          );
        }
        if (batch.bytes > 0 && batch.bytes + bytes.length > target) await seal(false);
        batch.blobs.push({
          id,
          kind: at.kind,
          bytes,
          compression: at.compression,
          rawLength: at.rawLength,
        });
        batch.bytes += bytes.length;
        this.counters.blobsRescued++;
      }
      await seal(false);
    }

    // 6. Delete.
    this.counters.phase = "delete";
    await ctx.lease.check();
    const deletions = [
      ...doomedPacks.map((id) => ({ key: packKey(id), size: 0, pack: true })),
      ...doomedLoose.filter((id) => !keptLoose.has(id)).map((id) => ({
        key: looseBlobKey(id),
        size: looseOnLocation.get(id) ?? 0,
        pack: false,
      })),
    ];
    const sizes = new Map([...packsOnLocation].map(([id, size]) => [packKey(id), size]));
    let deletedBytes = 0;
    await pool(deletions, async (d) => {
      await driver.delete(d.key).catch((e) => {
        if (!(e instanceof NotFoundError)) throw e;
      });
      deletedBytes += d.pack ? sizes.get(d.key) ?? 0 : d.size;
      if (d.pack) this.counters.packsDeleted++;
      else {
        this.counters.looseBlobsDeleted++;
        this.counters.blobsDropped++;
      }
    }, { concurrency: this.#config.parallelism, signal });
    this.#finish(writtenBytes, deletedBytes);
  }

  #finish(writtenBytes: number, deletedBytes: number): void {
    this.counters.bytesAfter = this.counters.bytesBefore - deletedBytes + writtenBytes;
    this.counters.bytesFreed = this.counters.bytesBefore - this.counters.bytesAfter;
    this.counters.phase = "done";
  }

  /**
   * Reads a planned pack's TOC and its live blobs (each checked against its
   * id). A pack that cannot be read whole is left alone and reported.
   */
  async #readLive(
    ctx: MaintenanceContext,
    p: PackRecord,
    mark: Mark,
    deadEntries: Map<string, DeadEntry>,
  ): Promise<LiveContent | undefined> {
    const { store } = ctx;
    const driver = store.driver;
    const descriptor = store.descriptor!;
    const key = packKey(p.packId);
    try {
      const toc = await readPackToc(driver, key, {
        size: p.size,
        storeId: descriptor.storeId,
        hash: descriptor.hash,
        packId: p.packId,
        keys: store.keys,
      });
      this.counters.packsRead++;
      const live = toc.blobs.filter((b) => mark.liveBlobs.has(b.id));
      for (const b of toc.blobs) {
        if (!mark.liveBlobs.has(b.id)) {
          deadEntries.set(b.id, {
            packId: p.packId,
            kind: b.kind,
            offset: b.offset,
            storedLength: b.storedLength,
            rawLength: b.rawLength,
            compression: b.compression,
          });
        }
      }
      const blobs: PackBlobInput[] = [];
      // Runs of adjacent live blobs are read together.
      let i = 0;
      while (i < live.length) {
        let j = i + 1;
        let end = live[i]!.offset + live[i]!.storedLength;
        while (j < live.length && live[j]!.offset === end && end - live[i]!.offset < 8 << 20) {
          end = live[j]!.offset + live[j]!.storedLength;
          j++;
        }
        const start = live[i]!.offset;
        const bytes = await driver.getRange(key, start, end - start);
        if (bytes.length !== end - start) {
          throw new CorruptObjectError(key, `short read at ${start}: the pack is truncated`);
        }
        for (let k = i; k < j; k++) {
          const b = live[k]!;
          // A view: the pack writer copies it once, into the new pack. The raw bytes are
          // checked against the id; the stored bytes are copied with their compression.
          const stored = bytes.subarray(b.offset - start, b.offset - start + b.storedLength);
          decodeStoredBlob({ key, ...b }, stored, { hash: descriptor.hash, keys: store.keys });
          blobs.push({
            id: b.id,
            kind: b.kind,
            bytes: stored,
            compression: b.compression,
            rawLength: b.rawLength,
          });
        }
        i = j;
      }
      const manifests = toc.manifests.filter((m) => !mark.dropped.has(m.id));
      return {
        blobs,
        manifests,
        droppedBlobs: toc.blobs.length - live.length,
        supersedes: toc.supersedes,
      };
    } catch (e) {
      if (!(e instanceof CorruptObjectError) && !(e instanceof NotFoundError)) throw e;
      const reason = e instanceof CorruptObjectError ? e.reason : "it is gone";
      this.found.push({ key, reason: `left alone: ${reason}` });
      return undefined;
    }
  }

  /** Writes one superseding (or rescue) pack and indexes it. */
  async #writePack(
    ctx: MaintenanceContext,
    index: StoreIndex,
    batch: Batch,
    supersedes: boolean,
  ): Promise<{ packId: string; bytes: number }> {
    const { store } = ctx;
    const descriptor = store.descriptor!;
    let packId = await store.newId();
    // A superseding pack sorts after what it supersedes, even a pack from a clock running ahead.
    const newest = supersedes ? batch.supersedes.reduce((a, b) => (a > b ? a : b), "") : "";
    if (newest >= packId) packId = ulidFloor(ulidTime(newest) + 1).slice(0, 10) + packId.slice(10);
    const bytes = encodePack({
      packId,
      storeId: descriptor.storeId,
      hash: descriptor.hash,
      blobs: batch.blobs,
      manifests: batch.manifests,
      ...(supersedes ? { supersedes: batch.supersedes } : {}),
      compressionLevel: compressionLevelOf(store.config!),
      keys: store.keys,
    });
    await ctx.lease.check();
    await store.driver.put(packKey(packId), bytes, {
      ifAbsent: store.driver.capabilities.createOnly,
    });
    index.indexPack({
      pack: {
        packId,
        size: bytes.length,
        blobCount: batch.blobs.length,
        manifestCount: batch.manifests.length,
      },
      blobs: packBlobRecords(bytes, packId, batch.blobs),
      manifests: batch.manifests.map((m) => ({ ...m, packId })),
      ...(supersedes ? { supersedes: batch.supersedes } : {}),
    });
    this.counters.packsWritten++;
    return { packId, bytes: bytes.length };
  }
}

/** The blob records of a pack just encoded: its blobs back to back after the header. */
function packBlobRecords(
  _bytes: Uint8Array,
  packId: string,
  blobs: readonly PackBlobInput[],
): BlobRecord[] {
  let offset = 16;
  return blobs.map((b) => {
    const rec: BlobRecord = {
      blobId: b.id,
      kind: b.kind,
      rawSize: b.rawLength ?? b.bytes.length,
      storedSize: b.bytes.length,
      packId,
      offset,
    };
    offset += b.bytes.length;
    return rec;
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The GarbageCollectAgent: a maintenance agent with a plan. */
export interface GarbageCollectAgent {
  /** Always `"GarbageCollect"`. */
  readonly kind: "GarbageCollect";
  /** Checks the configuration against the store without touching the Location. */
  validate(): void;
  /**
   * Collects garbage, holding the lease throughout (no maintenance mode:
   * readers and writers go on).
   * @param options The cancellation signal.
   */
  run(options?: { signal?: AbortSignal }): Promise<void>;
  /** A progress snapshot while running; the final statistics after `run`. @returns The stats. */
  stats(): GcStats;
  /** Objects that could not be used and were left alone. @returns The problems. */
  problems(): GcProblem[];
  /** The plan, once made (a dry run's answer). @returns The plan, or `undefined`. */
  plan(): GcPlan | undefined;
}

/**
 * Creates the agent, publishing on `store.bus`.
 * @param store The store.
 * @param config The configuration.
 * @returns The agent.
 */
export function createGarbageCollectAgent(store: Store, config?: GcConfig): GarbageCollectAgent;
/**
 * Creates a GarbageCollectAgent.
 *
 * @param store The store to collect (not Corrupted; manifest storage `Remote`).
 * @param bus Where the agent publishes its events (default: `store.bus`, so it may be left out).
 * @param config Retention policy and tuning; every field has a default.
 * @returns The agent; call `validate()`, then `run()`.
 *
 * @example Drop old versions, then reclaim their space
 * ```ts
 * import assert from "node:assert/strict";
 * import { initStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 * import { createGarbageCollectAgent } from "@capsa/capsa/maintenance";
 *
 * const { store } = await initStore(new MemoryDriver());
 * for (let i = 0; i < 3; i++) await store.put("ns", "k", new Uint8Array(4096).fill(i));
 * await store.flush();
 * // grace: 0 only when no other process writes (tests, a store nobody else uses).
 * const agent = createGarbageCollectAgent(store, { keepVersions: 1, grace: 0 });
 * agent.validate();
 * await agent.run();
 * assert.deepEqual(agent.stats().manifestsDropped, 2);
 * assert.deepEqual((await store.versions("ns", "k")).length, 1);
 * assert.deepEqual((await store.get("ns", "k"))[0], 2);
 * await store.close();
 * ```
 */
export function createGarbageCollectAgent(
  store: Store,
  bus: EventBus,
  config?: GcConfig,
): GarbageCollectAgent;
export function createGarbageCollectAgent(
  store: Store,
  busOrConfig?: EventBus | GcConfig,
  config?: GcConfig,
): GarbageCollectAgent {
  const [bus, cfg] = busOrConfig instanceof EventBus
    ? [busOrConfig, config]
    : [store.bus, busOrConfig];
  return new GarbageCollectAgentImpl(store, bus, cfg ?? {});
}
