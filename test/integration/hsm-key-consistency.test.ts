// One truth on every node, on real SoftHSM2 tokens: a key split with no majority refuses the start
// (and answers an error when allowed to start); a node lacking a key or holding other material is
// never chosen for it, while the key keeps being served with no failed request; a label on no node
// answers KeyNotFound; RSA, EC, HMAC and AES-128 keys are reported as what they are; a node with a
// wrong PIN does not block the start and is never retried; a node fixed while running is re-admitted.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { watchHsmKeys } from '../../xks/hsm-key-metrics.js';
import t, { type Test } from 'tap';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { HsmConfig } from '../../appliance/config/schema.js';
import type { HsmCluster } from '../../xks/hsm/types.js';
import type { TokenKey } from '../../appliance/demo/tokens.js';
import { makeKeyedHsm, waitFor } from '../helpers/softhsm.js';

const aes = (label: string, material = randomBytes(32)): TokenKey => ({ label, material, encrypt: true, decrypt: true });
const deadline = () => performance.now() + 1000;
const AAD = Buffer.from('aad');

/** A cluster on `hsm` with a log kept in memory; closed at the end of the test. */
function cluster(t: Test, hsm: HsmConfig, labels: string[]): { cluster: HsmCluster; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const c = createHsmCluster(hsm, pino({ level: 'info' }, sink));
  void c.setKeyLabels(labels);
  t.teardown(() => c.close());
  return { cluster: c, logs };
}

/** n encrypt→decrypt round trips; returns the nodes used and the failures. */
async function roundTrips(c: HsmCluster, label: string, n: number): Promise<{ nodes: Set<string>; failures: string[] }> {
  const nodes = new Set<string>();
  const failures: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const plaintext = randomBytes(64);
      const out = await c.encrypt({ label, plaintext, hsmAad: AAD }, deadline());
      const back = await c.decrypt({ label, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag, hsmAad: AAD }, deadline());
      nodes.add(out.node).add(back.node);
      if (!back.plaintext.equals(plaintext)) failures.push('wrong plaintext');
    } catch (err) {
      failures.push((err as { errorName?: string }).errorName ?? String(err));
    }
  }
  return { nodes, failures };
}

t.test('split material with no majority: the start is refused naming the key and the nodes', async (t) => {
  const th = await makeKeyedHsm([[aes('k-split')], [aes('k-split')]]);
  t.teardown(() => th.cleanup());
  const { cluster: c } = cluster(t, th.hsm, ['k-split']);
  await t.rejects(c.start(), { name: 'HsmStartError', kind: 'config', message: /key "k-split" differs between HSM nodes with no majority: hsm-1 \| hsm-2/ });
});

t.test('split allowed to start (xks keys verify): the key answers InternalException, logged once', async (t) => {
  const shared = aes('k-ok');
  const th = await makeKeyedHsm([[aes('k-split'), shared], [aes('k-split'), shared]]);
  t.teardown(() => th.cleanup());
  const { cluster: c, logs } = cluster(t, th.hsm, ['k-split', 'k-ok']);
  await c.start({ refuseSplit: false });
  t.match(c.keyReports(), [{ label: 'xks-health-test', state: 'consistent' }, { label: 'k-split', state: 'split', materialChecked: true }, { label: 'k-ok', state: 'consistent' }]);
  const split = await roundTrips(c, 'k-split', 5);
  t.same(split.failures, Array(5).fill('InternalException'), 'never served from either node');
  t.same((await roundTrips(c, 'k-ok', 10)).failures, [], 'a consistent key on the same nodes is served');
  await new Promise((r) => setTimeout(r, 800)); // two more background checks
  t.equal(logs.filter((l) => String(l.msg).includes('"k-split" differs')).length, 1, 'one error line per change, not per check or request');
});

t.test('a key missing on one node, or other material on one of three: only the majority serves it', async (t) => {
  const k = aes('k-one');
  const m = aes('k-maj');
  const th = await makeKeyedHsm([[k, m], [m], [aes('k-maj'), k]]);
  t.teardown(() => th.cleanup());
  const { cluster: c, logs } = cluster(t, th.hsm, ['k-one', 'k-maj']);
  await c.start();
  const [, one, maj] = c.keyReports();
  t.match(one, { state: 'degraded', nodes: [{ node: 'hsm-1', verdict: 'ok' }, { node: 'hsm-2', verdict: 'missing' }, { node: 'hsm-3', verdict: 'ok' }] });
  t.match(maj, { state: 'degraded', nodes: [{ node: 'hsm-1', verdict: 'ok' }, { node: 'hsm-2', verdict: 'ok' }, { node: 'hsm-3', verdict: 'other-material' }] });
  const a = await roundTrips(c, 'k-one', 30);
  t.same(a.failures, [], '0 failed requests for the key missing on hsm-2');
  t.notOk(a.nodes.has('hsm-2'), 'hsm-2 never chosen for k-one');
  const b = await roundTrips(c, 'k-maj', 30);
  t.same(b.failures, [], '0 failed requests for the key with other material on hsm-3');
  t.notOk(b.nodes.has('hsm-3'), 'hsm-3 never chosen for k-maj');
  for (let i = 0; i < 10; i++) t.equal((await c.keyInfo('k-one', deadline()))?.keySpec, 'AES_256', 'metadata never answers "not found" from hsm-2');
  const status = c.status();
  t.match(status, [{ id: 'hsm-1', health: 'ACTIVE' }, { id: 'hsm-2', health: 'DEGRADED', detail: /k-one: missing/ }, { id: 'hsm-3', health: 'DEGRADED', detail: /k-maj: other-material/ }]);
  t.ok(logs.some((l) => l.level === 40 && /key "k-one" is not served by hsm-2 \(no key labelled "k-one"\)/.test(String(l.msg))), 'a warning names the key and the node');
  const registry = new Registry();
  watchHsmKeys(registry, c);
  const text = await registry.metrics();
  t.match(text, /xks_proxy_hsm_key_state\{key="k-one",state="degraded"\} 1/);
  t.match(text, /xks_proxy_hsm_key_served\{key="k-one",node="hsm-2"\} 0/);
  t.match(text, /xks_proxy_hsm_key_served\{key="k-maj",node="hsm-1"\} 1/);
  t.match(text, /xks_proxy_hsm_key_served\{key="k-maj",node="hsm-3"\} 0/);
});

t.test('a label on no node answers KeyNotFound; RSA, EC, HMAC and AES-128 keys are reported as what they are', async (t) => {
  const odd: TokenKey[] = [
    { label: 'k-rsa', material: Buffer.alloc(0), encrypt: false, decrypt: false, keyType: 'RSA' },
    { label: 'k-ec', material: Buffer.alloc(0), encrypt: false, decrypt: false, keyType: 'EC' },
    { label: 'k-hmac', material: randomBytes(32), encrypt: false, decrypt: false, keyType: 'GENERIC_SECRET' },
    aes('k-aes128', randomBytes(16)),
  ];
  const th = await makeKeyedHsm([odd, odd]);
  t.teardown(() => th.cleanup());
  const { cluster: c } = cluster(t, th.hsm, ['k-none', 'k-rsa', 'k-ec', 'k-hmac', 'k-aes128']);
  await c.start();
  t.match(
    c.keyReports().map((r) => [r.label, r.state]),
    [['xks-health-test', 'consistent'], ['k-none', 'absent'], ['k-rsa', 'consistent'], ['k-ec', 'consistent'], ['k-hmac', 'consistent'], ['k-aes128', 'consistent']],
  );
  await t.rejects(c.keyInfo('k-none', deadline()), { name: 'HsmError', errorName: 'KeyNotFoundException' });
  await t.rejects(c.encrypt({ label: 'k-none', plaintext: Buffer.from('x'), hsmAad: AAD }, deadline()), { name: 'HsmError', errorName: 'KeyNotFoundException' });
  t.match(await c.keyInfo('k-rsa', deadline()), { objectClass: 'PRIVATE_KEY', keyType: 'RSA', keySpec: 'RSA_2048', otherUsage: ['SIGN'] });
  t.match(await c.keyInfo('k-ec', deadline()), { objectClass: 'PRIVATE_KEY', keyType: 'EC', keySpec: 'ECC_NIST_P256' });
  t.match(await c.keyInfo('k-hmac', deadline()), { objectClass: 'SECRET_KEY', keyType: 'GENERIC_SECRET', keySpec: 'HMAC_256', encrypt: false, decrypt: false });
  t.match(await c.keyInfo('k-aes128', deadline()), { keySpec: 'AES_128', encrypt: true, decrypt: true });
  await t.rejects(c.encrypt({ label: 'k-rsa', plaintext: Buffer.from('x'), hsmAad: AAD }, deadline()), { name: 'HsmError', errorName: 'InvalidKeyUsageException' }, 'an RSA key is refused as a usage, not "not found"');
});

t.test('one node with a wrong PIN at start: the proxy starts on the other; the node is never retried', async (t) => {
  const k = aes('k');
  const th = await makeKeyedHsm([[k], [k]]);
  t.teardown(() => th.cleanup());
  const wrong = join(th.dir, 'wrong.pin');
  writeFileSync(wrong, '11112222', { mode: 0o600 });
  const hsm = { ...th.hsm, nodes: [th.hsm.nodes[0]!, { ...th.hsm.nodes[1]!, pin: { file: wrong } }] };
  const { cluster: c, logs } = cluster(t, hsm, ['k']);
  await c.start();
  t.match(c.status(), [{ id: 'hsm-1', health: 'ACTIVE' }, { id: 'hsm-2', health: 'UNAVAILABLE', pid: undefined, detail: /CKR_PIN_INCORRECT.*\(not retried\)/ }]);
  const r = await roundTrips(c, 'k', 20);
  t.same(r.failures, [], '0 failed requests');
  t.same([...r.nodes], ['hsm-1']);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.equal(c.status()[1]!.pid, undefined, 'no new process for the wrong-PIN node');
  t.equal(c.status()[1]!.restarts, 0);
  t.equal(logs.filter((l) => /CKR_PIN_INCORRECT/.test(String(l.msg))).length, 1, 'said once');
  t.match(logs.find((l) => /CKR_PIN_INCORRECT/.test(String(l.msg))), { level: 50, node: 'hsm-2', retried: false, msg: /not retried: fix the PIN/ });
  t.notOk(JSON.stringify(logs).includes('11112222'), 'the PIN never in the log');
});

t.test('a node that cannot start is retried with back-off and re-admitted once fixed; hsm.minNodesAtStart', async (t) => {
  const k = aes('k');
  const th = await makeKeyedHsm([[k], [k]], { tokens: [true, false] });
  t.teardown(() => th.cleanup());
  const strict = cluster(t, { ...th.hsm, minNodesAtStart: 2 }, ['k']).cluster;
  await t.rejects(strict.start(), { message: /^1 of 2 HSM nodes started, hsm.minNodesAtStart is 2: HSM node hsm-2: no token labelled "xks-test-2"/ });
  const { cluster: c } = cluster(t, th.hsm, ['k']);
  await c.start();
  t.match(c.status(), [{ id: 'hsm-1', health: 'ACTIVE' }, { id: 'hsm-2', health: 'UNAVAILABLE' }]);
  t.same((await roundTrips(c, 'k', 10)).failures, []);
  await th.initToken(1);
  await waitFor('hsm-2 re-admitted', () => c.status()[1]!.health === 'ACTIVE', 20_000);
  t.match(c.keyReports()[1], { label: 'k', state: 'consistent', nodes: [{ verdict: 'ok' }, { verdict: 'ok' }] });
  const after = await roundTrips(c, 'k', 40);
  t.same(after.failures, []);
  t.ok(after.nodes.has('hsm-2'), 'the fixed node serves');
});
