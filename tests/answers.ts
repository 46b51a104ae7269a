/**
 * Everything a reader can ask a store, in one comparable value: used by the
 * rebuild, migrate and move tests to prove a store answers exactly as before.
 */

import type { Store } from "../store/store.ts";

/**
 * Lists every namespace page by page (small pages, to cross many cursors),
 * and reads every live artifact's body and version history, the history of
 * `docs/deleted` (deleted artifacts keep theirs), and the per-namespace
 * statistics.
 * @param store The store.
 * @returns A value to compare with `assert.deepEqual`.
 */
export async function answers(store: Store): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const ns of await store.namespaces()) {
    const keys: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.list(ns, { limit: 5, ...(after === undefined ? {} : { after }) });
      keys.push(...page.items.map((i) => i.key));
      if (!page.after) break;
      after = page.after;
    }
    out[`${ns}/`] = keys;
    for (const key of keys) {
      out[`${ns}/${key}`] = {
        body: Array.from(await store.get(ns, key)),
        versions: await store.versions(ns, key),
      };
    }
  }
  out["deleted"] = await store.versions("docs", "deleted");
  out["stats"] = store.index.namespaceStats();
  return out;
}
