import assert from "node:assert/strict";
import { InvalidArgumentError, StoreCorruptedError } from "../errors.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { type CapsaEvent, EventBus } from "../store/events.ts";
import { initStore, openStore, type Store } from "../store/store.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY } from "../layout.ts";
import { AgentBase, type MaintenanceContext } from "./agent.ts";

interface ToyStats {
  steps: number;
  duration: number;
}

/** The shortest agent: what a new one (a garbage collector, say) has to write. */
class ToyAgent extends AgentBase<ToyStats, { key: string; reason: string }> {
  override readonly kind = "Toy";
  gate: Promise<void> = Promise.resolve();
  failWith: Error | undefined;

  constructor(store: Store, bus: EventBus, leaseTTL = 60_000) {
    super(store, bus, { mode: "read-only", leaseTTL, force: false }, { steps: 0, duration: 0 });
  }

  protected override check(): void {
    this.requireStore("config", "a Corrupted store cannot be played with");
  }

  protected override progress(): { done: number; total: number } {
    return { done: this.counters.steps, total: 2 };
  }

  protected override async work(ctx: MaintenanceContext): Promise<void> {
    this.counters.steps++;
    this.found.push({ key: "packs/x", reason: "just looking" });
    await this.gate;
    await ctx.lease.check();
    if (this.failWith) throw this.failWith;
    this.counters.steps++;
  }
}

Deno.test("AgentBase: one run, stats and problems as copies, a live duration, started, progress and completed events", async () => {
  const { store } = await initStore(new MemoryDriver());
  try {
    const bus = new EventBus();
    const events: CapsaEvent[] = [];
    bus.subscribe((e) => events.push(e));
    const agent = new ToyAgent(store, bus);
    let release!: () => void;
    agent.gate = new Promise((r) => (release = r));
    const running = agent.run();
    for (let i = 0; i < 200 && agent.stats().steps === 0; i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 20));
    const during = agent.stats();
    assert.equal(during.steps, 1);
    assert.ok(during.duration >= 15, `live duration ${during.duration}`);
    during.steps = 99;
    agent.problems()[0]!.reason = "changed";
    release();
    await running;

    const after = agent.stats();
    assert.equal(after.steps, 2, "stats() returned a copy");
    assert.ok(after.duration >= during.duration);
    assert.deepEqual(agent.problems(), [{ key: "packs/x", reason: "just looking" }]);
    assert.deepEqual(
      events.map((e) => e.type).filter((t) =>
        t.startsWith("maintenance.") && t !== "maintenance.progress"
      ),
      ["maintenance.started", "maintenance.completed"],
    );
    const completed = events.find((e) => e.type === "maintenance.completed");
    assert.equal(completed?.type === "maintenance.completed" && completed.stats["steps"], 2);
    const last = events.filter((e) => e.type === "maintenance.progress").at(-1) as {
      done: number;
      total: number;
    };
    assert.deepEqual([last.done, last.total], [2, 2]);
    await assert.rejects(
      agent.run(),
      (e) => e instanceof InvalidArgumentError && /runs once/.test(e.message),
    );
  } finally {
    await store.close();
  }
});

Deno.test("AgentBase: a failed work publishes maintenance.failed with its code and keeps the final duration", async () => {
  const { store } = await initStore(new MemoryDriver());
  try {
    const bus = new EventBus();
    const failed: CapsaEvent[] = [];
    bus.subscribe((e) => failed.push(e), { types: ["maintenance.failed"] });
    const agent = new ToyAgent(store, bus);
    agent.failWith = new InvalidArgumentError("no");
    await assert.rejects(agent.run(), InvalidArgumentError);
    assert.equal(failed.length, 1);
    assert.equal((failed[0] as { code: string }).code, "invalid_argument");
    const a = agent.stats().duration;
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(agent.stats().duration, a, "the duration stops with the run");
  } finally {
    await store.close();
  }
});

Deno.test("AgentBase: validate() checks the lease TTL and refuses a Corrupted store before any lease", async () => {
  const objects = new Map<string, Uint8Array>();
  const driver = new MemoryDriver({ objects });
  const { store: first } = await initStore(driver);
  assert.throws(() => new ToyAgent(first, new EventBus(), 999).validate(), /leaseTTL/);
  await first.close();
  objects.delete(DESCRIPTOR_KEY);
  objects.delete(DESCRIPTOR_REPLICA_KEY);
  const store = await openStore(driver, { readOnly: true });
  try {
    const before = [...objects.keys()].sort();
    const agent = new ToyAgent(store, new EventBus());
    await assert.rejects(
      agent.run(),
      (e) => e instanceof StoreCorruptedError && /cannot be played with/.test(e.message),
    );
    assert.deepEqual([...objects.keys()].sort(), before, "no lease was taken");
  } finally {
    await store.close();
  }
});
