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
 * - Every key is stored under the prefix (`prefix/` + key); listings strip
 *   it, and skip objects under the prefix whose names are not capsa keys.
 *   The prefix is the operator's choice and may hold any printable
 *   character; only keys are held to the plain alphabet.
 *
 * Create-only puts use `If-None-Match: *`. Whether the server honours it is
 * probed at open (`create-only=probe`: put a probe key twice, the second put
 * must be refused with 412, then delete it) or set by the caller. Where it is
 * not honoured, `capabilities.createOnly` is `false` and
 * `put(key, bytes, { ifAbsent: true })` checks with a HEAD first: it refuses a
 * key it can see, but two racing writers can both win (the driver contract
 * allows this; callers needing exclusion use their documented fallback).
 *
 * {@linkcode S3Driver} is the retrying wrapper (`RetryingDriver`) around one
 * request per call: throttling (429, 503 SlowDown), 5xx answers, timeouts and
 * connection errors are retried with exponential backoff and full jitter, up
 * to {@linkcode S3RetryOptions.maxAttempts} attempts (default 5), then
 * surface as `TransientError` with the last error as `cause`. The SDK's own
 * retries are off. Other failures map to the contract's typed errors. A
 * create-only put whose answer was lost and whose retry is refused reads the
 * object back, and succeeds when it holds its bytes.
 *
 * @example Opening a store's Location on a local S3-compatible server
 * ```ts ignore
 * import { openS3 } from "@capsa/capsa/drivers/s3";
 *
 * // AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set in the environment.
 * const driver = await openS3("s3://backups/capsa?endpoint=http://127.0.0.1:9000");
 * console.log(driver.location, driver.capabilities.createOnly);
 * await driver.put("store.json", new Uint8Array([1, 2, 3]));
 * await driver.close();
 * ```
 *
 * Importing this entry point also makes every Location registry
 * (`createLocationRegistry()` of `@capsa/capsa`) open `s3://` Locations:
 * the main entry point never loads the AWS SDK by itself.
 *
 * @module
 */

import { provideS3Opener } from "../location.ts";
import { openS3 } from "./driver.ts";

provideS3Opener((url, options) => openS3(url.href, { create: options.create ?? false }));

export {
  openS3,
  S3Driver,
  type S3DriverOptions,
  type S3Options,
  type S3RetryEvent,
  type S3RetryOptions,
} from "./driver.ts";
export { parseS3Url, type S3CreateOnlyMode, type S3Location } from "./url.ts";
// Re-exported so that this entry point documents every type its API names.
export type { Driver, DriverCapabilities, ListOptions, ObjectInfo, PutOptions } from "../driver.ts";
export {
  type RetryEvent,
  RetryingDriver,
  type RetryOptions,
  type RetryPolicy,
} from "../retrying.ts";
