// `xks fault --kind none` on a frozen node: a frozen process cannot hear it, so clearing the fault
// restarts the process at once (said in the log) instead of failing after a timeout.
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import { LABELS, makeTestHsm, waitFor } from '../helpers/softhsm.js';

t.test('fault none on a frozen node restarts it; the node is back', async (t) => {
  // A long hang-kill: without the fix, only it would bring the node back.
  const th = await makeTestHsm({ nodes: 2, hsm: { hangKillAfterMs: 60_000 } });
  const cluster = createHsmCluster(th.hsm);
  t.teardown(async () => {
    await cluster.close();
    th.cleanup();
  });
  await cluster.start();
  const pid = cluster.status()[0]!.pid;
  await cluster.injectFault('hsm-1', { kind: 'freeze' });
  await t.resolves(cluster.injectFault('hsm-1', { kind: 'none' }), 'cleared, not failed with a timeout');
  await waitFor('hsm-1 back', () => cluster.status()[0]!.health === 'ACTIVE' && cluster.status()[0]!.pid !== pid, 15_000);
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, performance.now() + 500);
  t.equal(out.ciphertext.length, 1);
  t.equal(cluster.status()[0]!.restarts, 1);
});
