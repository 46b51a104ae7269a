/**
 * `capsa ls`: the namespaces of a store, or the keys of a namespace,
 * streamed page after page.
 *
 * @module
 */

import { boolFlag, namePositionals, type ParsedArgs, stringFlag } from "../_args.ts";
import type { Command } from "../_command.ts";
import { EXIT, UsageError, withCreatedAt } from "../_output.ts";
import { type CommandContext, listAll, withStore } from "../_store.ts";

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
        const namespaces = await store.namespaces();
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
        if (out.json) buf.push(`${n === 0 ? "\n" : ",\n"}${JSON.stringify(withCreatedAt(i))}`);
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
    }, { readOnly: true });
    return EXIT.ok;
  },
};
