/**
 * How the `s3` driver reports failures: which answers another attempt may
 * cure (reported as `TransientError`, retried by the wrapper), and the typed
 * error for each other answer. The table is in `docs/DRIVERS.md` ("s3",
 * "Errors").
 *
 * @module
 */

import {
  CapsaError,
  NotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  TransientError,
} from "../../errors.ts";
import { invalid } from "./url.ts";

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

/** The HTTP status of an SDK error. @param e The error. @returns The status, if any. */
export function httpStatus(e: unknown): number | undefined {
  const status = shape(e).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

/** The name of an SDK error (`"NoSuchKey"`…). @param e The error. @returns The name, or `""`. */
export function errorName(e: unknown): string {
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

/** Whether `e` is one of Deno's errors, by class name. @param e The error. @param names Class names. @returns Whether. */
export function isDenoError(e: unknown, names: string[]): boolean {
  const errors = (globalThis as { Deno?: { errors?: Record<string, unknown> } }).Deno?.errors;
  if (errors === undefined) return false;
  return names.some((n) => {
    const cls = errors[n];
    return typeof cls === "function" && e instanceof (cls as new () => Error);
  });
}

/**
 * Whether another attempt of the same request can succeed: throttling, 5xx
 * (but 501), 408, timeouts and connection errors.
 * @param e What the SDK (or the network) threw.
 * @returns Whether to report it as a {@linkcode TransientError}.
 */
export function isRetryable(e: unknown): boolean {
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

/** A one-line description of an SDK error, with its status and network code. @param e The error. @returns The description. */
export function describe(e: unknown): string {
  const status = httpStatus(e);
  const name = errorName(e) || "Error";
  const message = shape(e).message;
  const code = networkCode(e);
  return `${name}${status === undefined ? "" : ` (HTTP ${status})`}${code ? ` [${code}]` : ""}` +
    (typeof message === "string" && message !== "" && message !== name ? `: ${message}` : "");
}

/**
 * The wait an answer asks for (`Retry-After`, in seconds), in ms, looking
 * through a capsa error at its cause.
 * @param e The error.
 * @returns The wait, if the answer named one.
 */
export function retryAfterMs(e: unknown): number | undefined {
  const value = shape(e instanceof CapsaError ? e.cause : e).$response?.headers?.["retry-after"];
  if (value === undefined) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/**
 * Maps what one S3 request threw to the contract's typed errors: a
 * {@linkcode TransientError} when another attempt may succeed (the retrying
 * wrapper decides whether to make it), else `NotFoundError`,
 * `PreconditionFailedError`, `PermissionDeniedError`, `InvalidArgumentError`
 * (a missing bucket, no region) or a `CapsaError` with code `s3_error`.
 *
 * @param e What the request threw.
 * @param operation The driver operation (`"get"`…).
 * @param key The key (or prefix) concerned, without the Location prefix.
 * @param where The bucket and the printable Location, for messages.
 * @returns The typed error.
 */
export function s3Error(
  e: unknown,
  operation: string,
  key: string,
  where: { bucket: string; location: string },
): CapsaError {
  if (e instanceof CapsaError) return e;
  if (isRetryable(e)) {
    return new TransientError(`S3 ${operation} of "${key}" failed: ${describe(e)}`, { cause: e });
  }
  const status = httpStatus(e);
  const name = errorName(e);
  if (name === "NoSuchBucket") {
    return invalid(`the S3 bucket "${where.bucket}" does not exist (${where.location})`, e);
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
