/**
 * `GET /v1/health`: 200 `{ ok: true }` while the process serves. It needs
 * no token: `http/app.ts` adds it before the token check.
 *
 * @module
 */

import type { Hono } from "hono";

/**
 * Adds the health route to `app`.
 * @param app The app.
 */
export function healthRoutes(app: Hono): void {
  app.get("/v1/health", (c) => c.json({ ok: true }));
}
