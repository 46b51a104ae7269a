/**
 * Reading the small self-describing JSON objects of a Location (descriptor,
 * config versions): bounded, strict UTF-8, strict JSON, an object.
 *
 * @module
 */

import { CorruptObjectError } from "../errors.ts";

const looseUtf8 = new TextDecoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes UTF-8 strictly (invalid input throws a `TypeError`, as a fatal
 * `TextDecoder` does), fast for valid input: the non-fatal decoder is
 * several times faster here (a fatal one also yields a string that
 * `JSON.parse` reads more slowly), and the fatal one runs only when the text
 * holds a U+FFFD — a replaced invalid sequence, or a real one.
 * @param bytes The bytes.
 * @returns The text.
 * @throws {TypeError} when the bytes are not valid UTF-8.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const text = looseUtf8.decode(bytes);
  return text.includes("\uFFFD") ? strictUtf8.decode(bytes) : text;
}

/**
 * A value as shown in an error: its JSON (cut at 60 characters) and its type.
 * @param value Any value.
 * @returns The text.
 */
export function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length > 60) text = text.slice(0, 60) + "…";
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  return `${text} (${type})`;
}

/**
 * Whether a value is a plain object (not an array, not a class instance).
 * @param value Any value.
 * @returns `true` for `{…}`.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Decodes an object's bytes as one JSON object, checking the size bound
 * before anything else.
 * @param key The object's key, for errors.
 * @param bytes Its bytes (a reader passes at most `max + 1`).
 * @param options The bound and what the object is called in messages.
 * @returns The parsed object.
 * @throws {CorruptObjectError} when it is too large, not UTF-8, not JSON or not an object.
 */
export function decodeJsonObject(
  key: string,
  bytes: Uint8Array,
  options: { max: number; noun: string },
): Record<string, unknown> {
  const corrupt = (reason: string, cause?: unknown) =>
    new CorruptObjectError(key, reason, cause === undefined ? {} : { cause });
  if (bytes.length > options.max) {
    throw corrupt(
      `${bytes.length} bytes or more, larger than the ${options.max}-byte bound of a ${options.noun}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw corrupt("not UTF-8 text", e);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw corrupt(`not JSON (${(e as Error).message})`, e);
  }
  if (!isPlainObject(parsed)) throw corrupt(`not a JSON object but ${shown(parsed)}`);
  return parsed;
}
