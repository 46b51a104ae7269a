/**
 * The `Range` request header (RFC 9110 §14), for one range of bytes.
 *
 * A header the server may ignore is ignored (the whole body is sent): an
 * unknown unit, a syntax error, a last position before the first, or several
 * ranges (a `multipart/byteranges` answer is not worth its complexity here).
 *
 * @module
 */

/** What a `Range` header asks for, against a body of known size. */
export type RangeRequest =
  | { kind: "none" }
  | { kind: "range"; start: number; end: number }
  | { kind: "unsatisfiable" };

const SPEC = /^\s*(\d*)\s*-\s*(\d*)\s*$/;

/**
 * Parses a `Range` header against a body of `size` bytes.
 *
 * @param header The header's value, if any.
 * @param size The body's size.
 * @returns `none` (send the whole body), `range` with inclusive `start` and
 *   `end`, or `unsatisfiable` (answer 416).
 */
export function parseRange(header: string | null | undefined, size: number): RangeRequest {
  if (header === null || header === undefined) return { kind: "none" };
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return { kind: "none" };
  const spec = header.slice(eq + 1);
  if (spec.includes(",")) return { kind: "none" };
  const m = SPEC.exec(spec);
  if (!m) return { kind: "none" };
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return { kind: "none" };
  if (first === "") {
    // A suffix: the last N bytes.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return {
      kind: "range",
      start: Number.isSafeInteger(n) ? Math.max(0, size - n) : 0,
      end: size - 1,
    };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "none" };
  if (!Number.isSafeInteger(start) || start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: "range", start, end };
}
