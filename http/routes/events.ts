/**
 * `GET /v1/events`: the bus as server-sent events, one per bus event
 * (`event: <type>`, `data: <the event as JSON>`), filtered by `?types=`; a
 * comment every `keepAliveMs` keeps idle connections open; a client that
 * falls 10,000 events behind gets `event: events.dropped` with the count it
 * missed. There is no replay: a client that reconnects sees new events only.
 *
 * @module
 */

import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { CapsaEvent, CapsaEventType, EventBus } from "../../store/events.ts";

/** Options of {@linkcode eventRoutes}. */
export interface EventRoutesOptions {
  /** When aborted, open streams end (so a server can shut down). */
  closing: AbortSignal | undefined;
  /** Milliseconds between keep-alive comments on an idle stream. */
  keepAliveMs: number;
}

/**
 * Adds the event stream route to `app`.
 * @param app The app.
 * @param bus The bus streamed.
 * @param options Shutdown signal and keep-alive period.
 */
export function eventRoutes(app: Hono, bus: EventBus, options: EventRoutesOptions): void {
  const { closing, keepAliveMs } = options;
  app.get("/v1/events", (c) => {
    const types = c.req.query("types")?.split(",").map((t) => t.trim()).filter((t) => t !== "");
    return streamSSE(c, async (stream) => {
      // Subscribe first, before any await: no event after the response is lost.
      const queue: CapsaEvent[] = [];
      let dropped = 0;
      let wake: (() => void) | undefined;
      const off = bus.subscribe((event) => {
        if (queue.length >= 10_000) dropped++;
        else queue.push(event);
        wake?.();
      }, types === undefined ? {} : { types: types as CapsaEventType[] });
      let open = true;
      const stop = () => {
        open = false;
        wake?.();
      };
      // On shutdown, also drop what the client has not read: a client that
      // stopped reading must not hold the server open.
      const shut = () => {
        stop();
        stream.abort();
      };
      stream.onAbort(stop);
      closing?.addEventListener("abort", shut, { once: true });
      if (closing?.aborted) open = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await stream.write(": capsa events\n\n");
        while (open && !stream.aborted) {
          if (dropped > 0) {
            const count = dropped;
            dropped = 0;
            await stream.writeSSE({ event: "events.dropped", data: JSON.stringify({ count }) });
            continue;
          }
          const event = queue.shift();
          if (event) {
            await stream.writeSSE({ event: event.type, data: JSON.stringify(event) });
            continue;
          }
          const idle = await new Promise<boolean>((resolve) => {
            wake = () => resolve(false);
            timer = setTimeout(() => resolve(true), keepAliveMs);
          });
          wake = undefined;
          clearTimeout(timer);
          if (idle && open) await stream.write(": keep-alive\n\n");
        }
      } finally {
        off();
        clearTimeout(timer);
        closing?.removeEventListener("abort", shut);
      }
    });
  });
}
