/**
 * S3 Location URLs and options: what {@linkcode parseS3Url} reads from
 * `s3://bucket/prefix?endpoint=…&region=…&path-style=…&create-only=…`, and
 * the checks the driver applies to a bucket, a prefix and an endpoint. The
 * parameters are described in `docs/DRIVERS.md` ("s3", "Location URL").
 *
 * @module
 */

import { InvalidArgumentError } from "../../errors.ts";

/** How create-only puts are decided: probed at open, or set by the caller. */
export type S3CreateOnlyMode = "probe" | boolean;

/** Where an S3 Location is: what {@linkcode parseS3Url} reads from a URL. */
export interface S3Location {
  /** The bucket's name. */
  bucket: string;
  /** The key prefix of the Location: `""` or a path ending with `/`. */
  prefix?: string;
  /** The service's base URL, e.g. `http://127.0.0.1:9000`; AWS S3 when absent. */
  endpoint?: string;
  /** The signing region. */
  region?: string;
  /** Address buckets in the path rather than the host name. */
  forcePathStyle?: boolean;
  /** Create-only puts: `"probe"` (default), `true` (trust) or `false` (HEAD check). */
  createOnly?: S3CreateOnlyMode;
}

const URL_PARAMS = ["endpoint", "region", "path-style", "create-only"] as const;
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** The pattern of a region name. */
export const REGION_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** An {@linkcode InvalidArgumentError}, with a cause when there is one. */
export function invalid(message: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(message, cause === undefined ? {} : { cause });
}

/** Checks a bucket name against S3's rules. @param bucket The name. */
export function checkBucket(bucket: string): void {
  if (
    !BUCKET_RE.test(bucket) || bucket.includes("..") || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)
  ) {
    throw invalid(
      `invalid S3 bucket name ${JSON.stringify(bucket)}: 3 to 63 characters, ` +
        "lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit",
    );
  }
}

/** The longest Location prefix, in UTF-8 bytes (S3 keys are at most 1024). */
const MAX_PREFIX_BYTES = 512;

/**
 * What is wrong with a Location prefix, if anything. The prefix is the
 * operator's choice of a place in the bucket, not a capsa key, so it may hold
 * any printable character (upper case, spaces…), but no empty, `.` or `..`
 * segment, no control character and no unpaired surrogate.
 */
function prefixProblem(prefix: string): string | undefined {
  if (new TextEncoder().encode(prefix).length > MAX_PREFIX_BYTES) {
    return `longer than ${MAX_PREFIX_BYTES} bytes`;
  }
  for (const ch of prefix) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return "control characters are not allowed";
  }
  if (!prefix.isWellFormed()) return "unpaired surrogates are not allowed";
  if (prefix.includes("\\")) return "backslashes are not allowed";
  for (const segment of prefix.split("/")) {
    if (segment === "") return "empty segments are not allowed";
    if (segment === "." || segment === "..") return `segment '${segment}' is not allowed`;
  }
  return undefined;
}

/**
 * Normalises a Location prefix: no leading `/`, whole segments, `""` or ending with `/`.
 * @param prefix The prefix as given.
 * @returns The prefix every key is stored under.
 */
export function normalisePrefix(prefix: string): string {
  let p = prefix.replace(/^\/+/, "");
  if (p.endsWith("/")) p = p.slice(0, -1);
  if (p === "") return "";
  const problem = prefixProblem(p);
  if (problem !== undefined) throw invalid(`invalid S3 prefix: ${problem}`);
  return p + "/";
}

/**
 * Checks an endpoint URL: `http:` or `https:`, a bare origin, no credentials.
 * @param endpoint The endpoint as given.
 * @returns Its origin.
 */
export function normaliseEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (e) {
    throw invalid("the S3 endpoint is not a URL", e);
  }
  if (url.username !== "" || url.password !== "") {
    throw invalid(
      "the S3 endpoint must not carry credentials: set AWS_ACCESS_KEY_ID and " +
        "AWS_SECRET_ACCESS_KEY in the environment instead",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(`the S3 endpoint must be http: or https:, got ${url.protocol}`);
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    throw invalid(`the S3 endpoint must be a bare origin such as ${url.origin}`);
  }
  return url.origin;
}

/** Whether an endpoint is local or an IP address (path-style by default). @param endpoint An origin. @returns Whether. */
export function isLoopbackOrIp(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === "localhost" || host.endsWith(".localhost") || host.startsWith("[") ||
    /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

function parseBool(name: string, value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw invalid(`S3 URL parameter ${name} must be true or false, got ${JSON.stringify(value)}`);
}

/**
 * Parses an S3 Location URL,
 * `s3://bucket/prefix?endpoint=…&region=…&path-style=true|false&create-only=probe|true|false`.
 *
 * A URL with a user name or password is refused (credentials come from the
 * environment only), so are a port on the bucket, a fragment, an unknown or
 * repeated parameter and a malformed value. Error messages never repeat the
 * URL, so they cannot leak a secret pasted into it.
 *
 * @param url The Location URL.
 * @returns The Location it names; absent parameters stay absent.
 * @throws {InvalidArgumentError} when the URL is malformed or not `s3:`.
 *
 * @example Reading a Location URL
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseS3Url } from "@capsa/capsa/drivers/s3";
 *
 * const loc = parseS3Url("s3://backups/capsa/main?endpoint=http://127.0.0.1:9000&region=eu-west-1");
 * assert.deepEqual([loc.bucket, loc.prefix, loc.endpoint], ["backups", "capsa/main/", "http://127.0.0.1:9000"]);
 * ```
 */
export function parseS3Url(url: string | URL): S3Location {
  const raw = typeof url === "string" ? url : url.href;
  // The URL parser resolves "." and ".." segments silently; a Location that
  // names one is refused instead, like a key that does.
  const rawPath = raw.replace(/^[a-z0-9+.-]*:\/\/[^/?#]*/i, "").split(/[?#]/)[0] ?? "";
  if (rawPath.split("/").some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg))) {
    throw invalid("an S3 Location URL must not contain '.' or '..' path segments");
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch (e) {
    throw invalid("the S3 Location is not a URL (expected s3://bucket/prefix?…)", e);
  }
  if (u.protocol !== "s3:") {
    throw invalid(`an S3 Location URL starts with s3://, not ${u.protocol}//`);
  }
  if (u.username !== "" || u.password !== "") {
    throw invalid(
      "an S3 Location URL must not carry credentials: set AWS_ACCESS_KEY_ID and " +
        "AWS_SECRET_ACCESS_KEY (or a profile) in the environment instead",
    );
  }
  if (u.hash !== "") throw invalid("an S3 Location URL has no #fragment");
  if (u.port !== "") {
    throw invalid("an S3 Location URL has no port; put the service in ?endpoint=http://host:port");
  }
  if (u.hostname === "") throw invalid("an S3 Location URL names a bucket: s3://bucket/prefix");
  checkBucket(u.hostname);

  let path: string;
  try {
    path = u.pathname.split("/").map(decodeURIComponent).join("/");
  } catch (e) {
    throw invalid("the S3 prefix is not valid percent-encoding", e);
  }
  const location: S3Location = { bucket: u.hostname, prefix: normalisePrefix(path) };

  const seen = new Set<string>();
  for (const [name, value] of u.searchParams) {
    if (!(URL_PARAMS as readonly string[]).includes(name)) {
      throw invalid(
        `unknown S3 URL parameter ${JSON.stringify(name)} (known: ${URL_PARAMS.join(", ")})`,
      );
    }
    if (seen.has(name)) throw invalid(`S3 URL parameter ${name} is given twice`);
    seen.add(name);
    switch (name) {
      case "endpoint":
        location.endpoint = normaliseEndpoint(value);
        break;
      case "region":
        if (!REGION_RE.test(value)) {
          throw invalid(`invalid S3 region ${JSON.stringify(value)}`);
        }
        location.region = value;
        break;
      case "path-style":
        location.forcePathStyle = parseBool(name, value);
        break;
      case "create-only":
        location.createOnly = value === "probe" ? "probe" : parseBool(name, value);
        break;
    }
  }
  return location;
}
