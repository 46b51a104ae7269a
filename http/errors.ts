/**
 * How capsa's errors become HTTP responses: the status of each code comes
 * from the one table of codes, `ERROR_CODES` in `errors.ts`
 * ({@linkcode ERROR_STATUS} is its status column); one error type that knows
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
 * import assert from "node:assert/strict";
 * import { toHttpError } from "@capsa/capsa/http";
 * import { LeaseHeldError } from "@capsa/capsa";
 *
 * const e = toHttpError(new LeaseHeldError("RebuildIndex on host-a (pid 7)", 0));
 * assert.deepEqual([e.status, e.code], [409, "lease_held"]);
 * ```
 *
 * @module
 */

import { CapsaError, ERROR_CODES, type ErrorCode, isErrorCode } from "../errors.ts";

/**
 * The HTTP status of each error code, read from the `status` column of
 * {@linkcode ERROR_CODES} (the one table of codes, in `errors.ts`; listed in
 * docs/OPERATIONS.md).
 *
 * `permission_denied` answers 500: it is the Location refusing the server
 * (its credentials or file permissions), not the client, and a 403 would send
 * the client looking at its own token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ERROR_STATUS } from "@capsa/capsa/http";
 * assert.deepEqual(ERROR_STATUS.maintenance_mode, 503);
 * ```
 */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze(
  Object.fromEntries(
    Object.entries(ERROR_CODES).map(([code, info]) => [code, info.status]),
  ) as Record<ErrorCode, number>,
);

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
  /** Whether retrying can help (default: the code's `retryable` in `ERROR_CODES`). */
  retryable?: boolean;
}

/**
 * A {@linkcode CapsaError} that knows its HTTP response: the status of its
 * code in {@linkcode ERROR_CODES}, headers, and the JSON body
 * `{ code, message }`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError } from "@capsa/capsa/http";
 * const e = new HttpError("range_not_satisfiable", "the range starts past the end");
 * const res = e.toResponse();
 * assert.deepEqual([res.status, await res.json()], [
 *   416,
 *   { code: "range_not_satisfiable", message: "the range starts past the end" },
 * ]);
 * ```
 */
export class HttpError extends CapsaError {
  /** The HTTP status. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * Creates the error; its status is the one of `code` in {@linkcode ERROR_CODES}.
   * @param code The stable error code sent in the body.
   * @param message A one-line message for people, sent in the body.
   * @param options Headers, cause and whether a retry can help.
   */
  constructor(code: ErrorCode, message: string, options: HttpErrorOptions = {}) {
    const retryable = options.retryable ?? (isErrorCode(code) && ERROR_CODES[code].retryable);
    super(code, message, retryable, options.cause === undefined ? {} : { cause: options.cause });
    this.status = statusOf(code, retryable);
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
 * The status for an error code, from {@linkcode ERROR_CODES}. A code the
 * table does not know (an error of another version of capsa, crossing
 * realms) answers 503 when retryable and 500 otherwise.
 *
 * @param code The error's code.
 * @param retryable Whether the error is retryable (picks 503 over 500 for unknown codes).
 * @returns The HTTP status.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statusOf } from "@capsa/capsa/http";
 * assert.deepEqual([statusOf("not_found", false), statusOf("some_new_code", true)], [404, 503]);
 * ```
 */
export function statusOf(code: string, retryable: boolean): number {
  return isErrorCode(code) ? ERROR_CODES[code].status : retryable ? 503 : 500;
}

/**
 * A message written for the CLI, with its advice said the way an HTTP client
 * follows it: `--force` is the `force` parameter of the maintenance request
 * (`{"force": true}` in the body of `POST /v1/maintenance/…`), and
 * `capsa status` is `GET /v1/status`.
 *
 * @param message The error's message.
 * @returns The message for an HTTP client.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { httpAdvice } from "./errors.ts";
 * assert.deepEqual(
 *   httpAdvice("held by X: wait for it to finish, or use --force if that holder is gone"),
 *   'held by X: wait for it to finish, or start the job with the parameter "force": true ' +
 *     "if that holder is gone",
 * );
 * ```
 */
export function httpAdvice(message: string): string {
  return message
    .replace(/\b(?:use|with) --force\b/g, 'start the job with the parameter "force": true')
    .replace(/(^|[\s(])--force\b/g, '$1the job parameter "force": true')
    .replace(/`capsa status`|\bcapsa status LOCATION\b/g, "GET /v1/status");
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
 * import assert from "node:assert/strict";
 * import { toHttpError } from "@capsa/capsa/http";
 * import { ArtifactNotFoundError } from "@capsa/capsa";
 *
 * assert.deepEqual(toHttpError(new ArtifactNotFoundError("ns", "k")).status, 404);
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
    return new HttpError(error.code, httpAdvice(error.message), {
      headers,
      cause: error,
      retryable: error.retryable,
    });
  }
  return new HttpError("internal", "internal error: see the server's log", {
    cause: error,
    retryable: false,
  });
}
