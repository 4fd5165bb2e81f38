// Node processes dying or freezing under load: the cluster keeps answering from the other node
// within the request budget, the supervisor brings the node back, and onChange reports it.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { HsmCluster } from '../../xks/hsm/types.js';
import { encryptLoad, healthHistory, startedCluster, waitFor } from '../helpers/softhsm.js';

const LOAD = { concurrency: 4, minOps: 2000, maxOps: 50_000, maxMs: 40_000, budgetMs: 200 };


const node = (c: HsmCluster, id: string) => c.status().find((n) => n.id === id)!;
const allActive = (c: HsmCluster) => c.status().every((n) => n.health === 'ACTIVE');

t.test('SIGKILL of a node process under load: no failed request, the node comes back ACTIVE', async (t) => {
  const cluster = await startedCluster(t);
  const seen = healthHistory(cluster, 'hsm-1');
  const victim = node(cluster, 'hsm-1').pid!;
  const result = await encryptLoad(cluster, LOAD, async () => {
    await sleep(200);
    process.kill(victim, 'SIGKILL');
    await waitFor('hsm-1 back with a new process', () => node(cluster, 'hsm-1').pid !== victim && allActive(cluster));
  });
  t.same(result.failures, {}, `${result.ok} requests, none failed`);
  t.ok(result.ok >= LOAD.minOps);
  t.same(seen.slice(0, 2), ['UNAVAILABLE', 'ACTIVE'], 'out at once, back after the restart');
});

t.test('SIGSTOP for 3 s then SIGCONT under load: no failed request, UNAVAILABLE then ACTIVE', async (t) => {
  const cluster = await startedCluster(t);
  const seen = healthHistory(cluster, 'hsm-1');
  const victim = node(cluster, 'hsm-1').pid!;
  const result = await encryptLoad(cluster, LOAD, async () => {
    await sleep(200);
    process.kill(victim, 'SIGSTOP');
    await sleep(3000);
    try {
      process.kill(victim, 'SIGCONT');
    } catch {
      // The supervisor may have killed the frozen process already.
    }
    await waitFor('hsm-1 ACTIVE again', () => allActive(cluster));
  });
  t.same(result.failures, {}, `${result.ok} requests, none failed`);
  t.ok(result.ok >= LOAD.minOps);
  const out = seen.indexOf('UNAVAILABLE');
  t.ok(out >= 0, `hsm-1 went UNAVAILABLE (${seen.join(' -> ')})`);
  t.ok(seen.indexOf('ACTIVE', out) > out, 'and came back ACTIVE');
});

t.test('the supervisor restarts a node killed again and again', async (t) => {
  const cluster = await startedCluster(t);
  const pids = new Set<number>([node(cluster, 'hsm-1').pid!]);
  let pidChanges = 0;
  cluster.onChange(() => pidChanges++);
  for (let i = 0; i < 5; i++) {
    const pid = node(cluster, 'hsm-1').pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor(`restart ${i + 1}`, () => {
      const n = node(cluster, 'hsm-1');
      return n.pid !== undefined && n.pid !== pid && n.health === 'ACTIVE';
    });
    pids.add(node(cluster, 'hsm-1').pid!);
  }
  t.equal(pids.size, 6, 'a new process each time');
  t.ok(pidChanges >= 10, 'onChange reported every exit and restart');
});
