/**
 * The `s3` driver: a Location in an S3 bucket (AWS S3 or any S3-compatible
 * server), through `@aws-sdk/client-s3`.
 *
 * A Location URL names the bucket, an optional key prefix and where the
 * service is:
 *
 * ```
 * s3://bucket/prefix?endpoint=https://minio.example:9000&region=eu-west-1&path-style=true&create-only=probe
 * ```
 *
 * - `endpoint`: the service's base URL (`http:` or `https:`, no path);
 *   default AWS S3. `region`: default from the SDK's chain (`AWS_REGION`,
 *   the shared config), or `us-east-1` with an `endpoint`. `path-style`:
 *   `true`/`false`; default `true` for `localhost` and IP-address endpoints.
 *   `create-only`: `probe` (default), `true` or `false`, see below.
 * - Credentials never come from the URL: a URL with a user or password is
 *   refused. They come from the SDK's standard chain (`AWS_ACCESS_KEY_ID`,
 *   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, then profiles, SSO, the
 *   instance role…) and are never logged; {@linkcode S3Driver.location}
 *   prints no secret.
 * - Every key is stored under the prefix (`prefix/` + key); listings strip it.
 *
 * Create-only puts use `If-None-Match: *`. Whether the server honours it is
 * probed at open (`create-only=probe`: put a probe key twice, the second put
 * must be refused with 412, then delete it) or set by the caller. Where it is
 * not honoured, {@linkcode DriverCapabilities.createOnly} is `false` and
 * `put(key, bytes, { ifAbsent: true })` checks with a HEAD first: it refuses a
 * key it can see, but two racing writers can both win (the driver contract
 * allows this; callers needing exclusion use their documented fallback).
 *
 * Throttling (429, 503 SlowDown), 5xx answers, timeouts and connection errors
 * are retried with exponential backoff and full jitter, up to
 * {@linkcode S3RetryOptions.maxAttempts} attempts (default 5), then surface as
 * {@linkcode TransientError} with the last error as `cause`. The SDK's own
 * retries are off. Other failures map to the contract's typed errors.
 *
 * @example Opening a store's Location on a local S3-compatible server
 * ```ts ignore
 * import { openS3 } from "./driver.ts";
 *
 * // AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set in the environment.
 * const driver = await openS3("s3://backups/capsa?endpoint=http://127.0.0.1:9000");
 * console.log(driver.location, driver.capabilities.createOnly);
 * await driver.put("packs/0001", new Uint8Array([1, 2, 3]));
 * await driver.close();
 * ```
 *
 * @module
 */

import {
  CreateBucketCommand,
  type CreateBucketCommandInput,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { CapsaError } from "../../errors.ts";
import {
  ClosedError,
  compareKeys,
  type Driver,
  type DriverCapabilities,
  InvalidArgumentError,
  InvalidKeyError,
  type ListOptions,
  MAX_KEY_BYTES,
  NotFoundError,
  type ObjectInfo,
  PermissionDeniedError,
  PreconditionFailedError,
  type PutOptions,
  TransientError,
  validateKey,
  validatePrefix,
  validateRange,
} from "../driver.ts";

export type { Driver, DriverCapabilities, ListOptions, ObjectInfo, PutOptions } from "../driver.ts";

/** How create-only puts are decided: probed at open, or set by the caller. */
export type S3CreateOnlyMode = "probe" | boolean;

/** The retry policy of {@linkcode S3Driver}: exponential backoff with full jitter. */
export interface S3RetryOptions {
  /** Attempts per operation, the first included (default 5, at least 1). */
  maxAttempts?: number;
  /** The backoff cap before the first retry, in ms (default 100). */
  baseDelayMs?: number;
  /** The largest backoff cap, in ms (default 5000). */
  maxDelayMs?: number;
}

/** What {@linkcode S3Options.onRetry} is told before each backoff. */
export interface S3RetryEvent {
  /** The driver operation, e.g. `"get"`, `"put"`, `"list"`. */
  operation: string;
  /** The key (or listing prefix) concerned, without the Location prefix. */
  key: string;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** How long the driver waits before the next attempt. */
  delayMs: number;
  /** The error of the failed attempt. */
  error: unknown;
}

/** Where an S3 Location is: what {@linkcode parseS3Url} reads from a URL. */
export interface S3Location {
  /** The bucket's name. */
  bucket: string;
  /** The key prefix of the Location: `""` or a path ending with `/`. */
  prefix?: string;
  /** The service's base URL, e.g. `http://127.0.0.1:9000`; AWS S3 when absent. */
  endpoint?: string;
  /** The signing region. */
  region?: string;
  /** Address buckets in the path rather than the host name. */
  forcePathStyle?: boolean;
  /** Create-only puts: `"probe"` (default), `true` (trust) or `false` (HEAD check). */
  createOnly?: S3CreateOnlyMode;
}

/** Options of {@linkcode openS3} and {@linkcode S3Driver}, besides the Location. */
export interface S3DriverOptions {
  /**
   * {@linkcode openS3} creates the bucket if it does not exist (default
   * `false`: a missing bucket is an {@linkcode InvalidArgumentError}). The
   * prefix needs no creating.
   */
  create?: boolean;
  /** Create-only puts: `"probe"` (default), `true` (trust) or `false` (HEAD check). */
  createOnly?: S3CreateOnlyMode;
  /** The retry policy. */
  retry?: S3RetryOptions;
  /** Keys asked per ListObjectsV2 page, 1 to 1000 (default 1000). */
  pageSize?: number;
  /** Give up connecting after this long, in ms (default 5000); retried. */
  connectTimeoutMs?: number;
  /** Give up on a socket idle this long, in ms (default 30000); retried. */
  idleTimeoutMs?: number;
  /**
   * Called before each backoff (e.g. to log it). The next attempt waits for
   * a returned promise.
   */
  onRetry?: (event: S3RetryEvent) => void | Promise<void>;
}

/** A Location and the driver's options together, as {@linkcode S3Driver} takes them. */
export type S3Options = S3Location & S3DriverOptions;

const URL_PARAMS = ["endpoint", "region", "path-style", "create-only"] as const;
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
import { PROBE_PREFIX as PROBE_DIR } from "../../layout.ts";
const encoder = new TextEncoder();

function invalid(message: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(message, cause === undefined ? {} : { cause });
}

function checkBucket(bucket: string): void {
  if (
    !BUCKET_RE.test(bucket) || bucket.includes("..") || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)
  ) {
    throw invalid(
      `invalid S3 bucket name ${JSON.stringify(bucket)}: 3 to 63 characters, ` +
        "lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit",
    );
  }
}

/** Normalises a Location prefix: no leading `/`, whole segments, `""` or ending with `/`. */
function normalisePrefix(prefix: string): string {
  let p = prefix.replace(/^\/+/, "");
  if (p.endsWith("/")) p = p.slice(0, -1);
  if (p === "") return "";
  try {
    validateKey(p);
  } catch (e) {
    if (e instanceof InvalidKeyError) throw invalid(`invalid S3 prefix: ${e.reason}`, e);
    throw e;
  }
  return p + "/";
}

function normaliseEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (e) {
    throw invalid("the S3 endpoint is not a URL", e);
  }
  if (url.username !== "" || url.password !== "") {
    throw invalid(
      "the S3 endpoint must not carry credentials: set AWS_ACCESS_KEY_ID and " +
        "AWS_SECRET_ACCESS_KEY in the environment instead",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(`the S3 endpoint must be http: or https:, got ${url.protocol}`);
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    throw invalid(`the S3 endpoint must be a bare origin such as ${url.origin}`);
  }
  return url.origin;
}

function isLoopbackOrIp(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === "localhost" || host.endsWith(".localhost") || host.startsWith("[") ||
    /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

function parseBool(name: string, value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw invalid(`S3 URL parameter ${name} must be true or false, got ${JSON.stringify(value)}`);
}

/**
 * Parses an S3 Location URL,
 * `s3://bucket/prefix?endpoint=…&region=…&path-style=true|false&create-only=probe|true|false`.
 *
 * A URL with a user name or password is refused (credentials come from the
 * environment only), so are a port on the bucket, a fragment, an unknown or
 * repeated parameter and a malformed value. Error messages never repeat the
 * URL, so they cannot leak a secret pasted into it.
 *
 * @param url The Location URL.
 * @returns The Location it names; absent parameters stay absent.
 * @throws {InvalidArgumentError} when the URL is malformed or not `s3:`.
 *
 * @example Reading a Location URL
 * ```ts
 * import { parseS3Url } from "./driver.ts";
 *
 * const loc = parseS3Url("s3://backups/capsa/main?endpoint=http://127.0.0.1:9000&region=eu-west-1");
 * console.log(loc.bucket, loc.prefix, loc.endpoint); // "backups" "capsa/main/" "http://127.0.0.1:9000"
 * ```
 */
export function parseS3Url(url: string | URL): S3Location {
  const raw = typeof url === "string" ? url : url.href;
  // The URL parser resolves "." and ".." segments silently; a Location that
  // names one is refused instead, like a key that does.
  const rawPath = raw.replace(/^[a-z0-9+.-]*:\/\/[^/?#]*/i, "").split(/[?#]/)[0] ?? "";
  if (rawPath.split("/").some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg))) {
    throw invalid("an S3 Location URL must not contain '.' or '..' path segments");
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch (e) {
    throw invalid("the S3 Location is not a URL (expected s3://bucket/prefix?…)", e);
  }
  if (u.protocol !== "s3:") {
    throw invalid(`an S3 Location URL starts with s3://, not ${u.protocol}//`);
  }
  if (u.username !== "" || u.password !== "") {
    throw invalid(
      "an S3 Location URL must not carry credentials: set AWS_ACCESS_KEY_ID and " +
        "AWS_SECRET_ACCESS_KEY (or a profile) in the environment instead",
    );
  }
  if (u.hash !== "") throw invalid("an S3 Location URL has no #fragment");
  if (u.port !== "") {
    throw invalid("an S3 Location URL has no port; put the service in ?endpoint=http://host:port");
  }
  if (u.hostname === "") throw invalid("an S3 Location URL names a bucket: s3://bucket/prefix");
  checkBucket(u.hostname);

  let path: string;
  try {
    path = u.pathname.split("/").map(decodeURIComponent).join("/");
  } catch (e) {
    throw invalid("the S3 prefix is not valid percent-encoding", e);
  }
  const location: S3Location = { bucket: u.hostname, prefix: normalisePrefix(path) };

  const seen = new Set<string>();
  for (const [name, value] of u.searchParams) {
    if (!(URL_PARAMS as readonly string[]).includes(name)) {
      throw invalid(
        `unknown S3 URL parameter ${JSON.stringify(name)} (known: ${URL_PARAMS.join(", ")})`,
      );
    }
    if (seen.has(name)) throw invalid(`S3 URL parameter ${name} is given twice`);
    seen.add(name);
    switch (name) {
      case "endpoint":
        location.endpoint = normaliseEndpoint(value);
        break;
      case "region":
        if (!REGION_RE.test(value)) {
          throw invalid(`invalid S3 region ${JSON.stringify(value)}`);
        }
        location.region = value;
        break;
      case "path-style":
        location.forcePathStyle = parseBool(name, value);
        break;
      case "create-only":
        location.createOnly = value === "probe" ? "probe" : parseBool(name, value);
        break;
    }
  }
  return location;
}

// ---------------------------------------------------------------------------
// Error classification

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
}

function shape(e: unknown): SdkErrorShape {
  return typeof e === "object" && e !== null ? e as SdkErrorShape : {};
}

function httpStatus(e: unknown): number | undefined {
  const status = shape(e).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

function errorName(e: unknown): string {
  const name = shape(e).name;
  return typeof name === "string" ? name : "";
}

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "ENOTCONN",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);
const RETRYABLE_NAMES = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequests",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "InternalError",
  "ServiceUnavailable",
  "ConditionalRequestConflict",
  "OperationAborted",
]);
const RETRYABLE_MESSAGE =
  /socket hang up|ECONNRESET|ECONNREFUSED|EPIPE|connection (?:reset|refused|closed|error)|other side closed|premature close|timed? ?out|network error|aborted/i;

/** The network-level code of an error or of its causes, e.g. `"ECONNRESET"`. */
function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur !== undefined && depth < 5; depth++) {
    const code = shape(cur).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
    cur = shape(cur).cause;
  }
  return undefined;
}

function isDenoError(e: unknown, names: string[]): boolean {
  const errors = (globalThis as { Deno?: { errors?: Record<string, unknown> } }).Deno?.errors;
  if (errors === undefined) return false;
  return names.some((n) => {
    const cls = errors[n];
    return typeof cls === "function" && e instanceof (cls as new () => Error);
  });
}

/** Whether another attempt of the same request can succeed. */
function isRetryable(e: unknown): boolean {
  if (e instanceof TransientError) return true;
  if (e instanceof CapsaError) return false;
  const status = httpStatus(e);
  const name = errorName(e);
  if (status !== undefined) {
    if (status === 501 || name === "NotImplemented") return false; // asking again will not help
    return status >= 500 || status === 429 || status === 408 || RETRYABLE_NAMES.has(name);
  }
  if (networkCode(e) !== undefined || RETRYABLE_NAMES.has(name)) return true;
  if (
    isDenoError(e, [
      "ConnectionReset",
      "ConnectionRefused",
      "ConnectionAborted",
      "BrokenPipe",
      "TimedOut",
      "UnexpectedEof",
      "NotConnected",
    ])
  ) return true;
  const message = shape(e).message;
  return typeof message === "string" && RETRYABLE_MESSAGE.test(message);
}

/** Whether a failed request surely never reached the server (so it changed nothing). */
function neverSent(e: unknown): boolean {
  return networkCode(e) === "ECONNREFUSED" || isDenoError(e, ["ConnectionRefused"]);
}

function describe(e: unknown): string {
  const status = httpStatus(e);
  const name = errorName(e) || "Error";
  const message = shape(e).message;
  const code = networkCode(e);
  return `${name}${status === undefined ? "" : ` (HTTP ${status})`}${code ? ` [${code}]` : ""}` +
    (typeof message === "string" && message !== "" && message !== name ? `: ${message}` : "");
}

function retryAfterMs(e: unknown): number | undefined {
  const value = shape(e).$response?.headers?.["retry-after"];
  if (value === undefined) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function positiveInt(name: string, value: number | undefined, fallback: number, max = Infinity) {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw invalid(`${name} must be an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw invalid(`${name} must be a non-negative number, got ${value}`);
  }
  return value;
}

/** An environment variable, or undefined when unset or not permitted (never prompts). */
function readEnv(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Reads a GET's body into a plain `Uint8Array` over exactly its bytes (the
 * SDK may hand back a Buffer from a shared pool).
 */
async function readBody(
  body: { transformToByteArray(): Promise<Uint8Array> } | undefined,
  key: string,
): Promise<Uint8Array> {
  if (body === undefined) throw new TransientError(`S3 GET of "${key}" returned no body`);
  const bytes = await body.transformToByteArray();
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes);
}

// ---------------------------------------------------------------------------
// The driver

/**
 * A {@linkcode Driver} over one bucket and key prefix of an S3-compatible
 * service. Open it with {@linkcode openS3}, which probes create-only support;
 * the constructor never sends a request, so it needs `createOnly` decided.
 *
 * @example Creating a driver whose capability is known (no request is sent)
 * ```ts
 * import { S3Driver } from "./driver.ts";
 *
 * const driver = new S3Driver({
 *   bucket: "backups",
 *   prefix: "capsa/",
 *   endpoint: "http://127.0.0.1:9000",
 *   createOnly: false,
 *   retry: { maxAttempts: 8 },
 * });
 * console.log(driver.location); // "s3://backups/capsa/?endpoint=http://127.0.0.1:9000"
 * await driver.close();
 * ```
 */
export class S3Driver implements Driver {
  /** Always `"s3"`. */
  readonly kind = "s3";
  /** The Location as a URL, without credentials (there are none in it). */
  readonly location: string;
  /** The bucket. */
  readonly bucket: string;
  /** The key prefix every key is stored under (`""` or ending with `/`). */
  readonly prefix: string;
  #client: S3Client;
  #capabilities: DriverCapabilities;
  #closed = false;
  #maxAttempts: number;
  #baseDelayMs: number;
  #maxDelayMs: number;
  #pageSize: number;
  #onRetry: ((event: S3RetryEvent) => void | Promise<void>) | undefined;

  /**
   * Creates the driver without sending any request.
   *
   * @param options The Location and the driver's options; `createOnly` must
   *   be `true` or `false` (`"probe"` needs {@linkcode openS3}).
   * @throws {InvalidArgumentError} for a malformed option.
   */
  constructor(options: S3Options) {
    checkBucket(options.bucket);
    if (options.createOnly === "probe" || options.createOnly === undefined) {
      throw invalid("new S3Driver() needs createOnly true or false; openS3() probes it");
    }
    this.bucket = options.bucket;
    this.prefix = normalisePrefix(options.prefix ?? "");
    const endpoint = options.endpoint === undefined
      ? undefined
      : normaliseEndpoint(options.endpoint);
    if (options.region !== undefined && !REGION_RE.test(options.region)) {
      throw invalid(`invalid S3 region ${JSON.stringify(options.region)}`);
    }
    const retry = options.retry ?? {};
    this.#maxAttempts = positiveInt("retry.maxAttempts", retry.maxAttempts, 5, 100);
    this.#baseDelayMs = nonNegative("retry.baseDelayMs", retry.baseDelayMs, 100);
    this.#maxDelayMs = nonNegative("retry.maxDelayMs", retry.maxDelayMs, 5000);
    this.#pageSize = positiveInt("pageSize", options.pageSize, 1000, 1000);
    this.#onRetry = options.onRetry;
    const forcePathStyle = options.forcePathStyle ??
      (endpoint !== undefined && isLoopbackOrIp(endpoint));
    // With a custom endpoint the region rarely matters, so fall back to
    // us-east-1 rather than fail; against AWS the SDK's chain decides.
    const region = options.region ??
      (endpoint === undefined
        ? undefined
        : readEnv("AWS_REGION") ?? readEnv("AWS_DEFAULT_REGION") ?? "us-east-1");

    const config: S3ClientConfig = {
      forcePathStyle,
      maxAttempts: 1, // this driver owns retries
      // The defaults make the SDK stream bodies with aws-chunked framing,
      // which some S3-compatible servers store verbatim (silent corruption).
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: positiveInt("connectTimeoutMs", options.connectTimeoutMs, 5000),
        socketTimeout: positiveInt("idleTimeoutMs", options.idleTimeoutMs, 30_000),
      },
    };
    if (endpoint !== undefined) config.endpoint = endpoint;
    if (region !== undefined) config.region = region;
    this.#client = new S3Client(config);
    this.#capabilities = { createOnly: options.createOnly, durable: true };

    const params: string[] = [];
    if (endpoint !== undefined) params.push(`endpoint=${endpoint}`);
    if (options.region !== undefined) params.push(`region=${options.region}`);
    if (options.forcePathStyle !== undefined) params.push(`path-style=${forcePathStyle}`);
    const shownPrefix = this.prefix.split("/").map(encodeURIComponent).join("/");
    this.location = `s3://${this.bucket}/${shownPrefix}` +
      (params.length > 0 ? `?${params.join("&")}` : "");
  }

  /** `createOnly` as probed or set; S3 writes are durable once acknowledged. */
  get capabilities(): DriverCapabilities {
    return this.#capabilities;
  }

  #open(): void {
    if (this.#closed) throw new ClosedError(`driver ${this.location}`);
  }

  /** The full S3 key of a driver key, checked. */
  #key(key: string): string {
    validateKey(key);
    const full = this.prefix + key;
    if (encoder.encode(full).length > MAX_KEY_BYTES) {
      throw new InvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes with the Location prefix`);
    }
    return full;
  }

  /** Maps an SDK (or network) error that is not retried to the contract's errors. */
  #map(e: unknown, operation: string, key: string): Error {
    if (e instanceof CapsaError) return e;
    const status = httpStatus(e);
    const name = errorName(e);
    if (name === "NoSuchBucket") {
      return invalid(`the S3 bucket "${this.bucket}" does not exist (${this.location})`, e);
    }
    if (status === 404 || name === "NoSuchKey" || name === "NotFound") {
      return new NotFoundError(key, { cause: e });
    }
    if (status === 412 || name === "PreconditionFailed") {
      return new PreconditionFailedError(key, { cause: e });
    }
    if (
      status === 401 || status === 403 || name === "CredentialsProviderError" ||
      isDenoError(e, ["NotCapable", "PermissionDenied"])
    ) {
      return new PermissionDeniedError(key, operation, { cause: e });
    }
    const message = shape(e).message;
    if (typeof message === "string" && /region is missing/i.test(message)) {
      return invalid(
        "no S3 region: add ?region=… to the Location URL or set AWS_REGION",
        e,
      );
    }
    return new CapsaError(
      "s3_error",
      `S3 ${operation} of "${key}" failed: ${describe(e)}`,
      false,
      { cause: e },
    );
  }

  /**
   * Runs one request with the retry policy.
   * @param uncertain Told of each failed attempt that may have reached the server.
   */
  async #retry<T>(
    operation: string,
    key: string,
    attempt: () => Promise<T>,
    uncertain?: () => void,
  ): Promise<T> {
    for (let n = 1;; n++) {
      this.#open();
      try {
        return await attempt();
      } catch (e) {
        if (!isRetryable(e)) throw this.#map(e, operation, key);
        if (!neverSent(e)) uncertain?.();
        if (n >= this.#maxAttempts) {
          throw new TransientError(
            `S3 ${operation} of "${key}" failed after ${n} attempt${n === 1 ? "" : "s"}: ` +
              describe(e),
            { cause: e },
          );
        }
        const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (n - 1));
        let delayMs = Math.floor(Math.random() * cap);
        const hinted = retryAfterMs(e);
        if (hinted !== undefined) delayMs = Math.min(this.#maxDelayMs, Math.max(delayMs, hinted));
        await this.#onRetry?.({ operation, key, attempt: n, delayMs, error: e });
        await sleep(delayMs);
      }
    }
  }

  /**
   * Reads a whole object.
   * @param key The object's key.
   * @returns Its bytes.
   * @throws {NotFoundError} when it does not exist.
   */
  async get(key: string): Promise<Uint8Array> {
    this.#open();
    const Key = this.#key(key);
    return await this.#retry("get", key, async () => {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      const bytes = await readBody(out.Body, key);
      if (out.ContentLength !== undefined && bytes.length !== out.ContentLength) {
        throw new TransientError(
          `S3 get of "${key}" returned ${bytes.length} of ${out.ContentLength} bytes`,
        );
      }
      return bytes;
    });
  }

  /**
   * Reads `length` bytes from `offset`, clipped at the end of the object, with
   * a ranged GET.
   * @param key The object's key.
   * @param offset Where to start.
   * @param length How many bytes at most.
   * @returns The bytes in range; empty when the range starts at or past the end.
   * @throws {NotFoundError} when the object does not exist.
   */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.#open();
    validateRange(offset, length);
    const Key = this.#key(key);
    if (length === 0) {
      await this.stat(key); // still NotFoundError for a missing object
      return new Uint8Array(0);
    }
    return await this.#retry("getRange", key, async () => {
      let out;
      try {
        out = await this.#client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key,
            Range: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
      } catch (e) {
        // 416: the range starts at or past the end (or the object is empty).
        if (httpStatus(e) === 416 || errorName(e) === "InvalidRange") return new Uint8Array(0);
        throw e;
      }
      const bytes = await readBody(out.Body, key);
      if (out.ContentRange === undefined) {
        // The server ignored the range and sent the whole object.
        return bytes.slice(offset, Math.min(bytes.length, offset + length));
      }
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange);
      const expected = m === null ? undefined : Number(m[2]) - Number(m[1]) + 1;
      if (m === null || Number(m[1]) !== offset || bytes.length !== expected || expected > length) {
        throw new TransientError(
          `S3 getRange of "${key}" got ${bytes.length} bytes for ${out.ContentRange}`,
        );
      }
      return bytes;
    });
  }

  /**
   * Writes a whole object (one PUT: S3 makes it visible atomically).
   *
   * With `ifAbsent` and {@linkcode DriverCapabilities.createOnly} `true`, the
   * PUT carries `If-None-Match: *`. If an earlier attempt of this put may
   * have landed (its answer was lost) and a retry is refused with 412, the
   * object is read back: when it holds exactly these bytes the put succeeded.
   * With `createOnly` `false`, a HEAD checks the key first.
   *
   * @param key The object's key.
   * @param bytes Its content.
   * @param options `ifAbsent` for a create-only put.
   * @throws {PreconditionFailedError} when `ifAbsent` and the key exists.
   */
  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    this.#open();
    const Key = this.#key(key);
    if (!(bytes instanceof Uint8Array)) throw invalid("put() takes the bytes as a Uint8Array");
    if (options.ifAbsent === true && !this.capabilities.createOnly) {
      if (await this.#exists(key)) throw new PreconditionFailedError(key);
      await this.#put(key, Key, bytes, false);
      return;
    }
    await this.#put(key, Key, bytes, options.ifAbsent === true);
  }

  async #put(key: string, Key: string, bytes: Uint8Array, ifNoneMatch: boolean): Promise<void> {
    let maybeLanded = false;
    try {
      await this.#retry("put", key, async () => {
        const input: ConstructorParameters<typeof PutObjectCommand>[0] = {
          Bucket: this.bucket,
          Key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: "application/octet-stream",
        };
        if (ifNoneMatch) input.IfNoneMatch = "*";
        await this.#client.send(new PutObjectCommand(input));
      }, () => {
        maybeLanded = true;
      });
    } catch (e) {
      if (
        e instanceof PreconditionFailedError && ifNoneMatch && maybeLanded &&
        await this.#holds(key, bytes)
      ) return;
      throw e;
    }
  }

  /** Whether the object exists (a HEAD). */
  async #exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** Whether the object holds exactly `bytes`. */
  async #holds(key: string, bytes: Uint8Array): Promise<boolean> {
    try {
      return bytesEqual(await this.get(key), bytes);
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /**
   * Deletes an object; deleting a missing key succeeds.
   * @param key The object's key.
   */
  async delete(key: string): Promise<void> {
    this.#open();
    const Key = this.#key(key);
    try {
      await this.#retry("delete", key, async () => {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
      });
    } catch (e) {
      if (e instanceof NotFoundError) return;
      throw e;
    }
  }

  /**
   * Reports an object's size (a HEAD).
   * @param key The object's key.
   * @returns Its {@linkcode ObjectInfo}.
   * @throws {NotFoundError} when it does not exist.
   */
  async stat(key: string): Promise<ObjectInfo> {
    this.#open();
    const Key = this.#key(key);
    return await this.#retry("stat", key, async () => {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      if (out.ContentLength === undefined) {
        throw new CapsaError("s3_error", `S3 stat of "${key}" returned no Content-Length`);
      }
      return { key, size: out.ContentLength };
    });
  }

  /**
   * Lists objects under `prefix` in UTF-8 byte order, one ListObjectsV2 page
   * at a time (each page retried on its own, so a listing resumes where it
   * failed). Objects under the Location prefix whose keys capsa would refuse
   * (written by other tools) are skipped.
   *
   * @param prefix A plain string prefix (`""` for everything).
   * @param options `startAfter` to resume after a key.
   * @returns The objects, in order, the Location prefix stripped.
   * @throws {CapsaError} (`s3_error`) when the server lists out of order.
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    this.#open();
    validatePrefix(prefix);
    const after = options.startAfter;
    if (after !== undefined) validatePrefix(after);
    const Prefix = this.prefix + prefix;
    let startAfter = after === undefined ? undefined : this.prefix + after;
    let token: string | undefined;
    let last: string | undefined;
    for (;;) {
      const input: ConstructorParameters<typeof ListObjectsV2Command>[0] = {
        Bucket: this.bucket,
        Prefix,
        MaxKeys: this.#pageSize,
      };
      if (token !== undefined) input.ContinuationToken = token;
      else if (startAfter !== undefined) input.StartAfter = startAfter;
      const page = await this.#retry(
        "list",
        prefix,
        () => this.#client.send(new ListObjectsV2Command(input)),
      );
      const contents = page.Contents ?? [];
      let lastFull: string | undefined;
      for (const object of contents) {
        const full = object.Key;
        if (full === undefined || !full.startsWith(Prefix) || object.Size === undefined) {
          throw new CapsaError(
            "s3_error",
            `S3 list of "${prefix}" returned an entry outside the prefix or without a size`,
          );
        }
        lastFull = full;
        const key = full.slice(this.prefix.length);
        if (last !== undefined && compareKeys(key, last) <= 0) {
          throw new CapsaError(
            "s3_error",
            `S3 list of "${prefix}" is out of order ("${key}" after "${last}")`,
          );
        }
        last = key;
        if (after !== undefined && compareKeys(key, after) <= 0) continue;
        try {
          validateKey(key);
        } catch {
          continue;
        }
        this.#open();
        yield { key, size: object.Size };
      }
      if (page.IsTruncated !== true) return;
      if (page.NextContinuationToken !== undefined && page.NextContinuationToken !== "") {
        token = page.NextContinuationToken;
      } else if (lastFull !== undefined) {
        token = undefined;
        startAfter = lastFull;
      } else {
        throw new CapsaError(
          "s3_error",
          `S3 list of "${prefix}" is truncated without a continuation token`,
        );
      }
    }
  }

  /**
   * Creates the bucket unless it exists (HeadBucket, then CreateBucket in the
   * driver's region). A bucket created meanwhile by someone else with the
   * same credentials is fine.
   * @throws {InvalidArgumentError} when the name belongs to someone else.
   */
  async ensureBucket(): Promise<void> {
    this.#open();
    const exists = async () => {
      try {
        await this.#retry(
          "headBucket",
          this.bucket,
          () => this.#client.send(new HeadBucketCommand({ Bucket: this.bucket })),
        );
        return true;
      } catch (e) {
        if (e instanceof NotFoundError) return false;
        throw e;
      }
    };
    if (await exists()) return;
    const input: CreateBucketCommandInput = { Bucket: this.bucket };
    const region = await this.#client.config.region();
    if (region !== "us-east-1") {
      input.CreateBucketConfiguration = {
        LocationConstraint: region as NonNullable<
          CreateBucketCommandInput["CreateBucketConfiguration"]
        >["LocationConstraint"],
      };
    }
    try {
      await this.#retry(
        "createBucket",
        this.bucket,
        () => this.#client.send(new CreateBucketCommand(input)),
      );
    } catch (e) {
      // 409: created meanwhile (ours, or someone else's that we cannot reach).
      const cause = e instanceof CapsaError ? e.cause : e;
      if (httpStatus(cause) === 409 && await exists()) return;
      if (httpStatus(cause) === 409) {
        throw invalid(`the S3 bucket name "${this.bucket}" is taken by another account`, e);
      }
      throw e;
    }
  }

  /**
   * Finds out whether the server honours `If-None-Match: *` on PUT: puts a
   * probe key twice, expects the second put to be refused with 412, then
   * deletes the probe key (under `system.state/probe/`). Updates
   * {@linkcode S3Driver.capabilities} with the answer.
   * @returns Whether create-only puts exclude races on this server.
   */
  async probeCreateOnly(): Promise<boolean> {
    const supported = await this.#probe();
    this.#capabilities = { createOnly: supported, durable: true };
    return supported;
  }

  async #probe(): Promise<boolean> {
    const key = `${PROBE_DIR}create-only-${crypto.randomUUID()}`;
    const Key = this.#key(key);
    let supported: boolean;
    try {
      supported = await this.#probeWith(key, Key);
    } catch (e) {
      // Clean up if the server answered at all, but report the probe's own error.
      if (!(e instanceof TransientError)) await this.delete(key).catch(() => {});
      throw e;
    }
    await this.delete(key);
    return supported;
  }

  async #probeWith(key: string, Key: string): Promise<boolean> {
    const notImplemented = (e: unknown) => {
      const cause = e instanceof CapsaError ? e.cause : e;
      const status = httpStatus(cause);
      return status === 501 || status === 400 || errorName(cause) === "NotImplemented";
    };
    try {
      await this.#put(key, Key, encoder.encode("probe 1"), true);
    } catch (e) {
      if (notImplemented(e)) return false;
      throw e;
    }
    try {
      await this.#put(key, Key, encoder.encode("probe 2"), true);
      return false; // the header was ignored: the second put overwrote the first
    } catch (e) {
      if (e instanceof PreconditionFailedError) return true;
      if (notImplemented(e)) return false;
      throw e;
    }
  }

  /** Releases the HTTP connections; later calls throw {@linkcode ClosedError}. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#client.destroy();
    }
    return Promise.resolve();
  }
}

/**
 * Opens an S3 Location: parses the URL (or takes the options as they are),
 * creates the driver and, unless `createOnly` is set to `true` or `false`,
 * probes whether the server honours create-only puts.
 *
 * @param location An `s3://` Location URL, or the Location as options.
 * @param options Driver options (they override the URL's `create-only`), and
 *   `create` to create a missing bucket.
 * @returns The open driver.
 * @throws {InvalidArgumentError} for a malformed URL or option, or a missing bucket.
 * @throws {PermissionDeniedError} when the probe is refused (credentials).
 * @throws {TransientError} when the probe keeps failing on the network.
 *
 * @example Opening with the capability probe (needs the server)
 * ```ts ignore
 * import { openS3 } from "./driver.ts";
 *
 * const driver = await openS3("s3://backups/capsa?endpoint=http://127.0.0.1:9000", {
 *   retry: { maxAttempts: 8 },
 * });
 * if (!driver.capabilities.createOnly) console.warn("this server cannot exclude racing writers");
 * await driver.close();
 * ```
 *
 * @example Opening without a probe, for a server known to ignore If-None-Match
 * ```ts
 * import { openS3 } from "./driver.ts";
 *
 * const driver = await openS3("s3://backups/capsa?endpoint=http://127.0.0.1:9000&create-only=false");
 * console.log(driver.capabilities); // { createOnly: false, durable: true }
 * await driver.close();
 * ```
 */
export async function openS3(
  location: string | URL | S3Options,
  options: S3DriverOptions = {},
): Promise<S3Driver> {
  const base: S3Options = typeof location === "string" || location instanceof URL
    ? parseS3Url(location)
    : location;
  const merged: S3Options = { ...base, ...options };
  const mode = merged.createOnly ?? "probe";
  const driver = new S3Driver({ ...merged, createOnly: mode === true });
  try {
    if (merged.create === true) await driver.ensureBucket();
    if (mode === "probe") await driver.probeCreateOnly();
  } catch (e) {
    await driver.close();
    throw e;
  }
  return driver;
}
