// Conformance §2.2 (Encrypt, E1-E11), §2.4 (HSM AAD framing) and §2.5 (CDIV, C1-C5) against the
// demo. The oracle (test/helpers/oracle.ts) holds the demo's raw key material: every ciphertext the
// proxy returns must open under Node's aes-256-gcm with the spec's AAD framing, byte for byte.
import t from 'tap';
import { computeCdiv } from '../../xks/hsm/child/cdiv.js';
import { MAX_AAD_BYTES, MAX_PLAINTEXT_BYTES } from '../../xks/validate.js';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { gcmOpen, isCanonicalBase64, lenientOnlyBase64, demoKeyById, specCdiv, specErrorProblem, applianceHsmAad } from '../helpers/oracle.js';
import { b64, meta, XksClient, type Reply } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
let keyOf: (id: string) => Buffer;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
  keyOf = demoKeyById(d.dir);
});

const KEY = 'demo-encrypt-decrypt';
const fromB64 = (s: string) => Buffer.from(s, 'base64');

const encrypt = (plaintext: Buffer, extra: Record<string, unknown> = {}, keyId = KEY) =>
  c.call(`/keys/${keyId}/encrypt`, { ...meta(), plaintext: plaintext.toString('base64'), encryptionAlgorithm: 'AES_GCM', ...extra });

const decrypt = (sealed: Record<string, string>, extra: Record<string, unknown> = {}, keyId = KEY) =>
  c.call(`/keys/${keyId}/decrypt`, { ...meta({ kmsOperation: 'Decrypt' }), ...sealed, encryptionAlgorithm: 'AES_GCM', ...extra });

/** Opens the proxy's encrypt output with the oracle: the plaintext, or null. */
function oracleOpen(r: Reply, aad: Buffer, keyId = KEY): Buffer | null {
  const j = r.json as Record<string, string>;
  const md = fromB64(j['ciphertextMetadata'] ?? '');
  return gcmOpen(keyOf(keyId), { iv: fromB64(j['initializationVector']!), ciphertext: fromB64(j['ciphertext']!), tag: fromB64(j['authenticationTag']!) }, applianceHsmAad(aad, md, keyId));
}

/** Bytes whose base64 holds '+' and '/' and, for lengths not a multiple of 3, padding. */
const awkward = (length: number) => Buffer.alloc(length, Buffer.from([0xfb, 0xef, 0xff]));

t.test('C2: the conformance CDIV test vector (unit: xks/hsm/child/cdiv.ts and the oracle)', async (t) => {
  const parts = ['cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n', 'a2V5X3ZlcnNpb249MQ==', 'HMrlRw85cAJUd5Ax', 'ghxkK1txeDNn3q8Y', 'vBxN2ncH1oEkR8WVXpmyYQ=='].map(fromB64) as [Buffer, Buffer, Buffer, Buffer, Buffer];
  t.equal(Buffer.concat(parts).length, 86, '86 bytes hashed');
  t.equal(parts[1].toString(), 'key_version=1');
  const want = 'qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=';
  t.equal(computeCdiv(...parts).toString('base64'), want, 'xks/hsm/child/cdiv.ts');
  t.equal(specCdiv(...parts).toString('base64'), want, 'the oracle');
  t.match(computeCdiv(...parts).toString('hex'), /^a8703f22.*5ec7$/);
});

t.test('E2/E6-E10: a 4300-byte plaintext with AAD: response shape and sizes, opened by the oracle', async (t) => {
  const plaintext = Buffer.from(crypto.getRandomValues(new Uint8Array(4300)));
  const aad = Buffer.from('E2 aad');
  const r = await encrypt(plaintext, { additionalAuthenticatedData: aad.toString('base64') });
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'application/json');
  const j = r.json as Record<string, string>;
  for (const field of ['ciphertext', 'initializationVector', 'authenticationTag']) t.ok(isCanonicalBase64(j[field]), `E6: ${field} is standard base64`);
  t.equal(fromB64(j['ciphertext']!).length, 4300, 'E7: ciphertext length = plaintext length');
  t.ok([12, 16].includes(fromB64(j['initializationVector']!).length), 'E8: IV is 12 or 16 bytes');
  t.equal(fromB64(j['authenticationTag']!).length, 16, 'E9: tag is 16 bytes');
  if (j['ciphertextMetadata'] !== undefined) {
    t.ok(isCanonicalBase64(j['ciphertextMetadata']), 'E10: ciphertextMetadata is standard base64');
    t.ok(fromB64(j['ciphertextMetadata']).length <= 20, 'E10: ciphertextMetadata at most 20 bytes');
  }
  t.notOk('ciphertextDataIntegrityValue' in j, 'E5: no CDIV unless asked');
  t.same(oracleOpen(r, aad), plaintext, 'A1/A2: opens with u16be(len aad)||aad||u8(len md)||md');
  t.equal(oracleOpen(r, Buffer.from('E2 aaD')), null, 'the AAD is bound');
  const dec = await decrypt(j, { additionalAuthenticatedData: aad.toString('base64') });
  t.equal(dec.status, 200, 'round trip through the proxy');
  t.same(fromB64(dec.json.plaintext), plaintext);
});

t.test('A2: without AAD the framing still carries both lengths (u16be 0 || u8 len(md) || md)', async (t) => {
  const plaintext = Buffer.from('no aad at all');
  const r = await encrypt(plaintext);
  t.equal(r.status, 200);
  t.same(oracleOpen(r, Buffer.alloc(0)), plaintext);
  // A3: an empty AAD is the same as none.
  const empty = await encrypt(plaintext, { additionalAuthenticatedData: '' });
  t.same(oracleOpen(empty, Buffer.alloc(0)), plaintext, 'AAD "" is framed as absent');
  t.equal((await decrypt(empty.json)).status, 200, 'encrypted with "", decrypted without the field');
  t.equal((await decrypt(r.json, { additionalAuthenticatedData: '' })).status, 200, 'encrypted without, decrypted with ""');
});

t.test(`E2: plaintext up to this build's maximum (${MAX_PLAINTEXT_BYTES} bytes) works; above is 501`, async (t) => {
  const max = Buffer.alloc(MAX_PLAINTEXT_BYTES, 7);
  const r = await encrypt(max);
  t.equal(r.status, 200, 'at the maximum');
  t.same(oracleOpen(r, Buffer.alloc(0)), max);
  t.equal(specErrorProblem(await encrypt(Buffer.alloc(MAX_PLAINTEXT_BYTES + 1, 7)), 501, 'UnsupportedOperationException'), '', 'one byte above');
});

t.test(`E4: an 8192-byte AAD works, so does this build's maximum (${MAX_AAD_BYTES}); above is 501`, async (t) => {
  for (const size of [8192, MAX_AAD_BYTES]) {
    const aad = Buffer.alloc(size, 0x5a);
    const r = await encrypt(Buffer.from('aad size'), { additionalAuthenticatedData: aad.toString('base64') });
    t.equal(r.status, 200, `${size}-byte AAD`);
    t.same(oracleOpen(r, aad), Buffer.from('aad size'), `${size}-byte AAD framed per spec`);
    t.equal((await decrypt(r.json, { additionalAuthenticatedData: aad.toString('base64') })).status, 200, `${size}-byte AAD decrypts`);
  }
  const over = await encrypt(Buffer.from('x'), { additionalAuthenticatedData: Buffer.alloc(MAX_AAD_BYTES + 1).toString('base64') });
  t.equal(specErrorProblem(over, 501, 'UnsupportedOperationException'), '', 'one byte above');
});

t.test('E3: encryptionAlgorithm other than exactly AES_GCM, or missing, is 400 ValidationException', async (t) => {
  for (const alg of ['AES_GCM_256', 'aes_gcm', 'AES_CBC', 'AES_GCM ', '', 1, null, ['AES_GCM']]) {
    t.equal(specErrorProblem(await encrypt(Buffer.from('x'), { encryptionAlgorithm: alg }), 400, 'ValidationException'), '', JSON.stringify(alg));
  }
  const r = await c.call(`/keys/${KEY}/encrypt`, { ...meta(), plaintext: b64('x') });
  t.equal(specErrorProblem(r, 400, 'ValidationException'), '', 'missing');
});

t.test('E2: a missing or non-string plaintext is 400 ValidationException', async (t) => {
  for (const plaintext of [undefined, null, 42, ['AAAA'], { b: 'AAAA' }]) {
    const r = await c.call(`/keys/${KEY}/encrypt`, { ...meta(), encryptionAlgorithm: 'AES_GCM', plaintext });
    t.equal(specErrorProblem(r, 400, 'ValidationException'), '', JSON.stringify(plaintext) ?? 'missing');
  }
  const r = await encrypt(Buffer.from('x'), { additionalAuthenticatedData: 12 });
  t.equal(specErrorProblem(r, 400, 'ValidationException'), '', 'AAD a number');
});

t.test('E5/C1: CDIV present iff requested, equal to SHA-256 over aad||md||iv||ct||tag', async (t) => {
  for (const aad of [Buffer.from('cdiv aad'), Buffer.alloc(0)]) {
    const extra = aad.length ? { additionalAuthenticatedData: aad.toString('base64') } : {};
    const r = await encrypt(Buffer.from('cdiv plaintext'), { ...extra, ciphertextDataIntegrityValueAlgorithm: 'SHA_256' });
    t.equal(r.status, 200, `${aad.length}-byte AAD: 200`);
    const j = r.json as Record<string, string>;
    t.ok(isCanonicalBase64(j['ciphertextDataIntegrityValue'], 32), 'a 32-byte value, 44 base64 chars');
    const want = specCdiv(aad, fromB64(j['ciphertextMetadata'] ?? ''), fromB64(j['initializationVector']!), fromB64(j['ciphertext']!), fromB64(j['authenticationTag']!));
    t.equal(j['ciphertextDataIntegrityValue'], want.toString('base64'), `${aad.length}-byte AAD: recomputed`);
    t.same(oracleOpen(r, aad), Buffer.from('cdiv plaintext'), 'and the ciphertext is sound');
  }
  const without = await encrypt(Buffer.from('x'));
  t.notOk('ciphertextDataIntegrityValue' in without.json, 'absent when not requested');
});

t.test('E5: an unsupported ciphertextDataIntegrityValueAlgorithm is 400 ValidationException', async (t) => {
  for (const alg of ['SHA_512', 'sha_256', 'SHA256', '', 256]) {
    const r = await encrypt(Buffer.from('x'), { ciphertextDataIntegrityValueAlgorithm: alg });
    t.equal(specErrorProblem(r, 400, 'ValidationException'), '', JSON.stringify(alg));
  }
});

t.test('E8: a fresh IV per call: the same plaintext twice never gives the same IV or ciphertext', async (t) => {
  const replies: Reply[] = [];
  for (let i = 0; i < 32; i++) replies.push(await encrypt(Buffer.from('same plaintext every time')));
  t.ok(replies.every((r) => r.status === 200));
  t.equal(new Set(replies.map((r) => r.json.initializationVector)).size, 32, '32 distinct IVs');
  t.equal(new Set(replies.map((r) => r.json.ciphertext)).size, 32, '32 distinct ciphertexts');
});

t.test('b64: plaintext and AAD must be standard base64 (RFC 4648 §4), else 400 ValidationException', async (t) => {
  const value = awkward(32);
  t.equal((await encrypt(value, { additionalAuthenticatedData: value.toString('base64') })).status, 200, 'control: canonical');
  for (const field of ['plaintext', 'additionalAuthenticatedData']) {
    const variants = lenientOnlyBase64(value);
    t.ok(Object.keys(variants).length >= 7, 'URL-safe, padding, whitespace and trailing-bit variants');
    for (const [what, spelled] of Object.entries(variants)) {
      t.same(Buffer.from(spelled, 'base64'), value, `${field}, ${what}: a lenient decoder reads the same bytes`);
      const r = await encrypt(value, { additionalAuthenticatedData: value.toString('base64'), [field]: spelled });
      t.equal(specErrorProblem(r, 400, 'ValidationException'), '', `${field}: ${what}`);
    }
  }
});

t.test('C4: CDIV on the encrypt-only key is 400 InvalidKeyUsageException; without CDIV it encrypts', async (t) => {
  const id = d.demo.keys.encryptOnly;
  const r = await encrypt(Buffer.from('x'), { ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }, id);
  t.equal(specErrorProblem(r, 400, 'InvalidKeyUsageException'), '', 'with CDIV');
  const ok = await encrypt(Buffer.from('encrypt only'), {}, id);
  t.equal(ok.status, 200, 'without CDIV');
  t.same(oracleOpen(ok, Buffer.alloc(0), id), Buffer.from('encrypt only'), 'under the encrypt-only key itself');
  t.equal(oracleOpen(ok, Buffer.alloc(0), KEY), null, 'not under another key');
});

t.test('Encrypt on keys that do not allow it: decrypt-only and no-usage are InvalidKeyUsage, disabled is InvalidState', async (t) => {
  for (const [id, name] of [
    [d.demo.keys.decryptOnly, 'InvalidKeyUsageException'],
    [d.demo.keys.noUsage, 'InvalidKeyUsageException'],
    [d.demo.keys.disabled, 'InvalidStateException'],
  ] as const) {
    t.equal(specErrorProblem(await encrypt(Buffer.from('x'), {}, id), 400, name), '', id);
    t.equal(specErrorProblem(await encrypt(Buffer.from('x'), { ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }, id), 400, name), '', `${id} with CDIV`);
  }
});
