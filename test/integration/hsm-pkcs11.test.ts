// The PKCS#11 wrapper against a real SoftHSM2 token, in this process. Node's own aes-256-gcm with
// the same key, IV and AAD is the oracle: SoftHSM2's output is ciphertext||tag, byte for byte.
import { createCipheriv, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { IvNotReturnedError, Pkcs11CallError, Pkcs11Module, type CallMode, type Handle } from '../../xks/hsm/child/pkcs11.js';
import { LABELS, SOFTHSM_MODULE, USER_PIN, makeTestHsm } from '../helpers/softhsm.js';

const th = await makeTestHsm({ nodes: 1 });
// SoftHSM2 reads its configuration at C_Initialize, in this process.
process.env.SOFTHSM2_CONF = th.confs[0];
const mod = new Pkcs11Module(SOFTHSM_MODULE);
mod.initialize();
const slot = mod.findSlot({ tokenLabel: th.hsm.nodes[0]!.tokenLabel });
const sessions = Array.from({ length: 4 }, () => mod.openSession(slot));
for (const s of sessions) mod.login(s, USER_PIN);
const s0 = sessions[0]!;
t.teardown(() => {
  mod.finalize();
  th.cleanup();
});

const key = (label: string): Handle => {
  const k = mod.findSecretKey(s0, label);
  if (!k) throw new Error(`no key ${label}`);
  return k;
};

function oracle(label: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', th.material[label]!, iv);
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

async function rejectsWith(t: Test, p: Promise<unknown>, cls: string, ckr?: string): Promise<void> {
  try {
    await p;
    t.fail(`expected ${cls}`);
  } catch (err) {
    t.type(err, Pkcs11CallError);
    t.equal((err as Pkcs11CallError).cls, cls);
    if (ckr) t.equal((err as Pkcs11CallError).ckr, ckr);
  }
}

for (const mode of ['sync', 'async'] as CallMode[]) {
  t.test(`${mode}: encrypt matches Node's aes-256-gcm and decrypts back`, async (t) => {
    const k = key(LABELS.aes);
    for (const size of [0, 1, 256, 4300]) {
      const plaintext = randomBytes(size);
      const aad = randomBytes(size % 97);
      const out = await mod.encrypt(s0, k, plaintext, aad, 'caller', mode);
      t.equal(out.iv.length, 12);
      t.equal(out.tag.length, 16);
      t.equal(out.ciphertext.length, size);
      t.same(Buffer.concat([out.ciphertext, out.tag]), oracle(LABELS.aes, out.iv, plaintext, aad), `${size} bytes: byte-identical`);
      const back = await mod.decrypt(s0, k, out.iv, out.ciphertext, out.tag, aad, mode);
      t.same(back, plaintext);
    }
  });

  t.test(`${mode}: a tag mismatch is invalid-ciphertext (SoftHSM2 says CKR_GENERAL_ERROR)`, async (t) => {
    const k = key(LABELS.aes);
    const aad = Buffer.from('aad');
    const out = await mod.encrypt(s0, k, Buffer.from('plaintext'), aad, 'caller', mode);
    const badTag = Buffer.from(out.tag);
    badTag[0]! ^= 1;
    await rejectsWith(t, mod.decrypt(s0, k, out.iv, out.ciphertext, badTag, aad, mode), 'invalid-ciphertext', 'CKR_GENERAL_ERROR');
    await rejectsWith(t, mod.decrypt(s0, k, out.iv, out.ciphertext, out.tag, Buffer.from('aae'), mode), 'invalid-ciphertext');
    // The failed operation did not leave the session unusable.
    t.same(await mod.decrypt(s0, k, out.iv, out.ciphertext, out.tag, aad, mode), Buffer.from('plaintext'));
  });
}

t.test('a 16-byte IV works: ulIvBits follows the IV length', async (t) => {
  const iv = randomBytes(16);
  const plaintext = randomBytes(64);
  const aad = randomBytes(10);
  const ctTag = oracle(LABELS.aes, iv, plaintext, aad);
  const back = await mod.decrypt(s0, key(LABELS.aes), iv, ctTag.subarray(0, 64), ctTag.subarray(64), aad, 'sync');
  t.same(back, plaintext);
});

t.test("ivMode 'hsm': SoftHSM2 leaves the zero IV unchanged, so the result is refused", async (t) => {
  for (const mode of ['sync', 'async'] as CallMode[]) {
    await t.rejects(mod.encrypt(s0, key(LABELS.aes), Buffer.from('x'), Buffer.alloc(0), 'hsm', mode), IvNotReturnedError);
  }
});

t.test('keyInfo reads type, length and usage', async (t) => {
  t.match(mod.keyInfo(s0, key(LABELS.aes)), { keyType: 'AES', valueLen: 32, encrypt: true, decrypt: true });
  t.match(mod.keyInfo(s0, key(LABELS.encryptOnly)), { keyType: 'AES', valueLen: 32, encrypt: true, decrypt: false });
  t.match(mod.keyInfo(s0, key(LABELS.decryptOnly)), { keyType: 'AES', valueLen: 32, encrypt: false, decrypt: true });
  t.match(mod.keyInfo(s0, key(LABELS.generic)), { keyType: 'GENERIC_SECRET', valueLen: 32, encrypt: true, decrypt: true });
  t.equal(mod.findSecretKey(s0, 'no-such-key'), null);
});

t.test('repeated lookups in one session work (C_FindObjectsFinal is always called)', async (t) => {
  let found = 0;
  let missing = 0;
  for (let i = 0; i < 50; i++) {
    if (mod.findSecretKey(s0, LABELS.aes) !== null) found++;
    if (mod.findSecretKey(s0, 'no-such-key') === null) missing++;
  }
  t.equal(found, 50, 'the key is found every time (a search left open would fail with CKR_OPERATION_ACTIVE)');
  t.equal(missing, 50, 'a missing key is reported missing every time');
  const out = await mod.encrypt(s0, key(LABELS.aes), Buffer.from('after'), Buffer.alloc(0), 'caller', 'sync');
  t.equal(out.ciphertext.length, 5, 'and the session still encrypts')
});

t.test('a key that does not allow the operation is a key-usage failure', async (t) => {
  await rejectsWith(t, mod.encrypt(s0, key(LABELS.decryptOnly), Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync'), 'key-usage');
  await rejectsWith(t, mod.encrypt(s0, key(LABELS.generic), Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync'), 'key-usage');
  const out = await mod.encrypt(s0, key(LABELS.encryptOnly), Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync');
  await rejectsWith(t, mod.decrypt(s0, key(LABELS.encryptOnly), out.iv, out.ciphertext, out.tag, Buffer.alloc(0), 'sync'), 'key-usage');
});

t.test('a closed session is a session failure; a second login is fine', async (t) => {
  const s = mod.openSession(slot);
  mod.login(s, USER_PIN);
  const k = mod.findSecretKey(s, LABELS.aes)!;
  mod.closeSession(s);
  await rejectsWith(t, mod.encrypt(s, k, Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync'), 'session', 'CKR_SESSION_HANDLE_INVALID');
  // Login state is per token and application: CKR_USER_ALREADY_LOGGED_IN counts as success.
  const s2 = mod.openSession(slot);
  t.doesNotThrow(() => mod.login(s2, USER_PIN));
  mod.closeSession(s2);
});

t.test('concurrent async calls on separate sessions (CKF_OS_LOCKING_OK)', async (t) => {
  const k = sessions.map((s) => mod.findSecretKey(s, LABELS.aes)!);
  const plaintext = randomBytes(256);
  let ok = 0;
  await Promise.all(
    sessions.map(async (s, i) => {
      for (let n = 0; n < 100; n++) {
        const out = await mod.encrypt(s, k[i]!, plaintext, Buffer.alloc(0), 'caller', 'async');
        if ((await mod.decrypt(s, k[i]!, out.iv, out.ciphertext, out.tag, Buffer.alloc(0), 'async')).equals(plaintext)) ok++;
      }
    }),
  );
  t.equal(ok, 400);
});
