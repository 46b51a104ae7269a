/**
 * Write sessions: many puts into packs sealed at the target size
 * (docs/DESIGN.md, "Write sessions"). Get one from `Store.batch()`, or let
 * `Store.putMany()` drive one over an iterable.
 *
 * A session has its own committer, separate from the handle's group
 * committer: its packs are sealed only when they reach `packTargetSize`
 * (or when the session closes), never on idle or after the linger, so a bulk
 * load writes full packs. Each pack is still a commit of its own, with the
 * manifests it carries (docs/FORMAT.md, W2): a crash loses at most the
 * packs not yet written, whole, and leaves only what the crash sweep of a
 * single put leaves.
 *
 * @module
 */

import { ClosedError } from "../errors.ts";
import { infoOf } from "./read.ts";
import type { ArtifactInfo, Body, PutOptions } from "./types.ts";
import type { PreparedBody, SessionHashing, SessionWriter } from "./write.ts";

/** One artifact to store in a write session. */
export interface BatchItem extends PutOptions {
  /** The namespace. */
  namespace: string;
  /** The artifact key. */
  key: string;
  /** The body: bytes, or a stream. */
  body: Body;
}

/** The outcome of one put of a write session. */
export type BatchResult =
  | {
    /** Stored: durable and indexed. */
    ok: true;
    /** The namespace. */
    namespace: string;
    /** The key. */
    key: string;
    /** The new version. */
    info: ArtifactInfo;
  }
  | {
    /** Not stored (or not acknowledged: a pack write that failed may still show later). */
    ok: false;
    /** The namespace. */
    namespace: string;
    /** The key. */
    key: string;
    /** Why. */
    error: Error;
  };

/** Options of {@linkcode WriteBatch}. */
export interface BatchOptions {
  /**
   * Called once per put, when its outcome is known (in the order packs
   * become durable, not the order of the puts); `index` is the put's
   * position in the session.
   */
  onResult?: (result: BatchResult, index: number) => void;
  /**
   * Keep every put's outcome for {@linkcode BatchSummary.results} (default
   * `true`). A session of very many puts that takes its outcomes through
   * `onResult` passes `false`: `close()` then reports the counts with an
   * empty `results`, and the session's memory no longer grows with the
   * number of puts (each kept outcome holds the artifact's info: about
   * 0.5–1 KiB).
   */
  keepResults?: boolean;
}

/** What {@linkcode WriteBatch.close} reports. */
export interface BatchSummary {
  /** Every put's outcome, in the order the puts were made (empty with `keepResults: false`). */
  results: BatchResult[];
  /** Puts stored. */
  stored: number;
  /** Puts that failed. */
  failed: number;
  /** Body bytes stored (before deduplication). */
  bytes: number;
}

/** What a session needs from its store handle. */
export interface BatchHost {
  /** The write pipeline of the session. */
  writer: SessionWriter;
  /** Runs a put so that the store's `close()` waits for it (and refuses it once closing). */
  track<T>(fn: () => Promise<T>): Promise<T>;
  /** Called when the session is closed. */
  closed(batch: WriteBatch): void;
}

// Set by WriteBatch's static block (they reach its private fields): see putPrepared().
let putPreparedImpl: (
  batch: WriteBatch,
  namespace: string,
  key: string,
  prepared: PreparedBody,
  options: PutOptions,
) => Promise<void>;
let hashingImpl: (batch: WriteBatch) => SessionHashing;

/**
 * A write session on a store: see `Store.batch()`.
 *
 * Memory stays bounded: a put waits (before reading its body) while two
 * sealed packs are being written, so at most the open pack and two sealed
 * ones are held — plus each put's outcome, unless `keepResults` is `false`.
 */
export class WriteBatch {
  readonly #host: BatchHost;
  readonly #options: BatchOptions;
  readonly #results: BatchResult[] = [];
  /** Puts not yet accepted (body being read). */
  readonly #accepting = new Set<Promise<void>>();
  /** Puts accepted, waiting for their pack: one settlement per pack, not one per put. */
  readonly #durable = new Set<Promise<void>>();
  /** The puts waiting on each pack's durability, settled together when it is. */
  readonly #waiting = new Map<
    Promise<void>,
    Array<{ index: number; namespace: string; key: string; info: ArtifactInfo }>
  >();
  #count = 0;
  #stored = 0;
  #failed = 0;
  #bytes = 0;
  #closing: Promise<BatchSummary> | undefined;
  /** Resolved when the put ahead has placed its blobs and manifest. */
  #turn: Promise<void> = Promise.resolve();

  /**
   * Use `Store.batch()`.
   * @param host The store's side. @param options Result callback.
   */
  constructor(host: BatchHost, options: BatchOptions = {}) {
    this.#host = host;
    this.#options = options;
  }

  /** Puts made so far. */
  get size(): number {
    return this.#count;
  }

  /**
   * Adds a put to the session. Resolves once it is accepted: its body read,
   * its blobs and manifest placed in a pack (waiting while two packs are
   * being written). Puts are placed one at a time, in the order they are
   * made; read files before calling `put` to overlap reading with storing. It is stored when that pack is durable: its outcome goes
   * to `onResult` and to the summary of {@linkcode WriteBatch.close}. A bad
   * name, a failing body or a failed pack write fails that put only; the
   * others go on.
   * @param namespace The namespace. @param key The key.
   * @param body The body. @param options Content type and metadata.
   * @throws {ClosedError} when the session or the store is closing.
   */
  put(namespace: string, key: string, body: Body, options: PutOptions = {}): Promise<void> {
    return this.#put(namespace, key, body, options, undefined);
  }

  static {
    putPreparedImpl = (batch, namespace, key, prepared, options) =>
      batch.#put(namespace, key, prepared.bytes, options, prepared);
    hashingImpl = (batch) => batch.#host.writer.hashing;
  }

  #put(
    namespace: string,
    key: string,
    body: Body,
    options: PutOptions,
    prepared: PreparedBody | undefined,
  ): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError("the write batch"));
    const index = this.#count++;
    const fail = (error: unknown) =>
      this.#settle(index, {
        ok: false,
        namespace,
        key,
        error: error instanceof Error ? error : new Error(String(error)),
      });
    let accepted: Promise<void>;
    try {
      accepted = this.#host.track(async () => {
        const writer = this.#host.writer;
        // One put at a time from here: the blobs and the manifest of an artifact then
        // land in the same pack (unless it spans packs), whatever the concurrency.
        const turn = this.#turn;
        let next!: () => void;
        this.#turn = new Promise<void>((r) => next = r);
        await turn;
        let durable: Promise<void>;
        let info: ArtifactInfo;
        try {
          await writer.committer.backPressure();
          const { manifest, deps } = await writer.put(namespace, key, body, options, prepared);
          durable = (await writer.committer.joinManifest(manifest, deps)).durable;
          info = infoOf(manifest);
        } finally {
          next();
        }
        this.#whenDurable(durable, { index, namespace, key, info });
      }).catch(fail);
    } catch (e) {
      fail(e);
      return Promise.resolve();
    }
    this.#accepting.add(accepted);
    accepted.finally(() => this.#accepting.delete(accepted));
    return accepted;
  }

  /**
   * Settles a put once its pack is durable. The puts of one pack share one
   * handler: a pack of thousands of small files otherwise held a promise and
   * two closures for each of them until it was written.
   */
  #whenDurable(
    durable: Promise<void>,
    put: { index: number; namespace: string; key: string; info: ArtifactInfo },
  ): void {
    const group = this.#waiting.get(durable);
    if (group !== undefined) {
      group.push(put);
      return;
    }
    const puts = [put];
    this.#waiting.set(durable, puts);
    const done = durable.then(
      () => {
        this.#waiting.delete(durable);
        for (const p of puts) {
          this.#settle(p.index, { ok: true, namespace: p.namespace, key: p.key, info: p.info });
        }
      },
      (e: unknown) => {
        this.#waiting.delete(durable);
        const error = e instanceof Error ? e : new Error(String(e));
        for (const p of puts) {
          this.#settle(p.index, { ok: false, namespace: p.namespace, key: p.key, error });
        }
      },
    );
    this.#durable.add(done);
    done.finally(() => this.#durable.delete(done));
  }

  #settle(index: number, result: BatchResult): void {
    if (this.#options.keepResults ?? true) this.#results[index] = result;
    if (result.ok) {
      this.#stored++;
      this.#bytes += result.info.size;
    } else this.#failed++;
    try {
      this.#options.onResult?.(result, index);
    } catch { /* a failing callback must not lose the other results */ }
  }

  /**
   * Seals the last pack and waits until every put of the session is durable
   * and indexed (or failed). Idempotent.
   * @returns Every put's outcome, and counts.
   */
  close(): Promise<BatchSummary> {
    this.#closing ??= (async () => {
      try {
        while (this.#accepting.size > 0) await Promise.allSettled([...this.#accepting]);
        await this.#host.writer.committer.close();
        while (this.#durable.size > 0) await Promise.allSettled([...this.#durable]);
      } finally {
        this.#host.closed(this);
      }
      return {
        results: this.#results,
        stored: this.#stored,
        failed: this.#failed,
        bytes: this.#bytes,
      };
    })();
    return this.#closing;
  }
}

/**
 * {@linkcode WriteBatch.put} of a body read, hashed and tried to compress
 * already by capsa's own `put --from` reader (docs/DESIGN.md §4.8).
 * Internal, not exported by `mod.ts`: a wrong digest would be stored as the
 * body's, so only capsa's code that computed it from these bytes may call it.
 * @param batch The session. @param namespace The namespace. @param key The key.
 * @param prepared The body and what was computed from it.
 * @param options Content type and metadata.
 * @returns As {@linkcode WriteBatch.put}.
 */
export function putPrepared(
  batch: WriteBatch,
  namespace: string,
  key: string,
  prepared: PreparedBody,
  options: PutOptions = {},
): Promise<void> {
  return putPreparedImpl(batch, namespace, key, prepared, options);
}

/**
 * What a session hashes and compresses with, for a caller that prepares
 * bodies for {@linkcode putPrepared} (internal).
 * @param batch The session.
 * @returns Its algorithm (none in an encrypted store), zstd level and thresholds.
 */
export function sessionHashing(batch: WriteBatch): SessionHashing {
  return hashingImpl(batch);
}
