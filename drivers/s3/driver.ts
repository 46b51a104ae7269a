/**
 * The `s3` driver itself: {@linkcode S3Driver} and {@linkcode openS3}. The
 * public module, with the Location URL and the guarantees, is
 * `drivers/s3/mod.ts`; URL parsing is in `url.ts`, error mapping in
 * `errors.ts`.
 *
 * The driver is two layers: `S3Requests` (`_requests.ts`) makes one request
 * per call and maps what it throws to the contract's errors (a retryable
 * failure becomes a `TransientError`), and {@linkcode S3Driver} is the
 * retrying wrapper (`drivers/retrying.ts`) around it, so every S3 Location
 * is retried by the one mechanism every remote driver uses.
 *
 * @module
 */

import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { CapsaError } from "../../errors.ts";
import { PROBE_PREFIX } from "../../layout.ts";
import { PreconditionFailedError, TransientError } from "../driver.ts";
import {
  retry,
  type RetryEvent,
  RetryingDriver,
  type RetryOptions,
  type RetryPolicy,
  retryPolicy,
  retryPut,
} from "../retrying.ts";
import { errorName, httpStatus, retryAfterMs } from "./errors.ts";
import { S3Requests } from "./_requests.ts";
import {
  checkBucket,
  invalid,
  isLoopbackOrIp,
  normaliseEndpoint,
  normalisePrefix,
  parseS3Url,
  REGION_RE,
  type S3CreateOnlyMode,
  type S3Location,
} from "./url.ts";

/**
 * The retry policy of {@linkcode S3Driver}: exponential backoff with full
 * jitter, at most `maxAttempts` attempts (default 5, base 100 ms, cap 5 s).
 */
export type S3RetryOptions = RetryPolicy;

/** What {@linkcode S3DriverOptions.onRetry} is told before each backoff. */
export type S3RetryEvent = RetryEvent;

/** Options of {@linkcode openS3} and {@linkcode S3Driver}, besides the Location. */
export interface S3DriverOptions {
  /**
   * {@linkcode openS3} creates the bucket if it does not exist (default
   * `false`: a missing bucket is an `InvalidArgumentError`). The prefix
   * needs no creating.
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

const encoder = new TextEncoder();

function positiveInt(name: string, value: number | undefined, fallback: number, max = Infinity) {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw invalid(`${name} must be an integer from 1 to ${max}, got ${value}`);
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

/**
 * A {@linkcode Driver} over one bucket and key prefix of an S3-compatible
 * service: the retrying wrapper (`RetryingDriver`) around one request per
 * call. Open it with {@linkcode openS3}, which probes create-only support;
 * the constructor never sends a request, so it needs `createOnly` decided.
 *
 * @example Creating a driver whose capability is known (no request is sent)
 * ```ts
 * import assert from "node:assert/strict";
 * import { S3Driver } from "@capsa/capsa/drivers/s3";
 *
 * const driver = new S3Driver({
 *   bucket: "backups",
 *   prefix: "capsa/",
 *   endpoint: "http://127.0.0.1:9000",
 *   createOnly: false,
 *   retry: { maxAttempts: 8 },
 * });
 * assert.equal(driver.location, "s3://backups/capsa/?endpoint=http://127.0.0.1:9000");
 * await driver.close();
 * ```
 */
export class S3Driver extends RetryingDriver {
  /** The bucket. */
  readonly bucket: string;
  /** The key prefix every key is stored under (`""` or ending with `/`). */
  readonly prefix: string;
  #requests: S3Requests;
  #retry: RetryOptions;

  /**
   * Creates the driver without sending any request.
   *
   * @param options The Location and the driver's options; `createOnly` must
   *   be `true` or `false` (`"probe"` needs {@linkcode openS3}).
   * @throws {InvalidArgumentError} for a malformed option.
   */
  constructor(options: S3Options) {
    const requests = makeRequests(options);
    const retryOptions: RetryOptions = {
      ...retryPolicy(options.retry),
      onRetry: options.onRetry,
      delayHintMs: retryAfterMs,
    };
    super(requests.driver, retryOptions);
    this.bucket = requests.bucket;
    this.prefix = requests.prefix;
    this.#requests = requests.driver;
    this.#retry = retryOptions;
  }

  /**
   * Creates the bucket unless it exists (HeadBucket, then CreateBucket in the
   * driver's region). A bucket created meanwhile by someone else with the
   * same credentials is fine.
   * @throws {InvalidArgumentError} when the name belongs to someone else.
   */
  async ensureBucket(): Promise<void> {
    const exists = () =>
      retry(() => this.#requests.bucketExists(), {
        ...this.#retry,
        operation: "headBucket",
        key: this.bucket,
      });
    if (await exists()) return;
    try {
      await retry(() => this.#requests.createBucket(), {
        ...this.#retry,
        operation: "createBucket",
        key: this.bucket,
      });
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
    const key = `${PROBE_PREFIX}create-only-${crypto.randomUUID()}`;
    let supported: boolean;
    try {
      supported = await this.#probe(key);
    } catch (e) {
      // Clean up if the server answered at all, but report the probe's own error.
      if (!(e instanceof TransientError)) await this.delete(key).catch(() => {});
      throw e;
    }
    await this.delete(key);
    this.#requests.capabilities = { createOnly: supported, durable: true };
    return supported;
  }

  async #probe(key: string): Promise<boolean> {
    const putIfNoneMatch = (text: string) => {
      const bytes = encoder.encode(text);
      return retryPut(
        this,
        key,
        bytes,
        true,
        () => this.#requests.putObject(key, bytes, true),
        this.#retry,
      );
    };
    const notImplemented = (e: unknown) => {
      const cause = e instanceof CapsaError ? e.cause : e;
      const status = httpStatus(cause);
      return status === 501 || status === 400 || errorName(cause) === "NotImplemented";
    };
    try {
      await putIfNoneMatch("probe 1");
    } catch (e) {
      if (notImplemented(e)) return false;
      throw e;
    }
    try {
      await putIfNoneMatch("probe 2");
      return false; // the header was ignored: the second put overwrote the first
    } catch (e) {
      if (e instanceof PreconditionFailedError) return true;
      if (notImplemented(e)) return false;
      throw e;
    }
  }
}

/** Checks the options and makes the request layer of an {@linkcode S3Driver}. */
function makeRequests(
  options: S3Options,
): { driver: S3Requests; bucket: string; prefix: string } {
  checkBucket(options.bucket);
  if (options.createOnly === "probe" || options.createOnly === undefined) {
    throw invalid("new S3Driver() needs createOnly true or false; openS3() probes it");
  }
  const bucket = options.bucket;
  const prefix = normalisePrefix(options.prefix ?? "");
  const endpoint = options.endpoint === undefined ? undefined : normaliseEndpoint(options.endpoint);
  if (options.region !== undefined && !REGION_RE.test(options.region)) {
    throw invalid(`invalid S3 region ${JSON.stringify(options.region)}`);
  }
  const pageSize = positiveInt("pageSize", options.pageSize, 1000, 1000);
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
    maxAttempts: 1, // retries are the wrapper's (drivers/retrying.ts)
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

  const params: string[] = [];
  if (endpoint !== undefined) params.push(`endpoint=${endpoint}`);
  if (options.region !== undefined) params.push(`region=${options.region}`);
  if (options.forcePathStyle !== undefined) params.push(`path-style=${forcePathStyle}`);
  const shownPrefix = prefix.split("/").map(encodeURIComponent).join("/");
  const location = `s3://${bucket}/${shownPrefix}` +
    (params.length > 0 ? `?${params.join("&")}` : "");
  // Validate the retry policy before a client (and its sockets) exists.
  retryPolicy(options.retry);
  const driver = new S3Requests({
    bucket,
    prefix,
    location,
    client: new S3Client(config),
    createOnly: options.createOnly,
    pageSize,
  });
  return { driver, bucket, prefix };
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
 * import { openS3 } from "@capsa/capsa/drivers/s3";
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
 * import assert from "node:assert/strict";
 * import { openS3 } from "@capsa/capsa/drivers/s3";
 *
 * const driver = await openS3("s3://backups/capsa?endpoint=http://127.0.0.1:9000&create-only=false");
 * assert.deepEqual(driver.capabilities, { createOnly: false, durable: true });
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
