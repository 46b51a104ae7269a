/**
 * The `s3` driver itself: {@linkcode S3Driver} and {@linkcode openS3}. The
 * public module, with the Location URL and the guarantees, is
 * `drivers/s3/mod.ts`; URL parsing is in `url.ts`, error mapping in
 * `errors.ts`.
 *
 * The driver is two layers: `S3Requests` makes one request per call and maps
 * what it throws to the contract's errors (a retryable failure becomes a
 * `TransientError`), and {@linkcode S3Driver} is the retrying wrapper
 * (`drivers/retrying.ts`) around it, so every S3 Location is retried by the
 * one mechanism every remote driver uses.
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
import { PROBE_PREFIX } from "../../layout.ts";
import {
  ClosedError,
  compareKeys,
  type Driver,
  type DriverCapabilities,
  InvalidKeyError,
  isValidKey,
  type ListOptions,
  MAX_KEY_BYTES,
  NotFoundError,
  type ObjectInfo,
  PreconditionFailedError,
  type PutOptions,
  TransientError,
  validateKey,
  validateListArgs,
  validateRange,
} from "../driver.ts";
import {
  retry,
  type RetryEvent,
  RetryingDriver,
  type RetryOptions,
  type RetryPolicy,
  retryPolicy,
  retryPut,
} from "../retrying.ts";
import { errorName, httpStatus, retryAfterMs, s3Error } from "./errors.ts";
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

/** What {@linkcode S3Requests} needs to be made. */
interface S3Target {
  bucket: string;
  prefix: string;
  location: string;
  client: S3Client;
  createOnly: boolean;
  pageSize: number;
}

/**
 * A {@linkcode Driver} over one bucket and prefix that makes one request per
 * call (one per page for a listing) and never retries: what it throws is
 * already the contract's typed error, a {@linkcode TransientError} where
 * another attempt may succeed.
 */
class S3Requests implements Driver {
  readonly kind = "s3";
  readonly location: string;
  capabilities: DriverCapabilities;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: S3Client;
  readonly #pageSize: number;
  #closed = false;

  constructor(target: S3Target) {
    this.#bucket = target.bucket;
    this.#prefix = target.prefix;
    this.#client = target.client;
    this.#pageSize = target.pageSize;
    this.location = target.location;
    this.capabilities = { createOnly: target.createOnly, durable: true };
  }

  #open(): void {
    if (this.#closed) throw new ClosedError(`driver ${this.location}`);
  }

  /** The full S3 key of a driver key, checked. */
  #key(key: string): string {
    validateKey(key);
    const full = this.#prefix + key;
    if (encoder.encode(full).length > MAX_KEY_BYTES) {
      throw new InvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes with the Location prefix`);
    }
    return full;
  }

  /** Sends one request; what it throws becomes a typed error. */
  async #send<T>(operation: string, key: string, request: () => Promise<T>): Promise<T> {
    this.#open();
    try {
      return await request();
    } catch (e) {
      throw s3Error(e, operation, key, { bucket: this.#bucket, location: this.location });
    }
  }

  async get(key: string): Promise<Uint8Array> {
    this.#open();
    const Key = this.#key(key);
    return await this.#send("get", key, async () => {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key }));
      const bytes = await readBody(out.Body, key);
      if (out.ContentLength !== undefined && bytes.length !== out.ContentLength) {
        throw new TransientError(
          `S3 get of "${key}" returned ${bytes.length} of ${out.ContentLength} bytes`,
        );
      }
      return bytes;
    });
  }

  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.#open();
    validateRange(offset, length);
    const Key = this.#key(key);
    if (length === 0) {
      await this.stat(key); // still NotFoundError for a missing object
      return new Uint8Array(0);
    }
    return await this.#send("getRange", key, async () => {
      let out;
      try {
        out = await this.#client.send(
          new GetObjectCommand({
            Bucket: this.#bucket,
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

  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    this.#open();
    this.#key(key);
    if (!(bytes instanceof Uint8Array)) throw invalid("put() takes the bytes as a Uint8Array");
    if (options.ifAbsent === true && !this.capabilities.createOnly) {
      // The fallback of the contract: refuse a key that can be seen.
      if (await this.#exists(key)) throw new PreconditionFailedError(key);
      return await this.putObject(key, bytes, false);
    }
    await this.putObject(key, bytes, options.ifAbsent === true);
  }

  /** One PUT, with `If-None-Match: *` when `ifNoneMatch` (whatever the capability says). */
  async putObject(key: string, bytes: Uint8Array, ifNoneMatch: boolean): Promise<void> {
    const Key = this.#key(key);
    await this.#send("put", key, async () => {
      const input: ConstructorParameters<typeof PutObjectCommand>[0] = {
        Bucket: this.#bucket,
        Key,
        Body: bytes,
        ContentLength: bytes.byteLength,
        ContentType: "application/octet-stream",
      };
      if (ifNoneMatch) input.IfNoneMatch = "*";
      await this.#client.send(new PutObjectCommand(input));
    });
  }

  async #exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    this.#open();
    const Key = this.#key(key);
    try {
      await this.#send("delete", key, async () => {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key }));
      });
    } catch (e) {
      if (e instanceof NotFoundError) return;
      throw e;
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    this.#open();
    const Key = this.#key(key);
    return await this.#send("stat", key, async () => {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key }));
      if (out.ContentLength === undefined) {
        throw new CapsaError("s3_error", `S3 stat of "${key}" returned no Content-Length`);
      }
      return { key, size: out.ContentLength };
    });
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    this.#open();
    validateListArgs(prefix, options);
    const after = options.startAfter;
    const Prefix = this.#prefix + prefix;
    let startAfter = after === undefined ? undefined : this.#prefix + after;
    let token: string | undefined;
    let last: string | undefined;
    for (;;) {
      const input: ConstructorParameters<typeof ListObjectsV2Command>[0] = {
        Bucket: this.#bucket,
        Prefix,
        MaxKeys: this.#pageSize,
      };
      if (token !== undefined) input.ContinuationToken = token;
      else if (startAfter !== undefined) input.StartAfter = startAfter;
      const page = await this.#send(
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
        const key = full.slice(this.#prefix.length);
        if (last !== undefined && compareKeys(key, last) <= 0) {
          throw new CapsaError(
            "s3_error",
            `S3 list of "${prefix}" is out of order ("${key}" after "${last}")`,
          );
        }
        last = key;
        if (after !== undefined && compareKeys(key, after) <= 0) continue;
        if (!isValidKey(key)) continue; // written by another tool: not a key of capsa's
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

  /** Whether the bucket exists (one HeadBucket). */
  async bucketExists(): Promise<boolean> {
    try {
      await this.#send(
        "headBucket",
        this.#bucket,
        () => this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket })),
      );
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** One CreateBucket in the client's region. */
  async createBucket(): Promise<void> {
    const input: CreateBucketCommandInput = { Bucket: this.#bucket };
    const region = await this.#client.config.region();
    if (region !== "us-east-1") {
      input.CreateBucketConfiguration = {
        LocationConstraint: region as NonNullable<
          CreateBucketCommandInput["CreateBucketConfiguration"]
        >["LocationConstraint"],
      };
    }
    await this.#send(
      "createBucket",
      this.#bucket,
      () => this.#client.send(new CreateBucketCommand(input)),
    );
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#client.destroy();
    }
    return Promise.resolve();
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
 * import { S3Driver } from "./driver.ts";
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
 * import assert from "node:assert/strict";
 * import { openS3 } from "./driver.ts";
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
