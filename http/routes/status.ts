/**
 * `GET /v1/status`: the store's status ({@linkcode Store.status}).
 *
 * @module
 */

import type { Hono } from "hono";
import type { Store } from "../../store/store.ts";

/**
 * Adds the status route to `app`.
 * @param app The app.
 * @param store The store served.
 */
export function statusRoutes(app: Hono, store: Store): void {
  app.get("/v1/status", async (c) => c.json(await store.status()));
}
