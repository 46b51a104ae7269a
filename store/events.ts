/**
 * The EventBus: typed events from stores and maintenance agents.
 *
 * Publishing never fails and never waits: a listener that throws is isolated
 * (its error is counted and kept, the other listeners still run). The HTTP
 * endpoint turns the bus into server-sent events; the CLI turns maintenance
 * progress into a progress bar.
 *
 * @example
 * ```ts
 * import { EventBus } from "@capsa/capsa";
 *
 * const bus = new EventBus();
 * const off = bus.subscribe((e) => console.log(e.type), { types: ["snapshot.written"] });
 * bus.publish({ type: "snapshot.written", at: Date.now(), storeId: "s", key: "k", highWaterMark: "", bytes: 1 });
 * off();
 * ```
 *
 * @module
 */

import type { DescriptorState } from "../format/descriptor.ts";

/** The health of a store (docs/DESIGN.md §6): `Ready`, `Degraded` or `Corrupted`. */
export type StoreState = DescriptorState;

/** Fields every event carries. */
export interface EventBase {
  /** When it happened, ms since the epoch. */
  at: number;
}

/** A store changed state. */
export interface StoreStateEvent extends EventBase {
  /** The event's type. */
  type: "store.state";
  /** The store. */
  storeId: string;
  /** The state before (`undefined` on open). */
  from: StoreState | undefined;
  /** The state now. */
  to: StoreState;
  /** Why. */
  reasons: string[];
}

/** Descriptor replicas were rewritten from a good one (or from the Recovery Kit). */
export interface DescriptorHealedEvent extends EventBase {
  /** The event's type. */
  type: "descriptor.healed";
  /** The store. */
  storeId: string;
  /** Where the rewritten replicas live. */
  replicas: string[];
}

/** An index snapshot was written to the Location. */
export interface SnapshotWrittenEvent extends EventBase {
  /** The event's type. */
  type: "snapshot.written";
  /** The store. */
  storeId: string;
  /** The snapshot's key. */
  key: string;
  /** The pack id it reaches. */
  highWaterMark: string;
  /** Its size. */
  bytes: number;
}

/** A pack volume was committed. */
export interface PackWrittenEvent extends EventBase {
  /** The event's type. */
  type: "pack.written";
  /** The store. */
  storeId: string;
  /** The pack id. */
  packId: string;
  /** Its size. */
  bytes: number;
  /** Blobs in it. */
  blobs: number;
  /** Manifests in it. */
  manifests: number;
}

/** A maintenance agent started (it holds the lease). */
export interface MaintenanceStartedEvent extends EventBase {
  /** The event's type. */
  type: "maintenance.started";
  /** The agent's kind, e.g. `"RebuildIndex"`. */
  agent: string;
  /** The store. */
  storeId: string;
  /** Who holds the lease. */
  holder: string;
}

/** A maintenance agent's progress (at least once a second while it runs). */
export interface MaintenanceProgressEvent extends EventBase {
  /** The event's type. */
  type: "maintenance.progress";
  /** The agent's kind. */
  agent: string;
  /** The store. */
  storeId: string;
  /** A snapshot of the agent's stats. */
  stats: Record<string, unknown>;
  /** Work done and total, when known (for progress bars). */
  done?: number;
  /** Total work, when known. */
  total?: number;
}

/** A maintenance agent finished. */
export interface MaintenanceCompletedEvent extends EventBase {
  /** The event's type. */
  type: "maintenance.completed";
  /** The agent's kind. */
  agent: string;
  /** The store. */
  storeId: string;
  /** The final stats. */
  stats: Record<string, unknown>;
}

/** A maintenance agent failed; the store is as it was before it ran. */
export interface MaintenanceFailedEvent extends EventBase {
  /** The event's type. */
  type: "maintenance.failed";
  /** The agent's kind. */
  agent: string;
  /** The store. */
  storeId: string;
  /** The error's code. */
  code: string;
  /** The error's message. */
  message: string;
}

/** Something an operator should know that is not an error. */
export interface WarningEvent extends EventBase {
  /** The event's type. */
  type: "warning";
  /** The store, when known. */
  storeId?: string;
  /** A stable code, e.g. `"lease_broken"`. */
  code: string;
  /** What happened. */
  message: string;
}

/** Every event capsa publishes. */
export type CapsaEvent =
  | StoreStateEvent
  | DescriptorHealedEvent
  | SnapshotWrittenEvent
  | PackWrittenEvent
  | MaintenanceStartedEvent
  | MaintenanceProgressEvent
  | MaintenanceCompletedEvent
  | MaintenanceFailedEvent
  | WarningEvent;

/** The type names of {@linkcode CapsaEvent}. */
export type CapsaEventType = CapsaEvent["type"];

/** A listener. */
export type EventListener = (event: CapsaEvent) => void;

/** Options of {@linkcode EventBus.subscribe}. */
export interface SubscribeOptions {
  /** Only these event types (default: all). */
  types?: readonly CapsaEventType[];
}

/**
 * A synchronous, in-process publish/subscribe bus.
 *
 * @example Collecting events in a test
 * ```ts
 * import { type CapsaEvent, EventBus } from "./events.ts";
 * const bus = new EventBus();
 * const seen: CapsaEvent[] = [];
 * bus.subscribe((e) => seen.push(e));
 * ```
 */
export class EventBus {
  #listeners = new Set<{ fn: EventListener; types: Set<string> | undefined }>();
  #listenerErrors: unknown[] = [];

  /**
   * Calls `fn` for every later event (of the chosen types).
   * @param fn The listener.
   * @param options Which types.
   * @returns A function that unsubscribes.
   */
  subscribe(fn: EventListener, options: SubscribeOptions = {}): () => void {
    const entry = { fn, types: options.types ? new Set<string>(options.types) : undefined };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Delivers an event to every matching listener, now.
   * @param event The event.
   */
  publish(event: CapsaEvent): void {
    for (const l of [...this.#listeners]) {
      if (l.types && !l.types.has(event.type)) continue;
      try {
        l.fn(event);
      } catch (e) {
        if (this.#listenerErrors.length < 100) this.#listenerErrors.push(e);
      }
    }
  }

  /** Errors thrown by listeners (the first 100), for diagnostics. @returns The errors. */
  listenerErrors(): readonly unknown[] {
    return this.#listenerErrors;
  }

  /** How many listeners are subscribed. @returns The count. */
  get listenerCount(): number {
    return this.#listeners.size;
  }
}
