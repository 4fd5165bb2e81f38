// Several proxy instances share one HSM cluster: each has its own node processes and sessions on
// the same token. SoftHSM2 keeps a token in files guarded by file locks; this checks that several
// processes on one token directory work together: concurrent load from two clusters, ciphertext
// from one decrypting on the other, and a key a third process adds while they run becoming
// visible to the running node processes.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { provisionToken } from '../../appliance/demo/tokens.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { HsmCluster } from '../../xks/hsm/types.js';
import { encryptLoad, LABELS, makeTestHsm, SO_PIN, SOFTHSM_MODULE, USER_PIN } from '../helpers/softhsm.js';

// Correctness under sharing, not latency: deadlines wide enough for a busy test machine.
const BUDGET_MS = 3000;
const deadline = () => performance.now() + BUDGET_MS;

t.test('two clusters (two instances) on the same SoftHSM2 token', async (t) => {
  const th = await makeTestHsm({ nodes: 1, hsm: { callTimeoutMs: 2000, requestBudgetMs: BUDGET_MS, hangKillAfterMs: 20_000 } });
  const clusters: HsmCluster[] = [createHsmCluster(th.hsm), createHsmCluster(th.hsm)];
  t.teardown(async () => {
    await Promise.all(clusters.map((c) => c.close()));
    th.cleanup();
  });
  await Promise.all(clusters.map((c) => c.start()));
  const [a, b] = clusters as [HsmCluster, HsmCluster];
  const pidA = a.status()[0]!.pid;
  const pidB = b.status()[0]!.pid;
  t.ok(pidA && pidB && pidA !== pidB, 'each cluster has its own node process on the token');

  const added = 'k-added-while-serving';
  const material = randomBytes(32);
  const load = { concurrency: 4, minOps: 2000, maxOps: 20_000, maxMs: 30_000, budgetMs: BUDGET_MS };
  // Both instances under load while a third process writes a new key into the token.
  const writer = provisionToken({
    module: SOFTHSM_MODULE,
    env: { SOFTHSM2_CONF: th.confs[0]! },
    tokenLabel: th.hsm.nodes[0]!.tokenLabel!,
    soPin: SO_PIN,
    userPin: USER_PIN,
    keys: [{ label: added, material, encrypt: true, decrypt: true }],
  });
  const [ra, rb] = await Promise.all([encryptLoad(a, load, () => writer), encryptLoad(b, load, () => writer)]);
  t.same([ra.failures, rb.failures], [{}, {}], 'no failed operation in either instance');
  t.ok(ra.ok >= 2000 && rb.ok >= 2000, `both served (${ra.ok} and ${rb.ok} encrypts)`);

  for (let i = 0; i < 20; i++) {
    const plaintext = randomBytes(64);
    const hsmAad = randomBytes(8);
    const [from, to] = i % 2 ? [a, b] : [b, a];
    const out = await from.encrypt({ label: LABELS.aes, plaintext, hsmAad }, deadline());
    const back = await to.decrypt({ label: LABELS.aes, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad }, deadline());
    t.same(back.plaintext, plaintext, `round ${i}: one instance's ciphertext decrypts on the other`);
  }

  const info = await b.keyInfo(added, deadline());
  t.match(info, { keyType: 'AES', valueLen: 32, encrypt: true, decrypt: true }, 'the running node process sees the key another process added');
  const plaintext = randomBytes(32);
  const out = await a.encrypt({ label: added, plaintext, hsmAad: Buffer.alloc(0) }, deadline());
  const back = await b.decrypt({ label: added, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad: Buffer.alloc(0) }, deadline());
  t.same(back.plaintext, plaintext, 'and both instances use it');
  t.same([a.status()[0]!.pid, b.status()[0]!.pid], [pidA, pidB], 'no node process was restarted');
});
