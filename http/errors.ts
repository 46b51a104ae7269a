/**
 * How capsa's errors become HTTP responses: one table from an error's stable
 * `code` to a status ({@linkcode ERROR_STATUS}), one error type that knows
 * its response ({@linkcode HttpError}), and one function that turns anything
 * thrown into it ({@linkcode toHttpError}).
 *
 * Every error body is JSON `{ code, message }`. The message of a
 * {@linkcode CapsaError} is written for people and is sent as is; anything
 * else (a bug) becomes `500 { code: "internal" }` without its message or
 * stack, which stay in the server's log.
 *
 * @example
 * ```ts
 * import { toHttpError } from "./errors.ts";
 * import { LeaseHeldError } from "../store/lease.ts";
 *
 * const e = toHttpError(new LeaseHeldError("RebuildIndex on host-a (pid 7)", 0));
 * console.log(e.status, e.code); // 409 "lease_held"
 * ```
 *
 * @module
 */

import { CapsaError } from "../errors.ts";

/**
 * The HTTP status of each error code. A code not listed here answers 503 when
 * the error is retryable and 500 otherwise.
 *
 * | status | codes |
 * | --- | --- |
 * | 400 | `invalid_argument`, `invalid_key`, `recovery_kit_invalid`, `recovery_kit_required` |
 * | 401 | `unauthorized` |
 * | 403 | `read_only` |
 * | 404 | `not_found` |
 * | 405 | `method_not_allowed` |
 * | 409 | `lease_held`, `lease_lost`, `no_snapshot`, `recovery_kit_mismatch`, `host_storage_required`, `job_not_running` |
 * | 410 | `store_moved` |
 * | 412 | `precondition_failed` |
 * | 413 | `payload_too_large` |
 * | 415 | `unsupported_media_type` |
 * | 416 | `range_not_satisfiable` |
 * | 500 | `internal`, `corrupt_object`, `io_error`, `permission_denied`, `descriptor_conflict`, `index_too_new` |
 * | 501 | `unsupported_feature` |
 * | 502 | `s3_error` |
 * | 503 | `maintenance_mode`, `store_corrupted`, `closed`, `transient` |
 *
 * `permission_denied` is the Location refusing the server (its credentials or
 * file permissions), not the client: a 403 would send the client looking at
 * its own token.
 *
 * @example
 * ```ts
 * import { ERROR_STATUS } from "./errors.ts";
 * console.log(ERROR_STATUS.maintenance_mode); // 503
 * ```
 */
export const ERROR_STATUS: Readonly<Record<string, number>> = Object.freeze({
  invalid_argument: 400,
  invalid_key: 400,
  recovery_kit_invalid: 400,
  recovery_kit_required: 400,
  unauthorized: 401,
  read_only: 403,
  not_found: 404,
  method_not_allowed: 405,
  lease_held: 409,
  lease_lost: 409,
  no_snapshot: 409,
  recovery_kit_mismatch: 409,
  host_storage_required: 409,
  job_not_running: 409,
  store_moved: 410,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  internal: 500,
  corrupt_object: 500,
  io_error: 500,
  permission_denied: 500,
  descriptor_conflict: 500,
  index_too_new: 500,
  unsupported_feature: 501,
  s3_error: 502,
  maintenance_mode: 503,
  store_corrupted: 503,
  closed: 503,
  transient: 503,
});

/** Seconds a client should wait before retrying a `maintenance_mode` answer. */
export const MAINTENANCE_RETRY_AFTER_SECONDS = 5;
/** Seconds a client should wait before retrying any other retryable error. */
export const TRANSIENT_RETRY_AFTER_SECONDS = 1;

/** Options of the {@linkcode HttpError} constructor. */
export interface HttpErrorOptions {
  /** Extra response headers (e.g. `Retry-After`, `WWW-Authenticate`). */
  headers?: Record<string, string>;
  /** The underlying error, if any. */
  cause?: unknown;
  /** Whether retrying can help (default: `status` is 503). */
  retryable?: boolean;
}

/**
 * A {@linkcode CapsaError} that knows its HTTP response: a status, headers,
 * and the JSON body `{ code, message }`.
 *
 * @example
 * ```ts
 * import { HttpError } from "./errors.ts";
 * const e = new HttpError(416, "range_not_satisfiable", "the range starts past the end");
 * const res = e.toResponse();
 * console.log(res.status, await res.json()); // 416 { code: "range_not_satisfiable", message: "…" }
 * ```
 */
export class HttpError extends CapsaError {
  /** The HTTP status. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * Creates the error.
   * @param status The HTTP status (400–599).
   * @param code The stable error code sent in the body.
   * @param message A one-line message for people, sent in the body.
   * @param options Headers, cause and whether a retry can help.
   */
  constructor(status: number, code: string, message: string, options: HttpErrorOptions = {}) {
    super(
      code,
      message,
      options.retryable ?? status === 503,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.status = status;
    this.headers = Object.freeze({ ...options.headers });
  }

  /**
   * The body sent to the client.
   * @returns `{ code, message }`.
   */
  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }

  /**
   * Builds the response.
   * @returns A JSON response with the status and headers of this error.
   */
  toResponse(): Response {
    return new Response(JSON.stringify(this.toJSON()), {
      status: this.status,
      headers: { "Content-Type": "application/json; charset=utf-8", ...this.headers },
    });
  }
}

/**
 * The status for an error code, from {@linkcode ERROR_STATUS}.
 *
 * @param code The error's code.
 * @param retryable Whether the error is retryable (picks 503 over 500 for unknown codes).
 * @returns The HTTP status.
 *
 * @example
 * ```ts
 * import { statusOf } from "./errors.ts";
 * console.log(statusOf("not_found", false), statusOf("some_new_code", true)); // 404 503
 * ```
 */
export function statusOf(code: string, retryable: boolean): number {
  return ERROR_STATUS[code] ?? (retryable ? 503 : 500);
}

/**
 * Turns anything thrown into an {@linkcode HttpError}: an `HttpError` is kept,
 * a {@linkcode CapsaError} gets the status of its code (and `Retry-After`
 * when a retry can help), anything else becomes a 500 `internal` error whose
 * message says nothing about the server's insides.
 *
 * @param error What was thrown.
 * @returns The error to answer with.
 *
 * @example
 * ```ts
 * import { toHttpError } from "./errors.ts";
 * import { ArtifactNotFoundError } from "../errors.ts";
 *
 * console.log(toHttpError(new ArtifactNotFoundError("ns", "k")).status); // 404
 * console.log(toHttpError(new TypeError("x is undefined")).toJSON());
 * // { code: "internal", message: "internal error: see the server's log" }
 * ```
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof CapsaError) {
    const status = statusOf(error.code, error.retryable);
    const headers: Record<string, string> = {};
    if (error.code === "maintenance_mode") {
      headers["Retry-After"] = String(MAINTENANCE_RETRY_AFTER_SECONDS);
    } else if (status === 503 && error.retryable) {
      headers["Retry-After"] = String(TRANSIENT_RETRY_AFTER_SECONDS);
    }
    return new HttpError(status, error.code, error.message, {
      headers,
      cause: error,
      retryable: error.retryable,
    });
  }
  return new HttpError(500, "internal", "internal error: see the server's log", {
    cause: error,
    retryable: false,
  });
}
