/**
 * Request bodies as the routes read them: a read that fails (the client
 * disconnected, or sent less than its `Content-Length`) is the client's
 * doing, `incomplete_body` (400), never an internal error; an optional
 * limit turns a body that grows past it into `payload_too_large` (413).
 *
 * @module
 */

import { CapsaError } from "../errors.ts";
import { HttpError } from "./errors.ts";

/** Options of {@linkcode requestBody}. */
export interface RequestBodyOptions {
  /** What the `incomplete_body` message says, given the bytes read so far. */
  ended: (bytesRead: number) => string;
  /** Refuse a body over this many bytes (default: no limit). */
  maxBytes?: number;
  /** The `payload_too_large` message, given the limit. */
  tooLarge?: (maxBytes: number) => string;
}

/**
 * Wraps a request body (see the module doc).
 * @param body The request's body.
 * @param options The messages and the limit.
 * @returns A stream of the same bytes.
 */
export function requestBody(
  body: ReadableStream<Uint8Array>,
  options: RequestBodyOptions,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let seen = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (e) {
        throw new CapsaError("incomplete_body", options.ended(seen), false, { cause: e });
      }
      if (next.done) return controller.close();
      seen += next.value.length;
      if (options.maxBytes !== undefined && seen > options.maxBytes) {
        reader.cancel().catch(() => {});
        throw new HttpError(
          "payload_too_large",
          options.tooLarge?.(options.maxBytes) ?? `the body is over ${options.maxBytes} bytes`,
        );
      }
      controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
