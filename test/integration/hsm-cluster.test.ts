// The HSM cluster with real node processes over real SoftHSM2 tokens: crypto results, answers that
// must not be retried, key information, call modes, a one-node cluster and back-pressure.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { HsmError } from '../../xks/hsm/errors.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { HsmCluster } from '../../xks/hsm/types.js';
import { LABELS, makeTestHsm, startTestCluster, type TestHsmOptions } from '../helpers/softhsm.js';

// What this file checks is which answers are retried and which are not, not latency: deadlines
// wide enough that a busy 2-core machine never turns a slow call into a failover (which would
// count a second node asked). Deadlines themselves are tested in test/failover.
const BUDGET = 5000;
const deadline = () => performance.now() + BUDGET;
const WIDE = { callTimeoutMs: 2000, requestBudgetMs: BUDGET, hangKillAfterMs: 10_000 };

const started = (t: Test, opts: TestHsmOptions = {}) => startTestCluster(t, { ...opts, hsm: { ...WIDE, ...opts.hsm } });

async function rejectsWithName(t: Test, p: Promise<unknown>, errorName: string): Promise<void> {
  try {
    await p;
    t.fail(`expected ${errorName}`);
  } catch (err) {
    t.type(err, HsmError);
    t.equal((err as HsmError).errorName, errorName);
  }
}

const totalCalls = (c: HsmCluster) => c.status().reduce((sum, n) => sum + (n.calls ?? 0), 0);

t.test('two nodes: start, encrypt/decrypt round trips, oracle-identical output', async (t) => {
  const { th, cluster } = await started(t);
  const status = cluster.status();
  t.same(
    status.map((n) => [n.id, n.health, n.model]),
    [
      ['hsm-1', 'ACTIVE', 'SoftHSM2'],
      ['hsm-2', 'ACTIVE', 'SoftHSM2'],
    ],
  );
  t.ok(status.every((n) => typeof n.pid === 'number' && n.pid !== process.pid && n.lastProbeAt !== undefined));

  const nodesUsed = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const plaintext = randomBytes(1 + i * 50);
    const hsmAad = randomBytes(i);
    const out = await cluster.encrypt({ label: LABELS.aes, plaintext, hsmAad }, deadline());
    const c = createCipheriv('aes-256-gcm', th.material[LABELS.aes]!, out.iv).setAAD(hsmAad);
    t.same(Buffer.concat([out.ciphertext, out.tag]), Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]));
    const back = await cluster.decrypt({ label: LABELS.aes, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad }, deadline());
    t.same(back.plaintext, plaintext);
    nodesUsed.add(out.node).add(back.node);
  }
  t.same([...nodesUsed].sort(), ['hsm-1', 'hsm-2'], 'both nodes serve: they hold the same keys');
});

t.test('CDIV: computed over the exact output, after which the node verified it', async (t) => {
  const { th, cluster } = await started(t, { nodes: 1 });
  const aad = Buffer.from('project=nile');
  const metadata = Buffer.from([1]);
  const plaintext = randomBytes(100);
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext, hsmAad: Buffer.concat([aad, metadata]), cdiv: { aad, metadata } }, deadline());
  // The oracle is written out here (Appendix C: SHA-256 over AAD, metadata, IV, ciphertext, tag,
  // concatenated), not taken from the code under test.
  const want = createHash('sha256').update(Buffer.concat([aad, metadata, out.iv, out.ciphertext, out.tag])).digest();
  t.same(out.cdiv, want);
  // And the ciphertext it covers is the real one: it opens with the key under the same AAD.
  const d = createDecipheriv('aes-256-gcm', th.material[LABELS.aes]!, out.iv).setAAD(Buffer.concat([aad, metadata])).setAuthTag(out.tag);
  t.same(Buffer.concat([d.update(out.ciphertext), d.final()]), plaintext, 'the CDIV covers the ciphertext that decrypts to the plaintext');
  // The verification decrypt needs decrypt permission (spec C4); without CDIV the key still encrypts.
  await rejectsWithName(t, cluster.encrypt({ label: LABELS.encryptOnly, plaintext, hsmAad: aad, cdiv: { aad, metadata } }, deadline()), 'InvalidKeyUsageException');
  const plain = await cluster.encrypt({ label: LABELS.encryptOnly, plaintext, hsmAad: aad }, deadline());
  t.equal(plain.cdiv, undefined);
});

t.test('tampering is InvalidCiphertextException from one node, never retried on another', async (t) => {
  const { cluster } = await started(t);
  const hsmAad = Buffer.from('aad');
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('secret'), hsmAad }, deadline());
  const flip = (b: Buffer) => Buffer.from(b.map((x, i) => (i === 0 ? x ^ 1 : x)));
  const tampered = [
    { iv: out.iv, ciphertext: out.ciphertext, tag: flip(out.tag), hsmAad },
    { iv: out.iv, ciphertext: flip(out.ciphertext), tag: out.tag, hsmAad },
    { iv: flip(out.iv), ciphertext: out.ciphertext, tag: out.tag, hsmAad },
    { iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad: Buffer.from('aae') },
  ];
  for (const input of tampered) {
    const before = totalCalls(cluster);
    await rejectsWithName(t, cluster.decrypt({ label: LABELS.aes, ...input }, deadline()), 'InvalidCiphertextException');
    t.equal(totalCalls(cluster) - before, 1, 'exactly one node was asked');
  }
  t.ok(cluster.status().every((n) => n.health === 'ACTIVE'), 'an answer is not a node failure');
});

t.test('keyInfo: AES-256, a non-AES key, usage flags, a missing label', async (t) => {
  const { cluster } = await started(t);
  const aes = await cluster.keyInfo(LABELS.aes, deadline());
  t.match(aes, { keyType: 'AES', valueLen: 32, encrypt: true, decrypt: true });
  t.ok(aes && ['hsm-1', 'hsm-2'].includes(aes.node));
  t.match(await cluster.keyInfo(LABELS.generic, deadline()), { keyType: 'GENERIC_SECRET', valueLen: 32 });
  t.match(await cluster.keyInfo(LABELS.encryptOnly, deadline()), { keyType: 'AES', encrypt: true, decrypt: false });
  t.match(await cluster.keyInfo(LABELS.decryptOnly, deadline()), { keyType: 'AES', encrypt: false, decrypt: true });
  t.equal(await cluster.keyInfo('no-such-key', deadline()), null);
});

t.test('keys that do not allow the operation: InvalidKeyUsageException; unknown label: KeyNotFoundException', async (t) => {
  const { cluster } = await started(t);
  const hsmAad = Buffer.alloc(3);
  await rejectsWithName(t, cluster.encrypt({ label: LABELS.decryptOnly, plaintext: Buffer.from('x'), hsmAad }, deadline()), 'InvalidKeyUsageException');
  await rejectsWithName(t, cluster.encrypt({ label: LABELS.generic, plaintext: Buffer.from('x'), hsmAad }, deadline()), 'InvalidKeyUsageException');
  await rejectsWithName(t, cluster.encrypt({ label: 'no-such-key', plaintext: Buffer.from('x'), hsmAad }, deadline()), 'KeyNotFoundException');
  t.ok(cluster.status().every((n) => n.health === 'ACTIVE'));
});

t.test("callMode 'async' and a one-node cluster (a vendor HA library presents one slot)", async (t) => {
  const { cluster } = await started(t, { nodes: 1, node: { callMode: 'async', sessions: 4 } });
  t.equal(cluster.status().length, 1);
  const hsmAad = Buffer.from('a');
  const results = await Promise.all(
    Array.from({ length: 24 }, async (_, i) => {
      const plaintext = randomBytes(32 + i);
      const out = await cluster.encrypt({ label: LABELS.aes, plaintext, hsmAad }, deadline());
      const back = await cluster.decrypt({ label: LABELS.aes, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad }, deadline());
      return back.plaintext.equals(plaintext);
    }),
  );
  t.equal(results.filter(Boolean).length, 24);
  const out = await cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad }, deadline());
  await rejectsWithName(t, cluster.decrypt({ label: LABELS.aes, iv: out.iv, ciphertext: out.ciphertext, tag: Buffer.alloc(16), hsmAad }, deadline()), 'InvalidCiphertextException');
});

t.test('back-pressure: beyond the in-flight bound requests get ThrottlingException at once', async (t) => {
  const { cluster } = await started(t, { nodes: 1 });
  // Slow but within the deadline: the first requests fill the node, the rest must not queue.
  await cluster.injectFault('hsm-1', { kind: 'slow', ms: 40 });
  const settled = await Promise.allSettled(
    Array.from({ length: 100 }, () => cluster.encrypt({ label: LABELS.aes, plaintext: Buffer.from('x'), hsmAad: Buffer.alloc(3) }, deadline())),
  );
  const ok = settled.filter((r) => r.status === 'fulfilled').length;
  const throttled = settled.filter((r) => r.status === 'rejected' && (r.reason as HsmError).errorName === 'ThrottlingException').length;
  t.ok(ok > 0, `${ok} served`);
  t.ok(throttled > 0, `${throttled} throttled`);
  t.equal(ok + throttled, 100, 'nothing else went wrong');
  await cluster.injectFault('hsm-1', { kind: 'none' });
});

t.test('close() ends every node process', async (t) => {
  const th = await makeTestHsm();
  t.teardown(() => th.cleanup());
  const cluster = createHsmCluster(th.hsm);
  await cluster.start();
  const pids = cluster.status().map((n) => n.pid!);
  await cluster.close();
  for (const pid of pids) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `process ${pid} is gone`);
  t.ok(cluster.status().every((n) => n.pid === undefined));
});
