/**
 * The maintenance routes: start a job (`POST /v1/maintenance/<kind>`, its
 * JSON body read by `maintenance/options.ts` through the job's factory),
 * list, watch and abort jobs; and the guard that refuses writes through the
 * app while one of its jobs holds the store. `http/app.ts` lists every route
 * and its answers; `http/jobs.ts` runs the jobs.
 *
 * @module
 */

import type { Hono } from "hono";
import { InvalidArgumentError, MaintenanceModeError } from "../../errors.ts";
import { readMaintenanceMode, type Store } from "../../store/store.ts";
import { HttpError } from "../errors.ts";
import type { JobRegistry, JobView } from "../jobs.ts";

/** The largest JSON body a maintenance request may have. */
const MAX_JSON_BODY = 256 * 1024;

async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  const tooLarge = () =>
    new HttpError("payload_too_large", `the JSON body must be at most ${MAX_JSON_BODY} bytes`);
  if (declared > MAX_JSON_BODY) throw tooLarge();
  let text = "";
  if (request.body) {
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const part of request.body) {
      size += part.length;
      if (size > MAX_JSON_BODY) throw tooLarge();
      parts.push(part);
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    text = new TextDecoder().decode(all);
  }
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`the body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError("the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * The guard of write routes: while a job of `jobs` runs, writes through this
 * app are refused with the maintenance mode the job set, like they would be
 * in any other process (reads still work).
 * @param store The store served.
 * @param jobs The app's jobs.
 * @returns A function that throws {@linkcode MaintenanceModeError} while a job runs.
 */
export function refuseWritesDuringJobs(store: Store, jobs: JobRegistry): () => Promise<void> {
  return async () => {
    const job = jobs.running();
    // Garbage collection works beside writers: it holds the lease, not the store.
    if (!job || job.agent === "GarbageCollect") return;
    const mode = await readMaintenanceMode(store.driver).catch(() => undefined);
    throw new MaintenanceModeError(mode?.mode ?? "offline", job.holder || job.agent);
  };
}

/**
 * Adds the maintenance routes to `app`.
 * @param app The app.
 * @param jobs The jobs they start and report on.
 */
export function maintenanceRoutes(app: Hono, jobs: JobRegistry): void {
  app.get("/v1/maintenance/jobs", (c) => c.json({ items: jobs.list() }));

  app.get("/v1/maintenance/jobs/:id", (c) => {
    const id = c.req.param("id");
    const view: JobView | undefined = jobs.get(id);
    if (!view) throw new HttpError("not_found", `no maintenance job ${JSON.stringify(id)}`);
    return c.json(view);
  });

  app.delete("/v1/maintenance/jobs/:id", async (c) => {
    const view = await jobs.abort(c.req.param("id"));
    return c.json(view, view.state === "running" ? 202 : 200);
  });

  app.post("/v1/maintenance/:kind", async (c) => {
    const kind = c.req.param("kind");
    if (!jobs.has(kind)) {
      throw new HttpError(
        "not_found",
        `no maintenance job kind "${kind}" (known: ${jobs.kinds.join(", ")})`,
      );
    }
    const job = await jobs.start(kind, await readJsonObject(c.req.raw));
    return c.json({ jobId: job.id }, 202, { Location: `/v1/maintenance/jobs/${job.id}` });
  });
}
