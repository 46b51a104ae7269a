import assert from "node:assert/strict";
import { FaultyDriver } from "../drivers/faulty.ts";
import { MemoryDriver } from "../drivers/memory.ts";
import { NotFoundError, TransientError } from "../errors.ts";
import { createDescriptor, decodeDescriptor } from "../format/descriptor.ts";
import { DESCRIPTOR_KEY, DESCRIPTOR_REPLICA_KEY, HOST_DESCRIPTOR_KEY } from "../layout.ts";
import {
  HOST_REPLICA,
  readDescriptorReplicas,
  writeDescriptorLast,
  writeDescriptorReplicas,
} from "./replicas.ts";

Deno.test("writeDescriptorLast() visits the replicas in commit order, store.json last", async () => {
  const order: string[] = [];
  await writeDescriptorLast(new MemoryDriver(), new MemoryDriver(), undefined, (t) => {
    order.push(t.where);
    return Promise.resolve();
  });
  assert.deepEqual(order, [DESCRIPTOR_REPLICA_KEY, HOST_REPLICA, DESCRIPTOR_KEY]);
  const some: string[] = [];
  await writeDescriptorLast(
    new MemoryDriver(),
    new MemoryDriver(),
    [DESCRIPTOR_KEY, HOST_REPLICA],
    (t) => {
      some.push(t.where);
      return Promise.resolve();
    },
  );
  assert.deepEqual(some, [HOST_REPLICA, DESCRIPTOR_KEY]);
});

Deno.test("writeDescriptorReplicas() writes every replica and never store.json after a failed one", async () => {
  const descriptor = createDescriptor();
  const loc = new MemoryDriver();
  const host = new MemoryDriver();
  assert.deepEqual(await writeDescriptorReplicas(loc, host, descriptor), [
    DESCRIPTOR_REPLICA_KEY,
    HOST_REPLICA,
    DESCRIPTOR_KEY,
  ]);
  for (const r of await readDescriptorReplicas(loc, host)) {
    assert.ok(!(r.result instanceof Error), r.where);
    assert.equal(r.result.storeId, descriptor.storeId);
  }
  assert.equal(
    decodeDescriptor(HOST_DESCRIPTOR_KEY, await host.get(HOST_DESCRIPTOR_KEY)).storeId,
    descriptor.storeId,
  );

  // The second replica fails: store.json, the commit point, is not written.
  const failing = new FaultyDriver(new MemoryDriver());
  failing.inject({
    methods: ["put"],
    key: DESCRIPTOR_REPLICA_KEY,
    error: () => new TransientError("disk on fire"),
  });
  await assert.rejects(writeDescriptorReplicas(failing, undefined, descriptor), TransientError);
  failing.clear();
  await assert.rejects(failing.stat(DESCRIPTOR_KEY), NotFoundError);
});
