/**
 * The HTTP endpoint of a capsa store (Hono): objects (GET with `Range`,
 * streamed PUT, DELETE, listings, versions), status, maintenance jobs
 * (202 + job id, then live stats) and events as server-sent events.
 *
 * - {@linkcode createApp} builds the Hono app (test it with `app.request()`,
 *   no socket needed); its module doc lists every route.
 * - {@linkcode serve} binds it to a socket, on loopback unless a bearer token
 *   is given; this is what `capsa serve` runs.
 * - {@linkcode JobRegistry} runs maintenance agents as jobs; a new kind of job
 *   is one entry in a {@linkcode JobKinds} map.
 * - {@linkcode toHttpError} and {@linkcode ERROR_STATUS} turn errors into
 *   `{ code, message }` answers with the right status.
 *
 * Importing this module loads Hono; the rest of capsa does not.
 *
 * @example Serve a store on loopback and talk to it
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const server = serve(store, { port: 0, token: "s3cret" });
 * const headers = { Authorization: "Bearer s3cret" };
 * await fetch(`${server.url}/v1/objects/docs/a.txt`, { method: "PUT", body: "hi", headers })
 *   .then((r) => r.body?.cancel());
 * const res = await fetch(`${server.url}/v1/objects/docs/a.txt`, { headers });
 * assert.deepEqual(await res.text(), "hi");
 * await server.shutdown();
 * await store.close();
 * ```
 *
 * @module
 */

export { type AppOptions, createApp, type HttpApp } from "./app.ts";
export {
  ERROR_STATUS,
  HttpError,
  type HttpErrorOptions,
  MAINTENANCE_RETRY_AFTER_SECONDS,
  statusOf,
  toHttpError,
  TRANSIENT_RETRY_AFTER_SECONDS,
} from "./errors.ts";
export {
  DEFAULT_JOB_KINDS,
  type JobAgent,
  type JobFactory,
  type JobKinds,
  JobRegistry,
  type JobRegistryOptions,
  type JobState,
  type JobView,
  rebuildJob,
} from "./jobs.ts";
export { type CapsaServer, isLoopback, serve, type ServeOptions } from "./serve.ts";
