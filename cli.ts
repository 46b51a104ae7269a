/**
 * The `capsa` command-line tool: create a store, put and get artifacts,
 * check its status, rebuild its index (with the Recovery Kit when every
 * descriptor is lost), serve it over HTTP. Run `capsa --help`; the runbook
 * is docs/OPERATIONS.md.
 *
 * ```sh
 * deno run --allow-read=/srv/capsa,$HOME/.cache/capsa --allow-write=/srv/capsa,$HOME/.cache/capsa \
 *   --allow-env=HOME,XDG_CACHE_HOME --allow-sys=hostname cli.ts status /srv/capsa
 * ```
 *
 * @module
 */

import { main } from "./cli/main.ts";
import { IN_WORKER } from "./cli/_reader.ts";

// In the bundle, `put --from`'s reader worker runs this file too (cli/_reader.ts): not the CLI.
if (import.meta.main && !IN_WORKER) Deno.exit(await main(Deno.args));
