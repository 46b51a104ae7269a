/**
 * The artifact commands: `put`, `get`, `ls`, `rm`, `stat`; and the tree
 * transfers behind `put --from DIR` and `get --to DIR` ({@linkcode putTree},
 * {@linkcode getTree}), which the demo uses too.
 *
 * Bodies are streamed both ways: a put reads its file (or stdin) as a
 * stream, a get writes blob by blob, so memory stays bounded whatever the
 * size. Files are written atomically (temporary file, then rename).
 *
 * @module
 */

import { CapsaError, InvalidArgumentError } from "../errors.ts";
import { validateArtifactKey } from "../format/manifest.ts";
import type { ArtifactInfo, Store } from "../store/store.ts";
import {
  boolFlag,
  intFlag,
  namePositionals,
  type ParsedArgs,
  stringFlag,
  stringsFlag,
} from "./_args.ts";
import type { Command } from "./_command.ts";
import { writeAll, writeFileAtomic } from "./_files.ts";
import { EXIT, formatBytes, UsageError } from "./_output.ts";
import { bytesPayload, createProgress, type Progress, transferFormat } from "./_progress.ts";
import { absolutePath, type CommandContext, withStore } from "./_store.ts";

/** Default number of files moved at once by `put --from` and `get --to`. */
export const DEFAULT_TREE_PARALLELISM = 32;

/**
 * Runs `fn` over `items` with at most `limit` at once. On the first failure
 * no new item starts; the ones running finish, then that failure is thrown.
 * @param items The items.
 * @param limit The pool size.
 * @param fn The work for one item.
 */
export async function runPool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
}

/** Re-throws `e` with `what` in front of its message, keeping its class and code. */
function about(what: string, e: unknown): never {
  if (e instanceof CapsaError) {
    // The typed error itself, so that callers can still catch its class.
    e.message = `${what}: ${e.message}`;
    throw e;
  }
  if (e instanceof Error) {
    const copy = new (e.constructor as new (m: string, o?: ErrorOptions) => Error)(
      `${what}: ${e.message}`,
      { cause: e },
    );
    throw copy;
  }
  throw e;
}

// ------------------------------------------------------------------- put

/** One file found under a `put --from` directory. */
export interface TreeFile {
  /** The file's path. */
  path: string;
  /** Its artifact key: the prefix, then its path relative to the directory, with `/`. */
  key: string;
  /** Its size when listed. */
  size: number;
}

/**
 * Lists the regular files under `dir`, recursively, in key order. Symbolic
 * links are not followed (they are reported, not stored).
 * @param dir The directory.
 * @param prefix A key prefix.
 * @returns The files, and the symbolic links skipped.
 */
export async function listTree(
  dir: string,
  prefix = "",
): Promise<{ files: TreeFile[]; skipped: string[] }> {
  const root = dir.replace(/[/\\]+$/, "") || "/";
  const info = await Deno.stat(root);
  if (!info.isDirectory) throw new InvalidArgumentError(`${dir} is not a directory`);
  const files: TreeFile[] = [];
  const skipped: string[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    for await (const e of Deno.readDir(abs)) {
      const path = `${abs}/${e.name}`;
      const key = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymlink) skipped.push(key);
      else if (e.isDirectory) await walk(path, key);
      else if (e.isFile) {
        files.push({ path, key: prefix + key, size: (await Deno.lstat(path)).size });
      } else skipped.push(key);
    }
  };
  await walk(root, "");
  files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { files, skipped };
}

/** Options of {@linkcode putTree}. */
export interface PutTreeOptions {
  /** Prepended to every key (default none). */
  prefix?: string;
  /** Files stored at once (default {@linkcode DEFAULT_TREE_PARALLELISM}). */
  parallelism?: number;
  /** A progress bar (files; bytes as payload). */
  progress?: Progress;
}

/** What {@linkcode putTree} reports. */
export interface PutTreeResult {
  /** Files stored. */
  files: number;
  /** Bytes stored (bodies, before deduplication). */
  bytes: number;
  /** Symbolic links and special files skipped, as relative paths. */
  skipped: string[];
}

/**
 * Stores every regular file under `dir` in `namespace`, keys being the
 * paths relative to `dir` with `/` (after `prefix`), streaming each file, a
 * bounded number at once. Every key is checked before the first put, so a
 * bad file name changes nothing. Flushes before returning.
 *
 * @param store The store.
 * @param namespace The namespace.
 * @param dir The directory.
 * @param options Prefix, parallelism, progress.
 * @returns Counts.
 */
export async function putTree(
  store: Store,
  namespace: string,
  dir: string,
  options: PutTreeOptions = {},
): Promise<PutTreeResult> {
  const { files, skipped } = await listTree(dir, options.prefix ?? "");
  for (const f of files) {
    try {
      validateArtifactKey(f.key);
    } catch (e) {
      about(`${f.path} cannot be stored (nothing was stored)`, e);
    }
  }
  const progress = options.progress;
  let done = 0;
  let bytes = 0;
  progress?.start(files.length, bytesPayload(0));
  try {
    await runPool(files, options.parallelism ?? DEFAULT_TREE_PARALLELISM, async (f) => {
      const file = await Deno.open(f.path, { read: true });
      try {
        const info = await store.put(namespace, f.key, file.readable);
        bytes += info.size;
      } catch (e) {
        try {
          file.close();
        } catch { /* the stream closed it */ }
        about(f.path, e);
      }
      progress?.update(++done, bytesPayload(bytes));
    });
    await store.flush();
  } finally {
    progress?.stop();
  }
  return { files: files.length, bytes, skipped };
}

/** `capsa put`. */
export const putCommand: Command = {
  name: "put",
  summary: "store a file, stdin, or every file under a directory",
  usage: `capsa put LOCATION NAMESPACE KEY [FILE]
       capsa put LOCATION NAMESPACE --from DIR [--prefix P] [--parallelism N]`,
  description:
    `Stores FILE (stdin when FILE is absent or "-") as artifact KEY of NAMESPACE: a new version.
With --from, stores every regular file under DIR (symbolic links are skipped), keys being the
paths relative to DIR with "/", after P; several at once, with a progress bar on a terminal.
Every key is checked before anything is stored. Bodies are streamed, never held whole.`,
  flags: {
    from: { type: "string" },
    prefix: { type: "string" },
    parallelism: { type: "string" },
    "content-type": { type: "string" },
    meta: { type: "string", multiple: true },
  },
  flagsHelp: `  --from DIR           store every file under DIR
  --prefix P           with --from: put P before every key
  --parallelism N      with --from: files stored at once (default ${DEFAULT_TREE_PARALLELISM})
  --content-type TYPE  the media type of a single put
  --meta NAME=VALUE    user metadata of a single put (repeatable)`,
  example: "capsa put /srv/capsa photos 2024/cat.jpg ./cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const from = stringFlag(args.values, "from");
    if (from !== undefined) {
      const { location, namespace } = namePositionals("put", args.positionals, [
        "LOCATION",
        "NAMESPACE",
      ]);
      for (const f of ["content-type", "meta"]) {
        if (args.values[f] !== undefined) throw new UsageError(`--${f} applies to a single put`);
      }
      const parallelism = intFlag(args.values, "parallelism", 256);
      const prefix = stringFlag(args.values, "prefix") ?? "";
      const dir = absolutePath(from);
      const started = performance.now();
      const result = await withStore(ctx, location!, (store) =>
        putTree(store, namespace!, dir, {
          prefix,
          ...(parallelism === undefined ? {} : { parallelism }),
          progress: createProgress(transferFormat("put"), ctx.out.quiet),
        }));
      const ms = Math.round(performance.now() - started);
      for (const s of result.skipped) ctx.out.note(`skipped ${s}: not a regular file`);
      ctx.out.result(
        {
          namespace,
          from: dir,
          prefix,
          files: result.files,
          bytes: result.bytes,
          skipped: result.skipped,
          durationMs: ms,
        },
        () =>
          `stored ${result.files} files (${formatBytes(result.bytes)}) from ${dir} ` +
          `into namespace ${namespace} in ${(ms / 1000).toFixed(1)} s`,
      );
      return EXIT.ok;
    }
    if (args.values["prefix"] !== undefined || args.values["parallelism"] !== undefined) {
      throw new UsageError("--prefix and --parallelism apply to put --from DIR");
    }
    const { location, namespace, key, file } = namePositionals("put", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
      "FILE?",
    ]);
    const metadata: Record<string, string> = {};
    for (const m of stringsFlag(args.values, "meta")) {
      const i = m.indexOf("=");
      if (i <= 0) throw new UsageError(`--meta must be NAME=VALUE, got ${JSON.stringify(m)}`);
      metadata[m.slice(0, i)] = m.slice(i + 1);
    }
    const contentType = stringFlag(args.values, "content-type");
    const fromStdin = file === undefined || file === "-";
    if (fromStdin && Deno.stdin.isTerminal()) {
      throw new UsageError("no FILE given and stdin is a terminal: give FILE, or pipe the body in");
    }
    if (!fromStdin && (await Deno.stat(absolutePath(file!))).isDirectory) {
      throw new UsageError(`${file} is a directory: use put LOCATION NAMESPACE --from ${file}`);
    }
    const info = await withStore(ctx, location!, async (store) => {
      const source = fromStdin ? undefined : await Deno.open(absolutePath(file!), { read: true });
      try {
        const put = await store.put(namespace!, key!, source?.readable ?? Deno.stdin.readable, {
          ...(contentType === undefined ? {} : { contentType }),
          metadata,
        });
        await store.flush();
        return put;
      } catch (e) {
        try {
          source?.close();
        } catch { /* the stream closed it */ }
        throw e;
      }
    });
    ctx.out.result(
      info,
      () => `stored ${namespace}/${key}: ${formatBytes(info.size)}, version ${info.version}`,
    );
    return EXIT.ok;
  },
};

// ------------------------------------------------------------------- get

/**
 * The relative path segments an artifact key is restored to, or why it
 * cannot be: a key is data, and a key such as `../x`, `/etc/x`, `a//b` or
 * `a\b` must never write outside the target directory.
 * @param key The key.
 * @returns The segments, or the reason for refusing.
 */
export function keyToSegments(key: string): string[] | { refused: string } {
  if (key.includes("\\")) return { refused: "it holds a backslash" };
  if (key.startsWith("/")) return { refused: "it is absolute" };
  const segments = key.split("/");
  for (const s of segments) {
    if (s === "") return { refused: "it has an empty path segment" };
    if (s === "." || s === "..") return { refused: `it has a "${s}" segment` };
    if (Deno.build.os === "windows" && /[:*?"<>|]/.test(s)) {
      return { refused: "it holds a character Windows forbids in file names" };
    }
  }
  return segments;
}

/** Options of {@linkcode getTree}. */
export interface GetTreeOptions {
  /** Only keys starting with this (default all). */
  prefix?: string;
  /** Files written at once (default {@linkcode DEFAULT_TREE_PARALLELISM}). */
  parallelism?: number;
  /** A progress bar (files; bytes as payload). */
  progress?: Progress;
}

/**
 * Restores the artifacts of `namespace` (under `prefix`) into `dir`, each at
 * its key as a relative path, each file written atomically. Every key is
 * checked first: if one would land outside `dir` (or two conflict, like `a`
 * and `a/b`), nothing is written. Directories are created here and never
 * followed through a symbolic link.
 *
 * @param store The store.
 * @param namespace The namespace.
 * @param dir The target directory (created if missing).
 * @param options Prefix, parallelism, progress.
 * @returns Counts and the resolved target.
 */
export async function getTree(
  store: Store,
  namespace: string,
  dir: string,
  options: GetTreeOptions = {},
): Promise<{ files: number; bytes: number; to: string }> {
  const items: Array<{ info: ArtifactInfo; segments: string[] }> = [];
  const dirs = new Set<string>();
  for await (const info of listAll(store, namespace, options.prefix)) {
    const segments = keyToSegments(info.key);
    if (!Array.isArray(segments)) {
      throw new CapsaError(
        "unsafe_key",
        `key ${JSON.stringify(info.key)} would be written outside ${dir} (${segments.refused}): ` +
          "nothing was restored; restore the other keys with --prefix, and this one with -o FILE",
      );
    }
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join("/"));
    items.push({ info, segments });
  }
  for (const { info } of items) {
    if (dirs.has(info.key)) {
      throw new CapsaError(
        "key_conflict",
        `key ${JSON.stringify(info.key)} is both a file and a directory of other keys: ` +
          "nothing was restored; restore them separately with --prefix or -o FILE",
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  const root = await Deno.realPath(dir);
  const made = new Map<string, Promise<void>>();
  const ensureDir = (rel: string): Promise<void> => {
    let p = made.get(rel);
    if (!p) {
      p = (async () => {
        const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
        if (parent !== "") await ensureDir(parent);
        const abs = `${root}/${rel}`;
        await Deno.mkdir(abs).catch((e) => {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        });
        const st = await Deno.lstat(abs);
        if (!st.isDirectory || st.isSymlink) {
          throw new CapsaError(
            "unsafe_path",
            `${abs} exists and is not a directory (or is a symbolic link): refusing to write through it`,
          );
        }
      })();
      made.set(rel, p);
    }
    return p;
  };
  const progress = options.progress;
  let done = 0;
  let bytes = 0;
  progress?.start(items.length, bytesPayload(0));
  try {
    await runPool(items, options.parallelism ?? DEFAULT_TREE_PARALLELISM, async (item) => {
      const rel = item.segments.join("/");
      try {
        if (item.segments.length > 1) await ensureDir(item.segments.slice(0, -1).join("/"));
        const body = await store.getStream(namespace, item.info.key, {
          version: item.info.version,
        });
        const written = await writeFileAtomic(`${root}/${rel}`, body);
        bytes += written; // not `bytes += await …`: that reads `bytes` before the await
      } catch (e) {
        about(`${namespace}/${item.info.key}`, e);
      }
      progress?.update(++done, bytesPayload(bytes));
    });
  } finally {
    progress?.stop();
  }
  return { files: items.length, bytes, to: root };
}

/**
 * Every live artifact of a namespace (under a prefix), page after page.
 * @param store The store.
 * @param namespace The namespace.
 * @param prefix Only keys starting with this.
 * @returns The artifacts, in key order.
 */
export async function* listAll(
  store: Store,
  namespace: string,
  prefix?: string,
): AsyncGenerator<ArtifactInfo> {
  let after: string | undefined;
  for (;;) {
    const page = await store.list(namespace, {
      ...(prefix === undefined ? {} : { prefix }),
      ...(after === undefined ? {} : { after }),
      limit: 1000,
    });
    yield* page.items;
    if (page.cursor === undefined) return;
    after = page.cursor;
  }
}

/** `capsa get`. */
export const getCommand: Command = {
  name: "get",
  summary: "read an artifact to stdout or a file, or restore a namespace to a directory",
  usage: `capsa get LOCATION NAMESPACE KEY [-o FILE] [--version V]
       capsa get LOCATION NAMESPACE --to DIR [--prefix P] [--parallelism N]`,
  description:
    `Writes artifact KEY of NAMESPACE to stdout, or with -o to FILE (atomically: a temporary file,
then a rename, so FILE is never half-written). With --to, restores every artifact of NAMESPACE
(under P) into DIR, each at its key as a relative path; if any key would land outside DIR
("../x", "/x", "a//b"), nothing is written. Every blob is checked against its hash on the way.`,
  flags: {
    output: { type: "string", short: "o" },
    version: { type: "string" },
    to: { type: "string" },
    prefix: { type: "string" },
    parallelism: { type: "string" },
  },
  flagsHelp: `  -o, --output FILE  write to FILE instead of stdout
  --version V        a version id (see stat) instead of the current version
  --to DIR           restore the namespace (or the keys under --prefix) into DIR
  --prefix P         with --to: only keys starting with P
  --parallelism N    with --to: files written at once (default ${DEFAULT_TREE_PARALLELISM})`,
  example: "capsa get /srv/capsa photos 2024/cat.jpg -o cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const to = stringFlag(args.values, "to");
    if (to !== undefined) {
      const { location, namespace } = namePositionals("get", args.positionals, [
        "LOCATION",
        "NAMESPACE",
      ]);
      for (const f of ["output", "version"]) {
        if (args.values[f] !== undefined) throw new UsageError(`--${f} applies to a single get`);
      }
      const prefix = stringFlag(args.values, "prefix");
      const parallelism = intFlag(args.values, "parallelism", 256);
      const started = performance.now();
      const r = await withStore(
        ctx,
        location!,
        (store) =>
          getTree(store, namespace!, absolutePath(to), {
            ...(prefix === undefined ? {} : { prefix }),
            ...(parallelism === undefined ? {} : { parallelism }),
            progress: createProgress(transferFormat("get"), ctx.out.quiet),
          }),
      );
      const ms = Math.round(performance.now() - started);
      ctx.out.result(
        {
          namespace,
          prefix: prefix ?? "",
          to: r.to,
          files: r.files,
          bytes: r.bytes,
          durationMs: ms,
        },
        () => `restored ${r.files} files (${formatBytes(r.bytes)}) of ${namespace} into ${r.to}`,
      );
      return EXIT.ok;
    }
    if (args.values["prefix"] !== undefined || args.values["parallelism"] !== undefined) {
      throw new UsageError("--prefix and --parallelism apply to get --to DIR");
    }
    const { location, namespace, key } = namePositionals("get", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    const output = stringFlag(args.values, "output");
    const version = stringFlag(args.values, "version");
    const toStdout = output === undefined || output === "-";
    if (toStdout && ctx.out.json) {
      throw new UsageError("--json needs -o FILE: without it the body itself goes to stdout");
    }
    const info = await withStore(ctx, location!, async (store) => {
      const opts = version === undefined ? {} : { version };
      const info = await store.stat(namespace!, key!, opts);
      const body = await store.getStream(namespace!, key!, { version: info.version });
      if (toStdout) {
        ctx.out.markEmitted();
        for await (const chunk of body) await writeAll(Deno.stdout, chunk);
      } else {
        await writeFileAtomic(absolutePath(output!), body);
      }
      return info;
    });
    if (!toStdout) {
      const path = absolutePath(output!);
      ctx.out.result(
        { ...info, path },
        () =>
          `wrote ${namespace}/${key} (${
            formatBytes(info.size)
          }, version ${info.version}) to ${path}`,
      );
    }
    return EXIT.ok;
  },
};

// -------------------------------------------------------------- ls/rm/stat

function infoLines(info: ArtifactInfo, hash: string): string[] {
  const meta = Object.entries(info.metadata).map(([k, v]) => `${k}=${v}`).join(", ");
  return [
    `namespace     ${info.namespace}`,
    `key           ${info.key}`,
    `version       ${info.version}`,
    `size          ${info.size} (${formatBytes(info.size)})`,
    `digest        ${hash}:${info.digest}`,
    `created       ${new Date(info.created).toISOString()}`,
    `content-type  ${info.contentType === "" ? "-" : info.contentType}`,
    `metadata      ${meta === "" ? "-" : meta}`,
  ];
}

/** `capsa ls`. */
export const lsCommand: Command = {
  name: "ls",
  summary: "list namespaces, or the artifacts of a namespace",
  usage: "capsa ls LOCATION [NAMESPACE] [--prefix P] [-l]",
  description:
    `Without NAMESPACE, lists the namespaces holding live artifacts. With it, lists the keys of
its live artifacts in key order (under P); -l adds size, time and version.`,
  flags: { prefix: { type: "string" }, long: { type: "boolean", short: "l" } },
  flagsHelp: `  --prefix P  only keys starting with P
  -l, --long  size, creation time and version before each key`,
  example: "capsa ls /srv/capsa photos --prefix 2024/",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location, namespace } = namePositionals("ls", args.positionals, [
      "LOCATION",
      "NAMESPACE?",
    ]);
    const prefix = stringFlag(args.values, "prefix");
    const long = boolFlag(args.values, "long");
    if (namespace === undefined && prefix !== undefined) {
      throw new UsageError("--prefix needs a NAMESPACE");
    }
    await withStore(ctx, location!, async (store) => {
      if (namespace === undefined) {
        const namespaces = store.namespaces();
        ctx.out.result({ namespaces }, () => namespaces.join("\n"), { essential: true });
        return;
      }
      const out = ctx.out;
      // Streamed: a namespace can hold millions of keys.
      const iter = listAll(store, namespace, prefix);
      const first = await iter.next();
      out.markEmitted();
      if (out.json) {
        out.stdout(
          `{"namespace":${JSON.stringify(namespace)},"prefix":${
            JSON.stringify(prefix ?? "")
          },"items":[`,
        );
      }
      let n = 0;
      let buf: string[] = [];
      const flush = () => {
        if (buf.length > 0) out.stdout(buf.join(""));
        buf = [];
      };
      for (let r = first; !r.done; r = await iter.next()) {
        const i = r.value;
        if (out.json) buf.push(`${n === 0 ? "\n" : ",\n"}${JSON.stringify(i)}`);
        else if (long) {
          buf.push(
            `${String(i.size).padStart(12)}  ${
              new Date(i.created).toISOString()
            }  ${i.version}  ${i.key}\n`,
          );
        } else buf.push(`${i.key}\n`);
        n++;
        if (buf.length >= 1000) flush();
      }
      flush();
      if (out.json) out.stdout("\n]}\n");
    });
    return EXIT.ok;
  },
};

/** `capsa rm`. */
export const rmCommand: Command = {
  name: "rm",
  summary: "delete an artifact (a tombstone version; older versions stay until GC)",
  usage: "capsa rm LOCATION NAMESPACE KEY",
  description:
    `Deletes artifact KEY of NAMESPACE by committing a tombstone version. Nothing is removed in
place: the space is freed by garbage collection, a separate step. Fails (not_found) when there
is no such live artifact.`,
  flags: {},
  flagsHelp: "",
  example: "capsa rm /srv/capsa photos 2024/cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location, namespace, key } = namePositionals("rm", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    await withStore(ctx, location!, async (store) => {
      if (!(await store.delete(namespace!, key!))) {
        throw new CapsaError(
          "not_found",
          `no artifact ${JSON.stringify(key)} in namespace ${
            JSON.stringify(namespace)
          }: nothing deleted (see capsa ls)`,
        );
      }
      await store.flush();
    });
    ctx.out.result({ namespace, key, deleted: true }, () => `deleted ${namespace}/${key}`);
    return EXIT.ok;
  },
};

/** `capsa stat`. */
export const statCommand: Command = {
  name: "stat",
  summary: "describe an artifact (size, digest, version, metadata)",
  usage: "capsa stat LOCATION NAMESPACE KEY [--version V] [--versions]",
  description:
    `Describes the current version of artifact KEY of NAMESPACE (or version V). With --versions,
lists every version, newest first, deletions included.`,
  flags: { version: { type: "string" }, versions: { type: "boolean" } },
  flagsHelp: `  --version V  describe version V instead of the current one
  --versions   list every version, newest first`,
  example: "capsa stat /srv/capsa photos 2024/cat.jpg",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location, namespace, key } = namePositionals("stat", args.positionals, [
      "LOCATION",
      "NAMESPACE",
      "KEY",
    ]);
    const version = stringFlag(args.values, "version");
    await withStore(ctx, location!, async (store) => {
      const hash = store.descriptor?.hash ?? "";
      if (boolFlag(args.values, "versions")) {
        const versions = await store.versions(namespace!, key!);
        if (versions.length === 0) {
          throw new CapsaError(
            "not_found",
            `no artifact ${JSON.stringify(key)} in namespace ${JSON.stringify(namespace)}`,
          );
        }
        ctx.out.result(
          { namespace, key, hash, versions },
          () =>
            versions.map((v) =>
              `${v.version}  ${new Date(v.created).toISOString()}  ${
                v.deleted ? "deleted" : `${v.size} bytes  ${hash}:${v.digest}`
              }`
            ),
          { essential: true },
        );
        return;
      }
      const info = await store.stat(namespace!, key!, version === undefined ? {} : { version });
      ctx.out.result({ ...info, hash }, () => infoLines(info, hash), { essential: true });
    });
    return EXIT.ok;
  },
};
