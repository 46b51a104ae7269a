/**
 * `serve()`: the HTTP endpoint of a store on a real socket (what
 * `capsa serve LOCATION [--listen 127.0.0.1:8787] [--token-file FILE]` runs).
 *
 * It binds explicitly (127.0.0.1 unless told otherwise: `Deno.serve` alone
 * would listen on every interface) and refuses to listen beyond loopback
 * without a bearer token. Shutting down (the `signal`, or `shutdown()`)
 * ends open event streams, aborts running maintenance jobs (their agents stop
 * cleanly and release the lease), lets requests in flight finish, then
 * resolves `finished`. The store stays open: closing it is the caller's call.
 *
 * @example Serve a store until Ctrl-C
 * ```ts ignore
 * import { serve } from "@capsa/capsa/http";
 * import { openStore } from "@capsa/capsa";
 * import { LocalFsDriver } from "@capsa/capsa/drivers/localfs";
 *
 * const store = await openStore(new LocalFsDriver("/srv/capsa"));
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGINT", () => stop.abort());
 * const server = serve(store, {
 *   port: 8787,
 *   signal: stop.signal,
 *   onListen: ({ hostname, port }) => console.error(`listening on http://${hostname}:${port}/`),
 * });
 * await server.finished;
 * await store.close();
 * ```
 *
 * @module
 */

import { InvalidArgumentError } from "../errors.ts";
import type { EventBus } from "../store/events.ts";
import type { Store } from "../store/store.ts";
import { createApp } from "./app.ts";
import { type JobKinds, JobRegistry } from "./jobs.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /**
   * The address to bind (default `"127.0.0.1"`). Anything but a loopback
   * address (`127.0.0.0/8`, `::1`, `localhost`) needs a `token`.
   */
  hostname?: string;
  /** The TCP port (default 8787; 0 picks a free one, see `addr`). */
  port?: number;
  /**
   * The bearer token clients must send (`Authorization: Bearer TOKEN`) on
   * every route but `/v1/health`. Pass it already trimmed (e.g. of a token
   * file's final newline).
   */
  token?: string;
  /** Stops the server when aborted (same as `shutdown()`). */
  signal?: AbortSignal;
  /** Called once listening, with the bound address (default: print nothing). */
  onListen?: (addr: Deno.NetAddr) => void;
  /** The bus streamed by `/v1/events` and given to agents (default: the store's). */
  bus?: EventBus;
  /** The kinds of maintenance job offered (default: `DEFAULT_JOB_KINDS`). */
  jobKinds?: JobKinds;
  /** The most bytes of a batch upload's tar body (default 1 GiB; see `createApp`). */
  batchMaxBytes?: number;
  /** The most entries of a batch upload's tar (default 100,000; see `createApp`). */
  batchMaxEntries?: number;
}

/** A running server, from {@linkcode serve}. */
export interface CapsaServer {
  /** The bound address (its port is the real one when `port` was 0). */
  readonly addr: Deno.NetAddr;
  /** The base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  /** Resolves once the server has stopped and every job it ran has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops the server: ends event streams, aborts jobs, waits for requests in flight.
   * @returns {@linkcode CapsaServer.finished}.
   */
  shutdown(): Promise<void>;
}

/**
 * Whether a hostname is a loopback address (reachable from this host only).
 *
 * @param hostname A hostname or IP address, IPv6 with or without brackets.
 * @returns `true` for `localhost`, `127.0.0.0/8`, `::1` and `::ffff:127.x.y.z`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback } from "@capsa/capsa/http";
 * assert.deepEqual([isLoopback("127.0.0.1"), isLoopback("0.0.0.0"), isLoopback("[::1]")], [true, false, true]);
 * ```
 */
export function isLoopback(hostname: string): boolean {
  const h = hostname.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && v4.slice(1).every((o) => Number(o) <= 255) && v4[1] === "127";
}

/**
 * Serves a store's HTTP endpoint (see `createApp` in `./app.ts` for the
 * routes) on a socket.
 *
 * @param store The store to serve; it stays open after shutdown.
 * @param options Where to listen, the bearer token, the shutdown signal.
 * @returns The running server.
 * @throws {InvalidArgumentError} for a non-loopback `hostname` without a
 *   `token`, an empty token, or a port outside 0–65535.
 *
 * @example Serve on a free loopback port, then stop
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "@capsa/capsa/http";
 * import { initStore } from "@capsa/capsa";
 * import { MemoryDriver } from "@capsa/capsa";
 *
 * const { store } = await initStore(new MemoryDriver());
 * const server = serve(store, { port: 0, token: "s3cret" });
 * const res = await fetch(`${server.url}/v1/health`);
 * assert.deepEqual(await res.json(), { ok: true });
 * await server.shutdown();
 * await store.close();
 * ```
 */
export function serve(store: Store, options: ServeOptions = {}): CapsaServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8787;
  const { token } = options;
  if (token === "") throw new InvalidArgumentError("the bearer token must not be empty");
  if (token === undefined && !isLoopback(hostname)) {
    throw new InvalidArgumentError(
      `refusing to listen on ${hostname} without a bearer token: ` +
        "give one (--token-file FILE) or listen on 127.0.0.1",
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`port must be an integer from 0 to 65535, got ${port}`);
  }

  const bus = options.bus ?? store.bus;
  const jobs = new JobRegistry(store, {
    bus,
    ...(options.jobKinds === undefined ? {} : { kinds: options.jobKinds }),
  });
  const stop = new AbortController();
  const app = createApp(store, {
    bus,
    jobs,
    signal: stop.signal,
    ...(token === undefined ? {} : { token }),
    ...(options.batchMaxBytes === undefined ? {} : { batchMaxBytes: options.batchMaxBytes }),
    ...(options.batchMaxEntries === undefined ? {} : { batchMaxEntries: options.batchMaxEntries }),
  });
  const server = Deno.serve({
    hostname,
    port,
    signal: stop.signal,
    onListen: (addr) => options.onListen?.(addr),
  }, app.fetch);

  let jobsClosed: Promise<void> = Promise.resolve();
  const onAbort = () => {
    jobsClosed = jobs.close();
    if (!stop.signal.aborted) stop.abort();
  };
  stop.signal.addEventListener("abort", onAbort, { once: true });
  const external = options.signal;
  const forward = () => stop.abort();
  external?.addEventListener("abort", forward, { once: true });
  if (external?.aborted) stop.abort();

  const finished = server.finished.then(async () => {
    external?.removeEventListener("abort", forward);
    await jobsClosed;
  });
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    addr,
    url: `http://${host}:${addr.port}`,
    finished,
    shutdown() {
      stop.abort();
      return finished;
    },
  };
}
