// `xks fault --kind none` on a frozen node: a frozen process cannot hear it, so clearing the fault
// restarts the process at once (said in the log) instead of failing after a timeout. And a node
// coming back: crypto and health agree on the moment (no Encrypt served while it is UNAVAILABLE).
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { LABELS, startTestCluster, waitFor } from '../helpers/softhsm.js';

t.test('fault none on a frozen node restarts it; the node is back', async (t) => {
  // A long hang-kill: without the fix, only it would bring the node back.
  const { cluster } = await startTestCluster(t, { nodes: 2, hsm: { hangKillAfterMs: 60_000 } });
  const pid = cluster.status()[0]!.pid;
  await cluster.injectFault('hsm-1', { kind: 'freeze' });
  await t.resolves(cluster.injectFault('hsm-1', { kind: 'none' }), 'cleared, not failed with a timeout');
  await waitFor('hsm-1 back', () => cluster.status()[0]!.health === 'ACTIVE' && cluster.status()[0]!.pid !== pid, 15_000);
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, performance.now() + 500);
  t.equal(out.ciphertext.length, 1);
  t.equal(cluster.status()[0]!.restarts, 1);
});

t.test('after a node restart, crypto is not served before health says the node is back', async (t) => {
  const { cluster } = await startTestCluster(t, { nodes: 1 });
  process.kill(cluster.status()[0]!.pid!, 'SIGKILL');
  await waitFor('hsm-1 down', () => cluster.status()[0]!.health === 'UNAVAILABLE');
  let served = 0;
  let servedWhileUnavailable = 0;
  const until = Date.now() + 15_000;
  while (served < 20 && Date.now() < until) {
    try {
      await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, performance.now() + 200);
      served++;
      // What GetHealthStatus reports, right after the answer.
      if (cluster.status()[0]!.health === 'UNAVAILABLE') servedWhileUnavailable++;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  t.equal(served, 20, 'the node came back');
  t.equal(servedWhileUnavailable, 0, 'never an Encrypt answered while health said UNAVAILABLE');
});
