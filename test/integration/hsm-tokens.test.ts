// Demo token provisioning against real SoftHSM2: the token, its user PIN and non-extractable keys
// holding the given material; running it again only adds missing keys.
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import t from 'tap';
import { provisionToken, writeSoftHsmConf, type TokenKey } from '../../appliance/demo/tokens.js';
import { Pkcs11Module } from '../../xks/hsm/child/pkcs11.js';
import { SOFTHSM_MODULE, SO_PIN, USER_PIN } from '../helpers/softhsm.js';

const dir = mkdtempSync(join(tmpdir(), 'xks-tokens-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const conf = writeSoftHsmConf(dir);
const env = { SOFTHSM2_CONF: conf };
process.env.SOFTHSM2_CONF = conf;

const k1: TokenKey = { label: 'k1', material: randomBytes(32), encrypt: true, decrypt: true };
const k2: TokenKey = { label: 'k2', material: randomBytes(32), encrypt: true, decrypt: false };
const k3: TokenKey = { label: 'k3', material: randomBytes(32), encrypt: false, decrypt: true };

/** Opens the token in this process, runs `fn`, and finalizes again (SoftHSM2 reads the store at init). */
async function withToken<T>(label: string, fn: (mod: Pkcs11Module, lib: pkcs11js.PKCS11, s: Buffer) => Promise<T>): Promise<T> {
  const mod = new Pkcs11Module(SOFTHSM_MODULE);
  const lib = new pkcs11js.PKCS11();
  lib.load(SOFTHSM_MODULE);
  mod.initialize();
  try {
    const s = mod.openSession(mod.findSlot({ tokenLabel: label }));
    mod.login(s, USER_PIN);
    return await fn(mod, lib, s);
  } finally {
    mod.finalize();
  }
}

t.test('writeSoftHsmConf: a token directory and a file-backed configuration', async (t) => {
  const text = readFileSync(conf, 'utf8');
  t.match(text, `directories.tokendir = ${join(dir, 'tokens')}\n`);
  t.match(text, 'objectstore.backend = file\n');
  t.match(text, 'log.level = ERROR\n');
  t.ok(statSync(join(dir, 'tokens')).isDirectory());
  t.equal(statSync(conf).mode & 0o077, 0);
});

t.test('a new token with its keys: material as given, sensitive and not extractable', async (t) => {
  await provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel: 'demo-1', soPin: SO_PIN, userPin: USER_PIN, keys: [k1, k2] });
  await withToken('demo-1', async (mod, lib, s) => {
    for (const k of [k1, k2]) {
      const h = mod.findSecretKey(s, k.label)!;
      t.match(mod.keyInfo(s, h), { keyType: 'AES', valueLen: 32, encrypt: k.encrypt, decrypt: k.decrypt });
      const [sensitive, extractable, token] = lib.C_GetAttributeValue(s, h, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_TOKEN },
      ]);
      t.same([sensitive!.value, extractable!.value, token!.value], [Buffer.from([1]), Buffer.from([0]), Buffer.from([1])]);
      t.throws(() => lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
      // The imported material is what encrypts: Node's aes-256-gcm agrees byte for byte.
      const out = await mod.encrypt(s, h, Buffer.from('check'), Buffer.alloc(0), 'caller', 'sync');
      const c = createCipheriv('aes-256-gcm', k.material, out.iv);
      t.same(Buffer.concat([out.ciphertext, out.tag]), Buffer.concat([c.update('check'), c.final(), c.getAuthTag()]));
    }
  });
});

t.test('provisioning again keeps the token and its keys, adding only what is missing', async (t) => {
  const other = { ...k1, material: randomBytes(32) };
  await provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel: 'demo-1', soPin: SO_PIN, userPin: USER_PIN, keys: [other, k3] });
  await withToken('demo-1', async (mod, _lib, s) => {
    t.ok(mod.findSecretKey(s, 'k2'), 'keys from the first run are still there');
    t.match(mod.keyInfo(s, mod.findSecretKey(s, 'k3')!), { keyType: 'AES', valueLen: 32, encrypt: false, decrypt: true });
    // k1 existed: it was not replaced with the new material.
    const out = await mod.encrypt(s, mod.findSecretKey(s, 'k1')!, Buffer.from('x'), Buffer.alloc(0), 'caller', 'sync');
    const c = createCipheriv('aes-256-gcm', k1.material, out.iv);
    t.same(Buffer.concat([out.ciphertext, out.tag]), Buffer.concat([c.update('x'), c.final(), c.getAuthTag()]));
  });
});

t.test('a second token in the same directory takes another free slot', async (t) => {
  await provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel: 'demo-2', soPin: SO_PIN, userPin: USER_PIN, keys: [k1] });
  await withToken('demo-2', async (mod, _lib, s) => t.ok(mod.findSecretKey(s, 'k1')));
  await withToken('demo-1', async (mod, _lib, s) => t.ok(mod.findSecretKey(s, 'k3')));
});

t.test('failures name the token and never the PIN', async (t) => {
  const wrongPin = '55556666';
  const err = await provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel: 'demo-1', soPin: SO_PIN, userPin: wrongPin, keys: [k1] }).then(
    () => new Error('expected a rejection'),
    (e: Error) => e,
  );
  t.match(err.message, /^token "demo-1": .*CKR_PIN_INCORRECT/);
  t.notMatch(err.message, wrongPin);
  await t.rejects(
    provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel: 'demo-3', soPin: SO_PIN, userPin: USER_PIN, keys: [{ ...k1, material: randomBytes(20) }] }),
    /key "k1": AES key material must be 16, 24 or 32 bytes/,
  );
});
