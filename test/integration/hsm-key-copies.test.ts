// Session copies of token keys (sessionKeyCopies) on real SoftHSM2 tokens. In this process: a node
// service with copies ('auto' on SoftHSM2) beside one without, on the same token, so that a change
// made on the token shows which object each one really uses: the copy serves until its refresh
// bound, the token object stops at once. Then real node processes: a node with copies and one
// without serve the same keys interchangeably, and a key the module refuses to copy is served
// from its token object with one warning in the log.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import pino from 'pino';
import pkcs11js from 'pkcs11js';
import t from 'tap';
import type { TokenKey } from '../../appliance/demo/tokens.js';
import { Pkcs11AdminModule } from '../../xks/hsm/admin/token-admin.js';
import { KeyMissingError, NodeService } from '../../xks/hsm/child/node-service.js';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import type { EncryptInput, KeyInfo } from '../../xks/hsm/types.js';
import { LABELS, SOFTHSM_MODULE, USER_PIN, makeKeyedHsm, waitFor } from '../helpers/softhsm.js';

const aes = (label: string, extra: Partial<TokenKey> = {}): TokenKey => ({ label, material: randomBytes(32), encrypt: true, decrypt: true, ...extra });
const AAD = Buffer.from('aad');
/** Long enough that the calls right after a change on the token all fall inside it. */
const REFRESH_MS = 1500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What Node's own AES-GCM makes of an encrypt result under `material`. */
function open(material: Buffer, out: { iv: Buffer; ciphertext: Buffer; tag: Buffer }, aad = AAD): Buffer | null {
  try {
    const d = createDecipheriv('aes-256-gcm', material, out.iv).setAAD(aad).setAuthTag(out.tag);
    return Buffer.concat([d.update(out.ciphertext), d.final()]);
  } catch {
    return null;
  }
}

t.test('in one process, beside a node without copies', async (t) => {
  const keys = { deleted: aes('k-deleted'), replaced: aes('k-replaced'), lost: aes('k-lost'), fixed: aes('k-fixed', { copyable: false }) };
  const th = await makeKeyedHsm([Object.values(keys)]);
  t.teardown(th.cleanup);
  process.env.SOFTHSM2_CONF = th.confs[0];
  const cfg = th.hsm.nodes[0]!;
  const notices: string[] = [];
  const on = await NodeService.open({ ...cfg, sessionKeyCopies: 'auto' }, LABELS.health, { keyRefreshMs: REFRESH_MS, notice: (m) => notices.push(m) });
  const off = await NodeService.open({ ...cfg, sessionKeyCopies: false }, LABELS.health, { keyRefreshMs: REFRESH_MS, notice: (m) => notices.push(m) });
  // The token as an operator's tool sees it: a read-write session of its own in this process.
  const admin = new Pkcs11AdminModule(SOFTHSM_MODULE);
  admin.initialize();
  const rw = admin.openSession(admin.findSlot({ tokenLabel: cfg.tokenLabel }), true);
  admin.login(rw, USER_PIN);
  t.teardown(() => {
    // Both services share the module: finalizing it (close) ends every session of this process.
    off.close();
    on.close();
  });
  const expires = () => Date.now() + 5000;
  const encrypt = (svc: NodeService, label: string, cdiv = true) => {
    const input: EncryptInput = { label, plaintext: randomBytes(48), hsmAad: AAD, ...(cdiv ? { cdiv: { aad: AAD, metadata: Buffer.from('m') } } : {}) };
    return svc.run({ op: 'encrypt', input }, expires()) as Promise<{ iv: Buffer; ciphertext: Buffer; tag: Buffer; cdiv?: Buffer }>;
  };
  const tokenObject = (label: string) => admin.findSecretKey(rw, label)!;

  await t.test('a key deleted or replaced on the token: the copy serves until the bound, the token object stops at once', async (t) => {
    // Both services look each key up (and the one with copies copies it) before the change.
    for (const svc of [on, off]) for (const k of [keys.deleted, keys.replaced]) t.ok(await encrypt(svc, k.label));
    admin.destroy(rw, tokenObject(keys.deleted.label));
    admin.destroy(rw, tokenObject(keys.replaced.label));
    const fresh = randomBytes(32);
    admin.importSecretKey(rw, { label: keys.replaced.label, material: fresh, keyType: 'AES', encrypt: true, decrypt: true });

    const served = await encrypt(on, keys.deleted.label);
    t.ok(open(keys.deleted.material, served), 'the deleted key is still served, from its session copy');
    t.ok(open(keys.replaced.material, await encrypt(on, keys.replaced.label)), 'the replaced key: still the old material');
    t.equal(await on.run({ op: 'keyInfo', label: keys.deleted.label }, expires()), null, 'GetKeyMetadata reads the token, where the key is gone');
    t.equal(((await on.run({ op: 'keyInfo', label: keys.replaced.label }, expires())) as KeyInfo | null)?.keySpec, 'AES_256');

    await t.rejects(encrypt(off, keys.deleted.label), KeyMissingError, 'without copies the stale handle is looked up again: gone');
    t.ok(open(fresh, await encrypt(off, keys.replaced.label)), 'without copies the new key is used at once, no error');

    await sleep(REFRESH_MS + 100);
    await t.rejects(encrypt(on, keys.deleted.label), KeyMissingError, 'after the bound the deleted key is gone for the copies too');
    t.ok(open(fresh, await encrypt(on, keys.replaced.label)), 'after the bound the copy is of the new key');
  });

  await t.test('a copy gone behind the node\'s back is looked up again once, not an error', async (t) => {
    t.ok(await encrypt(on, keys.lost.label));
    // Session objects are visible to every session of the application: destroy the copies.
    const copies = admin.findObjects(rw, [{ type: pkcs11js.CKA_LABEL, value: keys.lost.label }, { type: pkcs11js.CKA_TOKEN, value: false }], 8);
    t.ok(copies.length >= 1, 'the node made a session copy');
    for (const h of copies) admin.destroy(rw, h);
    const out = await encrypt(on, keys.lost.label);
    t.ok(open(keys.lost.material, out));
    const back = (await on.run({ op: 'decrypt', input: { label: keys.lost.label, hsmAad: AAD, ...out } }, expires())) as { plaintext: Buffer };
    t.same(back.plaintext, open(keys.lost.material, out));
  });

  await t.test('a key the module refuses to copy (CKA_COPYABLE false) is served from the token object, told once', async (t) => {
    // Two at a time: both pooled sessions try to copy it; then again after a refresh.
    for (let round = 0; round < 2; round++) {
      const outs = await Promise.all([encrypt(on, keys.fixed.label), encrypt(on, keys.fixed.label, false)]);
      for (const out of outs) t.ok(open(keys.fixed.material, out));
      if (round === 0) await sleep(REFRESH_MS + 100);
    }
    t.equal(notices.length, 1, 'one notice');
    t.match(notices[0], /refused a session copy of key "k-fixed" \(CKR_ACTION_PROHIBITED\)/);
  });

  await t.test('ciphertexts of one open with the other', async (t) => {
    for (const [a, b] of [[on, off], [off, on]] as const) {
      const out = await encrypt(a, keys.lost.label);
      const back = (await b.run({ op: 'decrypt', input: { label: keys.lost.label, hsmAad: AAD, ...out } }, expires())) as { plaintext: Buffer };
      t.same(back.plaintext, open(keys.lost.material, out));
    }
  });
});

t.test('node processes: one with copies, one without, and a key that cannot be copied', async (t) => {
  const keys = [aes('k-1'), aes('k-nocopy', { copyable: false })];
  const th = await makeKeyedHsm([keys, keys]);
  t.teardown(th.cleanup);
  th.hsm.nodes[0]!.sessionKeyCopies = true;
  th.hsm.nodes[1]!.sessionKeyCopies = false;
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const cluster = createHsmCluster({ ...th.hsm, callTimeoutMs: 2000, requestBudgetMs: 5000 }, pino({ level: 'info' }, sink));
  t.teardown(() => cluster.close());
  await cluster.setKeyLabels(keys.map((k) => k.label));
  await cluster.start();
  // The key check makes a ciphertext on each node and opens it on the other.
  t.same(
    cluster.keyReports().map((r) => [r.label, r.state]),
    [LABELS.health, ...keys.map((k) => k.label)].map((label) => [label, 'consistent']),
  );
  const nodes = new Set<string>();
  for (let i = 0; i < 20; i++) {
    for (const k of keys) {
      const plaintext = randomBytes(64);
      const out = await cluster.encrypt({ label: k.label, plaintext, hsmAad: AAD, cdiv: { aad: AAD, metadata: Buffer.alloc(0) } }, performance.now() + 5000);
      t.same(open(k.material, out), plaintext);
      const c = createCipheriv('aes-256-gcm', k.material, out.iv).setAAD(AAD);
      t.same(Buffer.concat([c.update(plaintext), c.final()]), out.ciphertext, 'the same AES-GCM as Node\'s');
      const back = await cluster.decrypt({ label: k.label, hsmAad: AAD, iv: out.iv, ciphertext: out.ciphertext, tag: out.tag }, performance.now() + 5000);
      t.same(back.plaintext, plaintext);
      nodes.add(`${out.node}>${back.node}`);
    }
  }
  t.ok(nodes.has('hsm-1>hsm-2') || nodes.has('hsm-2>hsm-1'), `ciphertexts crossed between the nodes (${[...nodes].join(', ')})`);
  await waitFor('the refusal notice', () => logs.some((l) => String(l.msg).includes('refused a session copy')), 5000);
  const refusals = logs.filter((l) => String(l.msg).includes('refused a session copy'));
  t.equal(refusals.length, 1, 'logged once');
  t.equal(refusals[0]!.node, 'hsm-1');
  t.equal(refusals[0]!.level, 40, 'a warning');
  t.match(String(refusals[0]!.msg), /^HSM node hsm-1: the module refused a session copy of key "k-nocopy"/);
});
