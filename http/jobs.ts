/**
 * Maintenance jobs run by the HTTP endpoint: a maintenance agent started in
 * the background, watched while it runs, and kept for a while once it is
 * done.
 *
 * A kind of job is one entry of a {@linkcode JobKinds} map, from the name in
 * the URL (`POST /v1/maintenance/<kind>`) to a {@linkcode JobFactory} that
 * checks the request's JSON parameters and creates the agent. Plugging in a
 * new agent is one line:
 *
 * ```ts ignore
 * const kinds = { ...DEFAULT_JOB_KINDS, migrate: migrateJob };
 * ```
 *
 * {@linkcode JobRegistry.start} creates the agent, calls `validate()`, starts
 * `run()`, and returns only once the agent holds the maintenance lease (its
 * `maintenance.started` event) or has failed: a bad configuration or a lease
 * held by someone else is reported to the caller at once, not as a failed
 * job. Once a job completes, the registry calls `store.refresh()`, so that
 * writes already under way when it started, and committed while it ran, are
 * in the index it leaves behind.
 *
 * @example Run a rebuild as a job and wait for it
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobRegistry } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const jobs = new JobRegistry(store);
 * const job = await jobs.start("rebuild", { source: "FullScan" });
 * const done = await jobs.wait(job.id);
 * assert.deepEqual(done.state, "completed");
 * await jobs.close();
 * await store.close();
 * ```
 *
 * @module
 */

import { CapsaError, InvalidArgumentError } from "../errors.ts";
import { httpAdvice } from "./errors.ts";
import { EventBus } from "../store/events.ts";
import type { Store } from "../store/store.ts";
import type { MaintenanceAgent } from "../maintenance/agent.ts";
import { createRebuildIndexAgent, type RebuildIndexAgent } from "../maintenance/rebuild_index.ts";
import { createVerificationAgent } from "../maintenance/verify.ts";
import { createMigrateIndexAgent, type MigrateIndexAgent } from "../maintenance/migrate_index.ts";
import { createMoveStoreAgent } from "../maintenance/move_store.ts";
import { createGarbageCollectAgent } from "../maintenance/gc.ts";
import {
  parseGcOptions,
  parseMigrateOptions,
  parseMoveOptions,
  parseRebuildOptions,
  parseVerifyOptions,
} from "../maintenance/options.ts";
import { createLocationRegistry, parseLocation } from "../drivers/location.ts";
import "../drivers/s3_lazy.ts";

/** A maintenance agent that can run as a job: it reports live stats. */
export interface JobAgent extends MaintenanceAgent {
  /**
   * A snapshot of the agent's statistics, safe to call while it runs.
   * @returns The stats (a JSON-serialisable object).
   */
  stats(): object;
  /**
   * Problems found so far, each naming its object (optional).
   * @returns The problems.
   */
  problems?(): Array<{ key: string; reason: string }>;
  /**
   * Releases what the factory opened for the job (optional): called once,
   * when the job has settled or when it could not start.
   */
  close?(): Promise<void>;
}

/**
 * Creates the agent of one kind of job from the request's JSON parameters,
 * read by the options parser the CLI uses too (`maintenance/options.ts`).
 * It throws {@linkcode InvalidArgumentError} for an unknown parameter or a
 * bad value; the agent's own `validate()` checks it against the store. It
 * may be async (to open what the job needs, released by `close()`).
 */
export type JobFactory = (
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
) => JobAgent | Promise<JobAgent>;

/** The kinds of job a registry can start: URL name → factory. */
export type JobKinds = Readonly<Record<string, JobFactory>>;

/** The state of a job. */
export type JobState = "running" | "completed" | "failed";

/** What the endpoint reports about a job. */
export interface JobView {
  /** The job's id. */
  id: string;
  /** The kind, as in the URL (e.g. `"rebuild"`). */
  kind: string;
  /** The agent's kind (e.g. `"RebuildIndex"`). */
  agent: string;
  /** `running`, `completed` or `failed`. */
  state: JobState;
  /** Who holds the maintenance lease for it, e.g. `RebuildIndex on host-a (pid 7)`. */
  holder: string;
  /** When it started (ms since the epoch). */
  startedAt: number;
  /** When it finished (ms since the epoch), once it has. */
  finishedAt?: number;
  /** The agent's live stats (its final stats once finished). */
  stats: object;
  /** Problems the agent found, each naming its object. */
  problems: Array<{ key: string; reason: string }>;
  /** Why it failed (`code` is `"aborted"` when it was aborted). */
  error?: { code: string; message: string };
}

/**
 * The `rebuild` job: a RebuildIndexAgent. Parameters (all optional):
 * `source` (`"Auto"`, `"Snapshot"`, `"FullScan"`, or the CLI's `auto`,
 * `snapshot`, `full-scan`), `batchSize`, `parallelism`, `leaseTTL` (ms),
 * `force` (boolean) and `recoveryKit` (the kit's text). The host storage is
 * the store's own.
 *
 * @param store The store.
 * @param bus Where the agent publishes.
 * @param params The request's parameters.
 * @returns The agent.
 * @throws {InvalidArgumentError} for an unknown parameter or one of the wrong type.
 *
 * @example
 * ```ts
 * import { rebuildJob } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { EventBus } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const agent = rebuildJob(store, new EventBus(), { source: "full-scan", parallelism: 4 });
 * agent.validate();
 * await store.close();
 * ```
 */
export function rebuildJob(
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
): RebuildIndexAgent {
  return createRebuildIndexAgent(store, bus, parseRebuildOptions(params, "json"));
}

/** A job's problems as `{key, reason, kind}`: `reason` is the kind and the detail. */
function withKinds(
  problems: ReadonlyArray<{ kind: string; key: string; detail: string }>,
): Array<{ key: string; reason: string; kind: string }> {
  return problems.map((p) => ({ key: p.key, reason: `${p.kind}: ${p.detail}`, kind: p.kind }));
}

/**
 * Makes a VerificationAgent from a job's parameters: `data` (boolean),
 * `subset` (`"n/m"` or `"P%"`), `seed` (with a percentage), `parallelism`,
 * `leaseTTL`, `force`. Its problems are reported as `{key, reason, kind}`
 * (`reason` = kind and detail).
 * @param store The store.
 * @param bus Where the agent publishes.
 * @param params The JSON body of the request.
 * @returns The agent, as a job.
 * @throws {InvalidArgumentError} for an unknown field, a wrong type or a bad subset.
 */
export function verifyJob(
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
): JobAgent {
  const agent = createVerificationAgent(store, bus, parseVerifyOptions(params, "json"));
  return {
    kind: agent.kind,
    validate: () => agent.validate(),
    run: (options) => agent.run(options),
    stats: () => agent.stats(),
    problems: () => withKinds(agent.problems()),
  };
}

/**
 * Makes a GarbageCollectAgent from a job's parameters: `keepVersions`,
 * `keepWithin`, `dropDeletedAfter` (durations: ms or `"30d"`), `namespaces`
 * (namespace → those three), `dryRun`, `maxUnused` (0–1 or `"5%"`),
 * `repackSmall`, `grace`, `parallelism`, `leaseTTL`, `force`. Writes through
 * the endpoint go on while it runs. Its stats carry the plan's counts; its
 * problems are packs it left alone.
 * @param store The store.
 * @param bus Where the agent publishes.
 * @param params The JSON body of the request.
 * @returns The agent, as a job.
 * @throws {InvalidArgumentError} for an unknown field or a wrong value.
 */
export function gcJob(
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
): JobAgent {
  const agent = createGarbageCollectAgent(store, bus, parseGcOptions(params, "json"));
  return {
    kind: agent.kind,
    validate: () => agent.validate(),
    run: (options) => agent.run(options),
    stats: () => {
      const plan = agent.plan();
      return {
        ...agent.stats(),
        ...(plan
          ? {
            plannedRewrites: plan.rewrite.length,
            plannedDeletes: plan.delete.length,
            plannedLooseBlobs: plan.looseBlobs.length,
            plannedBytesFreed: plan.bytesFreed,
          }
          : {}),
      };
    },
    problems: () => agent.problems(),
  };
}

/**
 * Makes a MigrateIndexAgent from a job's parameters: `manifestStorage`
 * (`"Remote"`, `"Local"` or `"Replicated"`; omitted: only the index schema),
 * `leaseTTL`, `force`.
 * @param store The store.
 * @param bus Where the agent publishes.
 * @param params The JSON body of the request.
 * @returns The agent.
 * @throws {InvalidArgumentError} for an unknown field or a wrong value.
 */
export function migrateJob(
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
): MigrateIndexAgent {
  return createMigrateIndexAgent(store, bus, parseMigrateOptions(params, "json"));
}

/**
 * Makes a MoveStoreAgent from a job's parameters: `destination` (a Location
 * URL: `file:///…`, `s3://…`; required), `parallelism`, `deleteSource`,
 * `leaseTTL`, `force`. The destination is opened (created if missing) before
 * the job starts, with the server's own permissions and credentials, and
 * closed once the job has settled.
 * @param store The store.
 * @param bus Where the agent publishes.
 * @param params The JSON body of the request.
 * @returns The agent, as a job.
 * @throws {InvalidArgumentError} for an unknown field, a wrong type or a missing destination.
 */
export async function moveJob(
  store: Store,
  bus: EventBus,
  params: Readonly<Record<string, unknown>>,
): Promise<JobAgent> {
  const { destination, ...options } = parseMoveOptions(params, "json");
  const url = parseLocation(destination!);
  const driver = await createLocationRegistry().open(url.href, { create: true });
  const agent = createMoveStoreAgent(store, bus, {
    ...options,
    destination: driver,
    destinationLocation: driver.location,
  });
  return {
    kind: agent.kind,
    validate: () => agent.validate(),
    run: (runOptions) => agent.run(runOptions),
    stats: () => agent.stats(),
    problems: () => withKinds(agent.problems()),
    close: () => driver.close(),
  };
}

/**
 * The kinds of job the endpoint offers by default.
 *
 * @example Adding a kind
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_JOB_KINDS, type JobKinds, rebuildJob } from "./jobs.ts";
 * const kinds: JobKinds = { ...DEFAULT_JOB_KINDS, "rebuild-full": (s, b, p) => rebuildJob(s, b, { ...p, source: "FullScan" }) };
 * assert.deepEqual(Object.keys(kinds), ["rebuild", "verify", "migrate", "move", "gc", "rebuild-full"]);
 * ```
 */
export const DEFAULT_JOB_KINDS: JobKinds = Object.freeze({
  rebuild: rebuildJob,
  verify: verifyJob,
  migrate: migrateJob,
  move: moveJob,
  gc: gcJob,
});

/** Options of {@linkcode JobRegistry}. */
export interface JobRegistryOptions {
  /** Where agents publish (default: the store's bus). */
  bus?: EventBus;
  /** The kinds of job (default {@linkcode DEFAULT_JOB_KINDS}). */
  kinds?: JobKinds;
  /** How many finished jobs are kept for `get` (default 100; the oldest go first). */
  keepFinished?: number;
  /** The clock (default: the store's). */
  clock?: () => number;
}

interface Job {
  id: string;
  kind: string;
  agent: JobAgent;
  state: JobState;
  holder: string;
  startedAt: number;
  finishedAt: number | undefined;
  error: { code: string; message: string } | undefined;
  notes: Array<{ key: string; reason: string }>;
  controller: AbortController;
  settled: Promise<void>;
  unforward: () => void;
}

function errorOf(e: unknown, aborted: boolean): { code: string; message: string } {
  if (e instanceof CapsaError) return { code: e.code, message: httpAdvice(e.message) };
  if (aborted) return { code: "aborted", message: "the job was aborted" };
  return { code: "internal", message: "internal error: see the server's log" };
}

/**
 * The jobs of one store: starts them, reports on them, aborts them.
 *
 * @example Abort a running job
 * ```ts ignore
 * const job = await jobs.start("rebuild", {});
 * const view = await jobs.abort(job.id); // resolves once the agent has stopped
 * assert.deepEqual([view.state, view.error?.code], ["failed", "aborted"]);
 * ```
 */
export class JobRegistry {
  /** The store the jobs run on. */
  readonly store: Store;
  #bus: EventBus;
  #kinds: JobKinds;
  #keep: number;
  #clock: () => number;
  #jobs = new Map<string, Job>();
  #closed = false;
  /** Called with errors that are not {@linkcode CapsaError}s (bugs), for the log. */
  onInternalError: (error: unknown) => void = (e) => console.error("capsa job failed:", e);

  /**
   * Creates a registry.
   * @param store The store.
   * @param options Bus, kinds, retention, clock.
   */
  constructor(store: Store, options: JobRegistryOptions = {}) {
    this.store = store;
    this.#bus = options.bus ?? store.bus;
    this.#kinds = options.kinds ?? DEFAULT_JOB_KINDS;
    this.#keep = options.keepFinished ?? 100;
    this.#clock = options.clock ?? store.clock;
    for (const kind of Object.keys(this.#kinds)) {
      if (!/^[a-z][a-z0-9-]*$/.test(kind) || kind === "jobs") {
        throw new InvalidArgumentError(
          `job kind ${
            JSON.stringify(kind)
          } must be lowercase letters, digits and "-", and not "jobs"`,
        );
      }
    }
  }

  /**
   * The kinds of job this registry can start.
   * @returns Their names.
   */
  get kinds(): string[] {
    return Object.keys(this.#kinds);
  }

  /**
   * Whether a kind of job exists.
   * @param kind The kind's name.
   * @returns `true` when {@linkcode JobRegistry.start} knows it.
   */
  has(kind: string): boolean {
    return Object.hasOwn(this.#kinds, kind);
  }

  /**
   * Starts a job: creates its agent, validates it, runs it in the background,
   * and resolves once the agent holds the maintenance lease.
   *
   * @param kind The kind of job.
   * @param params Its parameters (the request's JSON body).
   * @returns The running (or, for a very quick agent, already finished) job.
   * @throws {CapsaError} (`not_found`) for an unknown kind; whatever the factory,
   *   `validate()` or the start of `run()` throws (e.g. `LeaseHeldError`).
   */
  async start(kind: string, params: Readonly<Record<string, unknown>>): Promise<JobView> {
    if (this.#closed) throw new CapsaError("closed", "the job registry is closed");
    const factory = this.has(kind) ? this.#kinds[kind] : undefined;
    if (!factory) {
      throw new CapsaError(
        "not_found",
        `no maintenance job kind "${kind}" (known: ${this.kinds.join(", ")})`,
      );
    }
    // Each job gets its own bus, forwarded to the shared one, so its start is its own.
    const jobBus = new EventBus();
    const unforward = jobBus.subscribe((e) => this.#bus.publish(e));
    let agent: JobAgent | undefined;
    try {
      agent = await factory(this.store, jobBus, params);
      agent.validate();
    } catch (e) {
      unforward();
      await agent?.close?.();
      throw e;
    }

    let onStarted!: (holder: string) => void;
    const started = new Promise<string>((resolve) => (onStarted = resolve));
    const offStarted = jobBus.subscribe(
      (e) => e.type === "maintenance.started" && onStarted(e.holder),
      { types: ["maintenance.started"] },
    );
    const controller = new AbortController();
    const startedAt = this.#clock();
    const run = agent.run({ signal: controller.signal });
    const first = await Promise.race([
      started.then((holder) => ({ started: true as const, holder })),
      run.then(
        () => ({ started: false as const, error: undefined }),
        (error: unknown) => ({ started: false as const, error: error ?? new Error("failed") }),
      ),
    ]);
    offStarted();
    if (!first.started && first.error !== undefined) {
      unforward();
      await agent.close?.();
      throw first.error;
    }

    const job: Job = {
      id: crypto.randomUUID(),
      kind,
      agent,
      state: "running",
      holder: first.started ? first.holder : "",
      startedAt,
      finishedAt: undefined,
      error: undefined,
      notes: [],
      controller,
      settled: Promise.resolve(),
      unforward,
    };
    job.settled = run.then(
      async () => {
        // Writes that were already under way when the job started may have
        // committed beside the index it swapped in: read them in.
        try {
          await this.store.refresh();
        } catch (e) {
          job.notes.push({
            key: "index",
            reason: `reading in packs written during the job failed: ${
              e instanceof Error ? e.message : String(e)
            }`,
          });
        }
        job.state = "completed";
      },
      (e: unknown) => {
        job.state = "failed";
        job.error = errorOf(e, controller.signal.aborted);
        if (!(e instanceof CapsaError) && !controller.signal.aborted) this.onInternalError(e);
      },
    ).finally(async () => {
      job.finishedAt = this.#clock();
      job.unforward();
      await job.agent.close?.().catch((e: unknown) => this.onInternalError(e));
      this.#prune();
    });
    this.#jobs.set(job.id, job);
    if (!first.started) await job.settled;
    return this.#view(job);
  }

  /**
   * Reports on a job.
   * @param id The job's id.
   * @returns Its view, or `undefined` when no such job is known.
   */
  get(id: string): JobView | undefined {
    const job = this.#jobs.get(id);
    return job ? this.#view(job) : undefined;
  }

  /**
   * Every known job, oldest first.
   * @returns Their views.
   */
  list(): JobView[] {
    return [...this.#jobs.values()].map((j) => this.#view(j));
  }

  /**
   * The job running now, if any (the lease allows one per store).
   * @returns Its view, or `undefined`.
   */
  running(): JobView | undefined {
    for (const job of this.#jobs.values()) if (job.state === "running") return this.#view(job);
    return undefined;
  }

  /**
   * Waits until a job has finished.
   * @param id The job's id.
   * @param timeoutMs Give up waiting after this long (default: wait as long as it takes).
   * @returns Its view: finished, or still running when the wait timed out.
   * @throws {CapsaError} (`not_found`) when no such job is known.
   */
  async wait(id: string, timeoutMs?: number): Promise<JobView> {
    const job = this.#find(id);
    if (timeoutMs === undefined) await job.settled;
    else {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        job.settled,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    return this.#view(job);
  }

  /**
   * Aborts a running job (its agent stops cleanly: lease released, store as
   * it was) and waits for it to stop.
   * @param id The job's id.
   * @param timeoutMs How long to wait for the agent to stop (default 10 s).
   * @returns Its view: `failed` with code `aborted` once stopped, or still `running`.
   * @throws {CapsaError} (`not_found`) when no such job is known.
   * @throws {CapsaError} (`job_not_running`) when it has already finished.
   */
  async abort(id: string, timeoutMs = 10_000): Promise<JobView> {
    const job = this.#find(id);
    if (job.state !== "running") {
      throw new CapsaError("job_not_running", `job ${id} has already ${job.state}`);
    }
    job.controller.abort(new CapsaError("aborted", `job ${id} was aborted`));
    return await this.wait(id, timeoutMs);
  }

  /** Aborts every running job and waits until they have stopped; refuses new ones after. */
  async close(): Promise<void> {
    this.#closed = true;
    const running = [...this.#jobs.values()].filter((j) => j.state === "running");
    for (const job of running) {
      job.controller.abort(new CapsaError("aborted", `job ${job.id} was aborted: shutting down`));
    }
    await Promise.all(running.map((j) => j.settled));
  }

  #find(id: string): Job {
    const job = this.#jobs.get(id);
    if (!job) throw new CapsaError("not_found", `no maintenance job ${JSON.stringify(id)}`);
    return job;
  }

  #prune(): void {
    const finished = [...this.#jobs.values()].filter((j) => j.state !== "running");
    for (const job of finished.slice(0, Math.max(0, finished.length - this.#keep))) {
      this.#jobs.delete(job.id);
    }
  }

  #view(job: Job): JobView {
    const view: JobView = {
      id: job.id,
      kind: job.kind,
      agent: job.agent.kind,
      state: job.state,
      holder: job.holder,
      startedAt: job.startedAt,
      stats: job.agent.stats(),
      problems: [...(job.agent.problems?.() ?? []), ...job.notes.map((n) => ({ ...n }))],
    };
    if (job.finishedAt !== undefined) view.finishedAt = job.finishedAt;
    if (job.error !== undefined) view.error = { ...job.error };
    return view;
  }
}
