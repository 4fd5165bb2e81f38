// Injected faults on node processes: slow past the deadline, failing with a device error, frozen.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { HsmError } from '../../xks/hsm/errors.js';
import type { HsmCluster } from '../../xks/hsm/types.js';
import { LABELS, encryptLoad, healthHistory, startedCluster, waitFor } from '../helpers/softhsm.js';

const LOAD = { concurrency: 4, minOps: 2000, maxOps: 50_000, maxMs: 40_000, budgetMs: 200 };


const allActive = (c: HsmCluster) => c.status().every((n) => n.health === 'ACTIVE');

t.test('a node slower than the call deadline: no failed request, the node is replaced', async (t) => {
  const cluster = await startedCluster(t);
  const seen = healthHistory(cluster, 'hsm-1');
  const result = await encryptLoad(cluster, LOAD, async () => {
    await sleep(200);
    await cluster.injectFault('hsm-1', { kind: 'slow', ms: 150 });
    await waitFor('hsm-1 taken out', () => seen.includes('UNAVAILABLE'));
    // Missing its deadlines again and again gets the process killed; the new one has no fault.
    await waitFor('hsm-1 ACTIVE again', () => seen.at(-1) === 'ACTIVE' && allActive(cluster));
  });
  t.same(result.failures, {}, `${result.ok} requests, none failed`);
  t.ok(result.ok >= LOAD.minOps);
});

t.test('a node failing with CKR_DEVICE_ERROR: no failed request, UNAVAILABLE until it recovers', async (t) => {
  const cluster = await startedCluster(t);
  const seen = healthHistory(cluster, 'hsm-1');
  const pid = cluster.status()[0]!.pid;
  const result = await encryptLoad(cluster, LOAD, async () => {
    await sleep(200);
    await cluster.injectFault('hsm-1', { kind: 'fail', ckr: 'CKR_DEVICE_ERROR' });
    await waitFor('hsm-1 taken out', () => seen.includes('UNAVAILABLE'));
    await sleep(500);
    t.equal(cluster.status()[0]!.health, 'UNAVAILABLE', 'failing probes keep it out');
    await cluster.injectFault('hsm-1', { kind: 'none' });
    await waitFor('hsm-1 ACTIVE again', () => allActive(cluster));
  });
  t.same(result.failures, {}, `${result.ok} requests, none failed`);
  t.ok(result.ok >= LOAD.minOps);
  t.equal(cluster.status()[0]!.pid, pid, 'an answering node is not killed');
});

t.test('every node frozen: each request rejects with DependencyTimeoutException, then the nodes come back', async (t) => {
  const cluster = await startedCluster(t);
  await cluster.injectFault('hsm-1', { kind: 'freeze' });
  await cluster.injectFault('hsm-2', { kind: 'freeze' });
  const settled = await Promise.allSettled(
    Array.from({ length: 20 }, () =>
      cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, performance.now() + 200),
    ),
  );
  for (const r of settled) {
    t.equal(r.status, 'rejected');
    if (r.status === 'rejected') {
      t.type(r.reason, HsmError);
      t.equal((r.reason as HsmError).errorName, 'DependencyTimeoutException');
    }
  }
  // Later requests too, whether the nodes are still being tried as a last resort or already gone.
  const late = await cluster
    .decrypt({ label: LABELS.aes, iv: Buffer.alloc(12), ciphertext: Buffer.alloc(1), tag: Buffer.alloc(16), hsmAad: Buffer.alloc(3) }, performance.now() + 200)
    .then(
      () => undefined,
      (err: HsmError) => err.errorName,
    );
  t.equal(late, 'DependencyTimeoutException');
  await waitFor('both nodes restarted and ACTIVE', () => allActive(cluster));
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, performance.now() + 200);
  t.equal(out.ciphertext.length, 1);
});
