/**
 * A real S3-compatible server on loopback for tests and benchmarks.
 *
 * {@linkcode startS3Server} runs s3rver (npm, installed by
 * `npm ci --prefix tools/s3rver`) under Node with the middleware of
 * `tools/s3rver/server.cjs`, which closes s3rver's gaps: `If-None-Match: *`
 * (honoured per bucket, or ignored like a server without support),
 * `If-Match`, suffix ranges, atomic puts and byte-ordered listings.
 *
 * The server runs as a detached process: the test process holds no child
 * process, pipe or socket between calls, so Deno's resource and op sanitizers
 * stay satisfied when one server serves many tests. It exits by itself (and
 * removes its data) when the test process is gone.
 *
 * Requests are path-style only (`forcePathStyle`, which the `s3` driver picks
 * for loopback endpoints). Credentials: {@linkcode S3_TEST_CREDENTIALS}.
 *
 * @example
 * ```ts ignore
 * import { startS3Server } from "./s3_server.ts";
 *
 * const server = await startS3Server({ createOnly: true });
 * await server.createBucket("test-bucket");
 * // … open s3://test-bucket?endpoint=${server.endpoint} …
 * await server.kill(); // like a crash: connections fail
 * await server.restart(); // same port, same data
 * await server.stop(); // for good; the data is removed
 * ```
 *
 * @module
 */

/** The key pair the test server accepts (besides s3rver's own S3RVER/S3RVER). */
export const S3_TEST_CREDENTIALS: { accessKeyId: string; secretAccessKey: string } = {
  accessKeyId: "capsa-test-key",
  secretAccessKey: "capsa-test-secret",
};

/** Options of {@linkcode startS3Server}. */
export interface S3ServerOptions {
  /** Whether buckets honour `If-None-Match: *` on PUT (a bucket can override it). */
  createOnly: boolean;
  /** Delay added to every S3 request, in ms (a latency proxy on loopback). */
  latencyMs?: number;
}

/** A fault the server injects into the next S3 requests. */
export interface S3Fault {
  /** How many requests it hits (default 1). */
  count?: number;
  /** Drop the connection without an answer. */
  reset?: boolean;
  /** Carry the request out first, then fail its answer (a lost acknowledgement). */
  after?: boolean;
  /** The HTTP status to answer (default 503). */
  status?: number;
  /** The S3 error code to answer (default `"SlowDown"`). */
  code?: string;
}

/** A running test server; see {@linkcode startS3Server}. */
export interface S3Server {
  /** The base URL, `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** The loopback port; it stays the same across {@linkcode S3Server.restart}. */
  readonly port: number;
  /** The data directory. */
  readonly dir: string;
  /**
   * Creates a bucket (directly in the server, no signing needed).
   * @param name The bucket's name.
   * @param options `createOnly` to override the server's default for it.
   */
  createBucket(name: string, options?: { createOnly?: boolean }): Promise<void>;
  /**
   * Deletes a bucket and everything in it.
   * @param name The bucket's name.
   */
  deleteBucket(name: string): Promise<void>;
  /**
   * Sets the delay added to every S3 request from now on.
   * @param ms The delay, in ms.
   */
  setLatency(ms: number): Promise<void>;
  /**
   * Makes the next S3 requests fail.
   * @param fault What to answer, and how many times.
   */
  injectFault(fault: S3Fault): Promise<void>;
  /** Drops every fault not yet used. */
  clearFaults(): Promise<void>;
  /** Kills the server like a crash; its port and data are kept for {@linkcode S3Server.restart}. */
  kill(): Promise<void>;
  /** Starts the server again on the same port with the same data (killing it first if it runs). */
  restart(): Promise<void>;
  /** Kills the server for good and removes its data. */
  stop(): Promise<void>;
}

const SERVER_JS = new URL("../tools/s3rver/server.cjs", import.meta.url);

function pathOf(url: URL): string {
  return decodeURIComponent(url.pathname);
}

interface Launch {
  port: number;
  pid: number;
}

async function launch(config: Record<string, unknown>): Promise<Launch> {
  const serverJs = pathOf(SERVER_JS);
  try {
    await Deno.stat(new URL("node_modules/s3rver/package.json", SERVER_JS));
  } catch {
    throw new Error(
      "the S3 test server is not installed: run `npm ci --prefix tools/s3rver`",
    );
  }
  // --openssl-legacy-provider: s3rver encrypts continuation tokens with DES,
  // which Node 17+ refuses without it (paginated listings would answer 500).
  const out = await new Deno.Command("node", {
    args: ["--openssl-legacy-provider", serverJs, "--daemon", JSON.stringify(config)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || text === "") {
    throw new Error(
      `the S3 test server did not start: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  const line = JSON.parse(text.split("\n").pop()!) as Launch;
  return line;
}

async function control(endpoint: string, method: string, path: string): Promise<void> {
  // No pooled connection: the server may have been killed since the last call.
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(`${endpoint}/__harness/${path}`, { method, client });
    const body = await res.text();
    if (!res.ok) throw new Error(`S3 test server: ${method} ${path}: ${res.status} ${body}`);
  } finally {
    client.close();
  }
}

/** Resolves once nothing accepts connections on the port any more. */
async function waitClosed(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      return;
    }
    conn.close();
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the S3 test server on port ${port} did not stop`);
}

/**
 * Starts s3rver on a free loopback port with its gaps closed, and waits until
 * it answers. Its data lives in a fresh temporary directory.
 *
 * @param options Whether buckets honour create-only puts by default, and an
 *   added latency.
 * @returns The running server.
 *
 * @example
 * ```ts ignore
 * import { startS3Server } from "./s3_server.ts";
 * const server = await startS3Server({ createOnly: false, latencyMs: 30 });
 * await server.createBucket("slow");
 * await server.stop();
 * ```
 */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const dir = await Deno.makeTempDir({ prefix: "capsa-s3rver-" });
  const buckets: Record<string, boolean> = {};
  let latencyMs = options.latencyMs ?? 0;
  const config = (port: number) => ({
    dir: `${dir}/data`,
    logFile: `${dir}/server.log`,
    port,
    createOnly: options.createOnly,
    buckets,
    latencyMs,
    ownerPid: Deno.pid,
    removeOnOrphan: dir,
    ...S3_TEST_CREDENTIALS,
  });
  let running: Launch | undefined;
  try {
    running = await launch(config(0));
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const port = running.port;
  const endpoint = `http://127.0.0.1:${port}`;
  await control(endpoint, "GET", "health");

  const kill = async () => {
    if (running === undefined) return;
    try {
      Deno.kill(running.pid, "SIGKILL");
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    running = undefined;
    await waitClosed(port);
  };

  return {
    endpoint,
    port,
    dir,
    async createBucket(name, bucketOptions = {}) {
      const createOnly = bucketOptions.createOnly ?? options.createOnly;
      await control(
        endpoint,
        "PUT",
        `buckets/${encodeURIComponent(name)}?createOnly=${createOnly}`,
      );
      buckets[name] = createOnly;
    },
    async deleteBucket(name) {
      await control(endpoint, "DELETE", `buckets/${encodeURIComponent(name)}`);
      delete buckets[name];
    },
    async setLatency(ms) {
      await control(endpoint, "PUT", `latency?ms=${ms}`);
      latencyMs = ms;
    },
    async injectFault(fault) {
      const q = new URLSearchParams({ count: String(fault.count ?? 1) });
      if (fault.reset) q.set("reset", "true");
      if (fault.after) q.set("after", "true");
      if (fault.status !== undefined) q.set("status", String(fault.status));
      if (fault.code !== undefined) q.set("code", fault.code);
      await control(endpoint, "PUT", `fault?${q}`);
    },
    async clearFaults() {
      await control(endpoint, "DELETE", "fault");
    },
    kill,
    async restart() {
      await kill();
      running = await launch(config(port));
      await control(endpoint, "GET", "health");
    },
    async stop() {
      await kill();
      await Deno.remove(dir, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    },
  };
}
