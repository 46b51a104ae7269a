/**
 * `capsa serve`: the HTTP endpoint (`http/serve.ts`, Hono) on an open store.
 * The endpoint is loaded with a dynamic import, so no other command loads
 * Hono.
 *
 * @module
 */

import { namePositionals, type ParsedArgs, parseListen, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, UsageError } from "../_output.ts";
import { absolutePath, type CommandContext, withStore } from "../_store.ts";

/** The shortest bearer token `capsa serve` accepts. */
const MIN_TOKEN_LENGTH = 16;

/**
 * Reads a bearer token from a file: the first line, trimmed. A token a
 * client could not send in `Authorization: Bearer TOKEN` (a space inside,
 * a control or non-ASCII character) or one shorter than 16 characters (too
 * easy to guess) is refused; a file that others may read gets a warning.
 * @param ctx Where warnings go.
 * @param path The file.
 * @returns The token.
 */
async function readToken(ctx: CommandContext, path: string): Promise<string> {
  const info = await Deno.stat(path);
  if (info.size > 4096) throw new UsageError(`--token-file ${path} is too large for a token`);
  const token = (await Deno.readTextFile(path)).split(/\r?\n/)[0]!.trim();
  if (token === "") throw new UsageError(`the first line of --token-file ${path} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(
      `the token in --token-file ${path} holds a space, a control or a non-ASCII character, ` +
        "which no client can send in an Authorization header: use letters, digits and -._~+/",
    );
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new UsageError(
      `the token in --token-file ${path} has ${token.length} characters; at least ` +
        `${MIN_TOKEN_LENGTH} are required (e.g. openssl rand -base64 24 > ${path})`,
    );
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    ctx.out.warn(
      "token_file_readable",
      `${path} may be read by other users (mode ${
        (info.mode & 0o777).toString(8)
      }): chmod 600 ${path}`,
    );
  }
  return token;
}

/** `capsa serve`. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve the store over HTTP (objects, status, maintenance jobs, events)",
  usage: "capsa serve LOCATION [--listen 127.0.0.1:8787] [--token-file FILE]",
  description:
    `Serves the store on HTTP until Ctrl-C (or SIGTERM): objects (GET with Range, PUT, DELETE,
list), status, maintenance jobs and server-sent events, under /v1. With --token-file, every
request but the health check needs "Authorization: Bearer <token>"; without one, it listens on
loopback only. Prints the address once listening (with --json: {"url","hostname","port"}).`,
  flags: { listen: { type: "string" }, "token-file": { type: "string" } },
  flagsHelp: `  --listen HOST:PORT  the address (default 127.0.0.1:8787; port 0: any free port)
  --token-file FILE   a file whose first line is the bearer token (at least 16 characters)`,
  example: "capsa serve /srv/capsa --listen 0.0.0.0:8787 --token-file /etc/capsa/token",
  async run(ctx: CommandContext, args: ParsedArgs): Promise<number> {
    const { location } = namePositionals("serve", args.positionals, ["LOCATION"]);
    const { hostname, port } = parseListen(stringFlag(args.values, "listen") ?? "127.0.0.1:8787");
    const tokenFile = stringFlag(args.values, "token-file");
    const token = tokenFile === undefined
      ? undefined
      : await readToken(ctx, absolutePath(tokenFile));
    // Loaded here only: no other command loads Hono.
    const { isLoopback, serve } = await import("../../http/serve.ts");
    if (token === undefined && !isLoopback(hostname)) {
      throw new UsageError(
        `refusing to listen on ${hostname} without a token: give --token-file FILE, or listen on 127.0.0.1`,
      );
    }
    await withStore(ctx, location!, async (store) => {
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const s of signals) Deno.addSignalListener(s, onSignal);
      try {
        const server = serve(store, {
          hostname,
          port,
          ...(token === undefined ? {} : { token }),
          signal: stop.signal,
          onListen: (addr) => {
            const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
            const url = `http://${host}:${addr.port}`;
            ctx.out.result(
              { url, hostname: addr.hostname, port: addr.port, token: token !== undefined },
              () =>
                `serving ${store.driver.location} on ${url} (${
                  token === undefined ? "no token: loopback only" : "bearer token required"
                }); Ctrl-C stops`,
            );
          },
        });
        await server.finished;
      } finally {
        for (const s of signals) Deno.removeSignalListener(s, onSignal);
      }
    });
    return EXIT.ok;
  },
};
