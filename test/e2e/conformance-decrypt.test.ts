// Conformance §2.3 (Decrypt, D1-D5) and §2.4 (HSM AAD framing, A1-A3) against the demo. Most
// ciphertexts here are made by the oracle (Node's aes-256-gcm with the demo's key material), so the
// proxy decrypting them proves the spec's framing byte for byte, and lets the tests reach keys the
// proxy will not encrypt with and IV lengths it never emits.
import t from 'tap';
import { MAX_PLAINTEXT_BYTES } from '../../xks/validate.js';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { applianceHsmAad, gcmSeal, lenientOnlyBase64, demoKeyById, specErrorProblem, specHsmAad, SPEC_ERRORS } from '../helpers/oracle.js';
import { meta, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
let keyOf: (id: string) => Buffer;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
  keyOf = demoKeyById(d.dir);
});

const KEY = 'demo-encrypt-decrypt';
/** The ciphertextMetadata the proxy emits today (format version 1). */
const MD = Buffer.from([0x01]);
const b64 = (b: Buffer) => b.toString('base64');

/** A decrypt request body (minus requestMetadata) for an oracle ciphertext. */
interface Sealed {
  ciphertext: string;
  initializationVector: string;
  authenticationTag: string;
  ciphertextMetadata?: string;
  additionalAuthenticatedData?: string;
}

/** Seal with the oracle. `hsmAad` defaults to the spec's framing of `aad` and `md`. */
function seal(opts: { keyId?: string; plaintext: Buffer; aad?: Buffer; md?: Buffer; iv?: Buffer; hsmAad?: Buffer }): Sealed {
  const aad = opts.aad ?? Buffer.alloc(0);
  const md = opts.md ?? MD;
  const s = gcmSeal(keyOf(opts.keyId ?? KEY), opts.plaintext, opts.hsmAad ?? specHsmAad(aad, md), opts.iv);
  return {
    ciphertext: b64(s.ciphertext),
    initializationVector: b64(s.iv),
    authenticationTag: b64(s.tag),
    ...(md.length ? { ciphertextMetadata: b64(md) } : {}),
    ...(aad.length ? { additionalAuthenticatedData: b64(aad) } : {}),
  };
}

const decrypt = (body: object, keyId = KEY) => c.call(`/keys/${keyId}/decrypt`, { ...meta({ kmsOperation: 'Decrypt' }), encryptionAlgorithm: 'AES_GCM', ...body });
const encrypt = (plaintext: Buffer, extra: object = {}) =>
  c.call(`/keys/${KEY}/encrypt`, { ...meta(), plaintext: b64(plaintext), encryptionAlgorithm: 'AES_GCM', ...extra });
const invalidCiphertext = (body: object, keyId = KEY) => decrypt(body, keyId).then((r) => specErrorProblem(r, 400, 'InvalidCiphertextException'));
const flipBit = (value: string) => {
  const bytes = Buffer.from(value, 'base64');
  bytes[bytes.length - 1]! ^= 0x01;
  return b64(bytes);
};
const awkward = (length: number) => Buffer.alloc(length, Buffer.from([0xfb, 0xef, 0xff]));

t.test('ciphertextMetadata 2 binds the external key id; version 1 ciphertexts still decrypt', async (t) => {
  const enc = await encrypt(Buffer.from('bound'));
  t.equal(enc.json?.ciphertextMetadata, b64(Buffer.from([0x02])), 'new ciphertexts carry metadata version 2');
  const plaintext = Buffer.from('made by an earlier version');
  const v1 = seal({ plaintext, md: Buffer.from([0x01]) });
  t.equal(Buffer.from((await decrypt(v1)).json?.plaintext ?? '', 'base64').toString(), plaintext.toString(), 'a version 1 ciphertext (no key id bound) still decrypts');
  const md2 = Buffer.from([0x02]);
  const mine = seal({ plaintext, md: md2, hsmAad: applianceHsmAad(Buffer.alloc(0), md2, KEY) });
  t.equal(Buffer.from((await decrypt(mine)).json?.plaintext ?? '', 'base64').toString(), plaintext.toString(), 'version 2 bound to this key id decrypts');
  // The same HSM key, bound to another key id: what another store's key on the same label made.
  const other = seal({ plaintext, md: md2, hsmAad: applianceHsmAad(Buffer.alloc(0), md2, 'another-store-key') });
  t.equal(await invalidCiphertext(other), '', 'version 2 bound to another key id: InvalidCiphertextException, although the HSM key is the same');
  const unbound = seal({ plaintext, md: md2, hsmAad: specHsmAad(Buffer.alloc(0), md2) });
  t.equal(await invalidCiphertext(unbound), '', 'version 2 without the key id bound: InvalidCiphertextException');
});

t.test('D2/D4: proxy encrypt -> proxy decrypt, 4300 bytes, with and without AAD', async (t) => {
  const plaintext = Buffer.from(crypto.getRandomValues(new Uint8Array(4300)));
  for (const aad of [undefined, b64(Buffer.from('round trip aad'))]) {
    const extra = aad ? { additionalAuthenticatedData: aad } : {};
    const enc = await encrypt(plaintext, extra);
    t.equal(enc.status, 200, `encrypt, AAD ${aad ? 'present' : 'absent'}`);
    const dec = await decrypt({ ...enc.json, ...extra });
    t.equal(dec.status, 200, 'decrypt');
    t.same(Object.keys(dec.json), ['plaintext'], 'the response is {plaintext}');
    t.same(Buffer.from(dec.json.plaintext, 'base64'), plaintext, 'D4: the plaintext, as long as the ciphertext');
  }
});

t.test('A2: an oracle ciphertext framed u16be(len aad)||aad||u8(len md)||md decrypts, 12-byte IV', async (t) => {
  for (const aad of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(300, 1), Buffer.alloc(8192, 2)]) {
    const r = await decrypt(seal({ plaintext: Buffer.from('oracle'), aad }));
    t.equal(r.status, 200, `${aad.length}-byte AAD`);
    t.equal(r.json?.plaintext, b64(Buffer.from('oracle')));
  }
});

t.test('D2/E8: a 16-byte IV is accepted (oracle ciphertext)', async (t) => {
  const r = await decrypt(seal({ plaintext: Buffer.from('sixteen-byte iv'), iv: crypto.getRandomValues(Buffer.alloc(16)), aad: Buffer.from('aad') }));
  t.equal(r.status, 200);
  t.equal(r.json?.plaintext, b64(Buffer.from('sixteen-byte iv')));
});

t.test(`D2: ciphertext up to this build's maximum (${MAX_PLAINTEXT_BYTES}) decrypts; above is 501`, async (t) => {
  const r = await decrypt(seal({ plaintext: Buffer.alloc(MAX_PLAINTEXT_BYTES, 3) }));
  t.equal(r.status, 200);
  t.equal(Buffer.from(r.json?.plaintext ?? '', 'base64').length, MAX_PLAINTEXT_BYTES);
  t.equal(specErrorProblem(await decrypt(seal({ plaintext: Buffer.alloc(MAX_PLAINTEXT_BYTES + 1, 3) })), 501, 'UnsupportedOperationException'), '', 'one byte above');
});

t.test('Key usage: the decrypt-only key decrypts; encrypt-only and no-usage are InvalidKeyUsage; disabled is InvalidState', async (t) => {
  const sealedFor = (keyId: string) => seal({ keyId, plaintext: Buffer.from(`under ${keyId}`) });
  const ok = await decrypt(sealedFor(d.demo.keys.decryptOnly), d.demo.keys.decryptOnly);
  t.equal(ok.status, 200, 'decrypt-only key');
  t.equal(ok.json?.plaintext, b64(Buffer.from(`under ${d.demo.keys.decryptOnly}`)));
  for (const [id, name] of [
    [d.demo.keys.encryptOnly, 'InvalidKeyUsageException'],
    [d.demo.keys.noUsage, 'InvalidKeyUsageException'],
    [d.demo.keys.disabled, 'InvalidStateException'],
  ] as const) {
    t.equal(specErrorProblem(await decrypt(sealedFor(id), id), 400, name), '', id);
  }
});

t.test('D3/D5: any change to ciphertext, IV, tag, AAD or metadata is 400 InvalidCiphertextException', async (t) => {
  const aad = Buffer.from('bound aad');
  const good = seal({ plaintext: Buffer.from('tamper me'), aad });
  t.equal((await decrypt(good)).status, 200, 'control: untouched');
  const { additionalAuthenticatedData: _aad, ...noAad } = good;
  const { ciphertextMetadata: _md, ...noMd } = good;
  const cases: Record<string, object> = {
    'ciphertext bit': { ...good, ciphertext: flipBit(good.ciphertext) },
    'ciphertext truncated': { ...good, ciphertext: b64(Buffer.from(good.ciphertext, 'base64').subarray(1)) },
    'IV bit': { ...good, initializationVector: flipBit(good.initializationVector) },
    'tag bit': { ...good, authenticationTag: flipBit(good.authenticationTag) },
    'AAD bit': { ...good, additionalAuthenticatedData: flipBit(good.additionalAuthenticatedData!) },
    'AAD missing': noAad,
    'AAD empty': { ...good, additionalAuthenticatedData: '' },
    'metadata changed': { ...good, ciphertextMetadata: b64(Buffer.from([0x02])) },
    'metadata extended': { ...good, ciphertextMetadata: b64(Buffer.from([0x01, 0x00])) },
    'metadata missing': noMd,
    'metadata empty': { ...good, ciphertextMetadata: '' },
  };
  for (const [what, body] of Object.entries(cases)) t.equal(await invalidCiphertext(body), '', what);
  const bare = seal({ plaintext: Buffer.from('no aad') });
  t.equal(await invalidCiphertext({ ...bare, additionalAuthenticatedData: b64(Buffer.from('added')) }), '', 'AAD added');
  t.equal(await invalidCiphertext(good, d.demo.keys.decryptOnly), '', 'another key (decrypt-only) cannot open it');
});

t.test('A2: the framing defeats moving metadata into the AAD and back, and no other framing passes', async (t) => {
  const plaintext = Buffer.from('framing');
  const aad = Buffer.from('context');
  const u16be = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const u16le = (n: number) => Buffer.from([n & 0xff, n >> 8]);
  const framings: Record<string, Buffer> = {
    'md moved into the AAD (md empty in the framing)': specHsmAad(Buffer.concat([aad, MD]), Buffer.alloc(0)),
    'plain concatenation aad||md': Buffer.concat([aad, MD]),
    'no lengths, md first': Buffer.concat([MD, aad]),
    'u16le AAD length': Buffer.concat([u16le(aad.length), aad, Buffer.from([MD.length]), MD]),
    'u8 AAD length': Buffer.concat([Buffer.from([aad.length]), aad, Buffer.from([MD.length]), MD]),
    'u16be md length': Buffer.concat([u16be(aad.length), aad, u16be(MD.length), MD]),
    'md length omitted': Buffer.concat([u16be(aad.length), aad, MD]),
    'raw AAD only': aad,
  };
  t.equal((await decrypt(seal({ plaintext, aad }))).status, 200, 'control: the spec framing');
  for (const [what, hsmAad] of Object.entries(framings)) {
    // The request is the legitimate one (aad, md = 0x01); only the framing under the tag differs.
    t.equal(await invalidCiphertext(seal({ plaintext, aad, hsmAad })), '', what);
  }
  // And back: sealed with md in the framing, presented with md appended to the AAD instead.
  const sealed = seal({ plaintext, aad });
  t.equal(await invalidCiphertext({ ...sealed, additionalAuthenticatedData: b64(Buffer.concat([aad, MD])), ciphertextMetadata: '' }), '', 'md moved from metadata into the AAD');
  // Without AAD the u16be zero length is still there.
  t.equal(await invalidCiphertext(seal({ plaintext, hsmAad: Buffer.concat([Buffer.from([MD.length]), MD]) })), '', 'no AAD: the u16 zero length omitted');
  t.equal((await decrypt(seal({ plaintext, hsmAad: Buffer.concat([u16be(0), Buffer.from([MD.length]), MD]) }))).status, 200, 'no AAD: 00 00 01 01 opens');
});

t.test('D2: IVs other than 12 or 16 bytes and tags other than 16 bytes are a 400 spec error', async (t) => {
  const good = seal({ plaintext: Buffer.from('sizes') });
  const names = Object.keys(SPEC_ERRORS).filter((n) => SPEC_ERRORS[n] === 400);
  const check = async (what: string, body: object) => {
    const r = await decrypt(body);
    t.equal(r.status, 400, `${what}: 400`);
    t.ok(names.includes(r.json?.errorName), `${what}: ${r.json?.errorName} is a spec 400 name`);
  };
  for (const n of [0, 1, 8, 11, 13, 15, 17, 24, 32]) await check(`${n}-byte IV`, { ...good, initializationVector: b64(Buffer.alloc(n, 9)) });
  for (const n of [0, 4, 12, 15, 17, 32]) await check(`${n}-byte tag`, { ...good, authenticationTag: b64(Buffer.alloc(n, 9)) });
  await check('21-byte ciphertextMetadata', { ...good, ciphertextMetadata: b64(Buffer.alloc(21, 1)) });
});

t.test('D2: missing or wrongly typed required fields, or a wrong algorithm, are 400 ValidationException', async (t) => {
  const good = seal({ plaintext: Buffer.from('fields') });
  for (const field of ['ciphertext', 'initializationVector', 'authenticationTag', 'encryptionAlgorithm'] as const) {
    const body: Record<string, unknown> = { ...meta({ kmsOperation: 'Decrypt' }), encryptionAlgorithm: 'AES_GCM', ...good };
    delete body[field];
    t.equal(specErrorProblem(await c.call(`/keys/${KEY}/decrypt`, body), 400, 'ValidationException'), '', `${field} missing`);
    t.equal(specErrorProblem(await decrypt({ ...good, [field]: 42 }), 400, 'ValidationException'), '', `${field} a number`);
  }
  for (const alg of ['AES_GCM_256', 'aes_gcm', '']) {
    t.equal(specErrorProblem(await decrypt({ ...good, encryptionAlgorithm: alg }), 400, 'ValidationException'), '', `algorithm ${JSON.stringify(alg)}`);
  }
});

t.test('b64: every decrypt field must be standard base64 (RFC 4648 §4), else 400 ValidationException', async (t) => {
  // Oracle inputs whose encodings hold '+', '/' and padding: a 16-byte IV, and a ciphertext chosen
  // through the GCM keystream (sealing zeros reveals it) to be exactly those awkward bytes.
  const iv = awkward(16);
  const aad = awkward(31);
  const keystream = Buffer.from(seal({ plaintext: Buffer.alloc(32), aad, iv }).ciphertext, 'base64');
  const plaintext = Buffer.from(awkward(32).map((b, i) => b ^ keystream[i]!));
  const good = seal({ plaintext, aad, iv });
  t.equal(good.ciphertext, b64(awkward(32)), 'the ciphertext is the chosen bytes');
  const ok = await decrypt(good);
  t.equal(ok.status, 200, 'control: canonical');
  t.equal(ok.json?.plaintext, b64(plaintext));
  for (const field of ['ciphertext', 'initializationVector', 'authenticationTag', 'ciphertextMetadata', 'additionalAuthenticatedData'] as const) {
    const bytes = Buffer.from(good[field]!, 'base64');
    for (const [what, spelled] of Object.entries(lenientOnlyBase64(bytes))) {
      t.same(Buffer.from(spelled, 'base64'), bytes, `${field}, ${what}: a lenient decoder reads the same bytes`);
      t.equal(specErrorProblem(await decrypt({ ...good, [field]: spelled }), 400, 'ValidationException'), '', `${field}: ${what}`);
    }
  }
});
