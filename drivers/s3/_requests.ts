/**
 * The request layer of the `s3` driver: {@linkcode S3Requests}, a
 * {@linkcode Driver} that makes one request per call and maps what it throws
 * to the contract's errors (`errors.ts`). `S3Driver` (`driver.ts`) is the
 * retrying wrapper around it.
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
  type S3Client,
} from "@aws-sdk/client-s3";
import { CapsaError } from "../../errors.ts";
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
import { errorName, httpStatus, s3Error } from "./errors.ts";
import { invalid } from "./url.ts";

const encoder = new TextEncoder();

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
export interface S3Target {
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
export class S3Requests implements Driver {
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
      const modified = out.LastModified?.getTime();
      return modified === undefined
        ? { key, size: out.ContentLength }
        : { key, size: out.ContentLength, modified };
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
