/**
 * Errors over HTTP give HTTP advice: a held lease names the request's
 * `force` parameter, not the CLI's `--force`.
 */

import assert from "node:assert/strict";
import { MemoryDriver } from "../drivers/memory.ts";
import { acquireLease } from "../store/lease.ts";
import { initStore } from "../store/store.ts";
import { createApp } from "./app.ts";

const TOKEN = "test-token-0123456789";

Deno.test("a lease_held answer names the force parameter of the request, not --force", async () => {
  const { store } = await initStore(new MemoryDriver());
  const app = createApp(store, { token: TOKEN });
  const lease = await acquireLease(store.driver, { storeId: store.storeId, agent: "Verify" });
  try {
    for (const kind of ["rebuild", "verify", "gc"]) {
      const res = await app.request(`/v1/maintenance/${kind}`, {
        method: "POST",
        body: "{}",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
      });
      assert.equal(res.status, 409);
      const e = await res.json();
      assert.equal(e.code, "lease_held");
      assert.match(e.message, /Verify on /);
      assert.doesNotMatch(e.message, /--force/);
      assert.match(e.message, /the parameter "force": true/);
    }
  } finally {
    await lease.release();
    await store.close();
  }
});
