// The node process's session pool on a real SoftHSM2 token: one call per session at a time,
// sessions replaced after session errors, the module re-initialized after repeated device errors.
import t from 'tap';
import { Pkcs11CallError, Pkcs11Module } from '../../xks/hsm/child/pkcs11.js';
import { ExpiredError, SessionPool, type PooledSession } from '../../xks/hsm/child/session-pool.js';
import { KeyHandles } from '../../xks/hsm/child/key-handles.js';
import { LABELS, SOFTHSM_MODULE, USER_PIN, makeTestHsm } from '../helpers/softhsm.js';

const th = await makeTestHsm({ nodes: 1 });
process.env.SOFTHSM2_CONF = th.confs[0];
const mod = new Pkcs11Module(SOFTHSM_MODULE);
const pool = new SessionPool(mod, { tokenLabel: th.hsm.nodes[0]!.tokenLabel }, USER_PIN, 2);
pool.open();
const keys = new KeyHandles(mod, { copies: false, onRefused: () => undefined });
t.teardown(() => {
  pool.close();
  th.cleanup();
});

const fail = (cls: Pkcs11CallError['cls'], ckr: string) => async () => {
  throw new Pkcs11CallError(cls, 'test', ckr);
};
const grab = () => pool.use(Date.now() + 1000, async (s) => s);
/** Every session the pool holds right now: take all of them at once. */
async function sessions(): Promise<Set<PooledSession>> {
  const got: PooledSession[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const take = () =>
    pool.use(Date.now() + 1000, async (s) => {
      if (got.push(s) === 2) release();
      await gate;
    });
  await Promise.all([take(), take()]);
  return new Set(got);
}
const roundTrip = () =>
  pool.use(Date.now() + 1000, async (s) => {
    const key = keys.get(s, LABELS.aes)!;
    const out = await mod.encrypt(s.handle, key, Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync');
    return (await mod.decrypt(s.handle, key, out.iv, out.ciphertext, out.tag, Buffer.alloc(0), 'sync')).toString();
  });

t.test('key handles are cached per session; a missing label is null and not cached', async (t) => {
  await pool.use(Date.now() + 1000, async (s) => {
    const k = keys.get(s, LABELS.aes);
    t.ok(k);
    t.equal(keys.get(s, LABELS.aes), k);
    t.equal(s.keys.get(LABELS.aes)?.use, k);
    t.equal(keys.get(s, 'no-such-key'), null);
    t.notOk(s.keys.has('no-such-key'));
  });
});

t.test('a session error replaces that session; answers keep it', async (t) => {
  const before = await grab();
  await t.rejects(pool.use(Date.now() + 1000, fail('invalid-ciphertext', 'CKR_GENERAL_ERROR')));
  t.ok((await sessions()).has(before), 'a tag mismatch is not the session\'s fault');
  let broken: PooledSession | undefined;
  await t.rejects(
    pool.use(Date.now() + 1000, async (s) => {
      broken = s;
      throw new Pkcs11CallError('session', 'test', 'CKR_SESSION_HANDLE_INVALID');
    }),
  );
  const now = await sessions();
  t.equal(now.size, 2);
  t.notOk(now.has(broken!), 'replaced');
  t.equal(await roundTrip(), 'x');
});

t.test('three device errors in a row re-initialize the module with fresh sessions', async (t) => {
  const old = await sessions();
  for (let i = 0; i < 3; i++) await t.rejects(pool.use(Date.now() + 1000, fail('device', 'CKR_DEVICE_ERROR')));
  const now = await sessions();
  t.equal(now.size, 2);
  for (const s of now) t.notOk(old.has(s), 'every session is new');
  t.equal(await roundTrip(), 'x', 'and they work');
});

t.test('a success between device errors resets the count', async (t) => {
  const old = await sessions();
  await t.rejects(pool.use(Date.now() + 1000, fail('device', 'CKR_DEVICE_ERROR')));
  await t.rejects(pool.use(Date.now() + 1000, fail('device', 'CKR_DEVICE_ERROR')));
  await roundTrip();
  await t.rejects(pool.use(Date.now() + 1000, fail('device', 'CKR_DEVICE_ERROR')));
  t.same(await sessions(), old);
});

t.test('callers wait for a free session; one whose deadline passed is dropped', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const a = pool.use(Date.now() + 1000, () => held);
  const b = pool.use(Date.now() + 1000, () => held);
  const expired = pool.use(Date.now() - 1, async () => 'ran');
  const waiting = pool.use(Date.now() + 1000, async () => 'served');
  release();
  await Promise.all([a, b]);
  await t.rejects(expired, ExpiredError);
  t.equal(await waiting, 'served');
});
