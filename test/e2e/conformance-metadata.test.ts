// Conformance §2.0 (requestMetadata rules M1-M4, on all four APIs) and §2.1 (GetKeyMetadata,
// K1-K6) against the demo's five keys.
import t from 'tap';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { b64, meta, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
/** A valid decrypt body (an encrypt output) to vary requestMetadata on. */
let sealed: Record<string, string>;
withDemo(t, [], async (demo, client) => {
  d = demo;
  c = client;
  const enc = await c.call(`/keys/${KEY}/encrypt`, { ...meta(), plaintext: b64('metadata'), encryptionAlgorithm: 'AES_GCM' });
  if (enc.status !== 200) throw new Error(`setup encrypt: ${enc.status} ${enc.text}`);
  sealed = enc.json;
});

const KEY = 'demo-encrypt-decrypt';

/** Each API with the rest of a valid body; `md` replaces the whole requestMetadata member. */
const APIS: Record<string, { path: string; body: (md: object) => object }> = {
  metadata: { path: `/keys/${KEY}/metadata`, body: (md) => md },
  encrypt: { path: `/keys/${KEY}/encrypt`, body: (md) => ({ ...md, plaintext: b64('m'), encryptionAlgorithm: 'AES_GCM' }) },
  decrypt: { path: `/keys/${KEY}/decrypt`, body: (md) => ({ ...md, ...sealed, encryptionAlgorithm: 'AES_GCM' }) },
  health: { path: '/health', body: (md) => md },
};

/** The metadata fields each API requires (K1, E1, D1, H1). */
const REQUIRED: Record<string, string[]> = {
  metadata: ['awsPrincipalArn', 'kmsOperation', 'kmsRequestId'],
  encrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  decrypt: ['awsPrincipalArn', 'kmsKeyArn', 'kmsOperation', 'kmsRequestId'],
  health: ['kmsOperation', 'kmsRequestId'],
};

t.test('M1: kmsRequestId is opaque: non-UUID, long, odd and empty values are accepted on every API', async (t) => {
  for (const [api, { path, body }] of Object.entries(APIS)) {
    for (const id of ['', 'not-a-uuid', 'x'.repeat(1000), '12345', ' leading space', '{"json":"inside"}', 'ünïcödé']) {
      const r = await c.call(path, body(meta({ kmsRequestId: id })));
      t.equal(r.status, 200, `${api}: kmsRequestId ${JSON.stringify(id.slice(0, 20))}`);
    }
  }
});

t.test('M2: an unknown kmsOperation is accepted on every API', async (t) => {
  for (const [api, { path, body }] of Object.entries(APIS)) {
    for (const op of ['SomeFutureOperation', 'encrypt', '']) {
      const r = await c.call(path, body(meta({ kmsOperation: op })));
      t.equal(r.status, 200, `${api}: kmsOperation ${JSON.stringify(op)}`);
    }
  }
});

t.test('M3: unknown fields are ignored, at the top level and in requestMetadata', async (t) => {
  const extraMetadata = {
    SourceIdentity: 'alice',
    kmsRecipientAttestationImageSha384: 'ab'.repeat(48),
    kmsRecipientAttestationPCR0: 'cd'.repeat(48),
    principalTags: { team: 'x' },
    keyTags: [{ k: 'v' }],
    aNumber: 42,
    aNull: null,
  };
  for (const [api, { path, body }] of Object.entries(APIS)) {
    const r = await c.call(path, { ...body(meta(extraMetadata)), futureTopLevel: { nested: [1, 2] }, anotherOne: 'x', zero: 0 });
    t.equal(r.status, 200, api);
  }
});

t.test('M4/X1: missing, empty or non-object requestMetadata is 400 ValidationException on every API', async (t) => {
  const shapes: Record<string, object> = {
    missing: {},
    empty: { requestMetadata: {} },
    null: { requestMetadata: null },
    array: { requestMetadata: [] },
    string: { requestMetadata: 'kmsRequestId=1' },
  };
  for (const [api, { path, body }] of Object.entries(APIS)) {
    for (const [what, md] of Object.entries(shapes)) {
      // `{}` and `{"requestMetadata":{}}` alone on /health are the test client's own cases.
      const sent = api === 'health' ? md : { ...body({}), ...md };
      const r = await c.call(path, sent);
      t.equal(specErrorProblem(r, 400, 'ValidationException'), '', `${api}: requestMetadata ${what}`);
    }
  }
});

t.test('M4: each required requestMetadata field, missing or not a string, is 400 ValidationException', async (t) => {
  for (const [api, { path, body }] of Object.entries(APIS)) {
    for (const field of REQUIRED[api]!) {
      const without = meta();
      delete (without.requestMetadata as Record<string, unknown>)[field];
      t.equal(specErrorProblem(await c.call(path, body(without)), 400, 'ValidationException'), '', `${api}: ${field} missing`);
      t.equal(specErrorProblem(await c.call(path, body(meta({ [field]: 7 }))), 400, 'ValidationException'), '', `${api}: ${field} a number`);
    }
  }
});

t.test('M4/M5: requestMetadata values are not parsed: malformed ARNs and optional VPC fields pass', async (t) => {
  const odd = {
    awsPrincipalArn: 'arn:aws:kms:us-east-2:123456789012:/key/malformed', // the spec's own malformed example
    kmsKeyArn: 'not an arn',
    awsSourceVpc: 'vpc-0123456789abcdef0',
    awsSourceVpce: 'vpce-0123456789abcdef0',
    kmsViaService: 'ebs',
  };
  for (const [api, { path, body }] of Object.entries(APIS)) {
    t.equal((await c.call(path, body(meta(odd)))).status, 200, api);
  }
});

t.test('K1: GetKeyMetadata as the AWS test client sends it (DescribeKey, kmsKeyArn, kmsViaService)', async (t) => {
  const r = await c.call(`/keys/${KEY}/metadata`, meta({ kmsOperation: 'DescribeKey', kmsViaService: 'ebs' }));
  t.equal(r.status, 200);
  const noKeyArn = meta({ kmsOperation: 'CreateKey' });
  delete (noKeyArn.requestMetadata as Record<string, unknown>)['kmsKeyArn'];
  t.equal((await c.call(`/keys/${KEY}/metadata`, noKeyArn)).status, 200, 'kmsKeyArn is not required (1.0.3)');
});

t.test('K2-K5: keySpec, keyUsage and keyStatus of each demo key', async (t) => {
  const expected: Record<string, { usage: string[]; status: string }> = {
    [d.demo.keys.encryptDecrypt]: { usage: ['DECRYPT', 'ENCRYPT'], status: 'ENABLED' },
    [d.demo.keys.encryptOnly]: { usage: ['ENCRYPT'], status: 'ENABLED' },
    [d.demo.keys.decryptOnly]: { usage: ['DECRYPT'], status: 'ENABLED' },
    [d.demo.keys.noUsage]: { usage: [], status: 'ENABLED' },
    // K4: a disabled key is 200 with DISABLED, not InvalidStateException.
    [d.demo.keys.disabled]: { usage: ['DECRYPT', 'ENCRYPT'], status: 'DISABLED' },
  };
  for (const [id, want] of Object.entries(expected)) {
    const r = await c.call(`/keys/${id}/metadata`, meta({ kmsOperation: 'CreateKey' }));
    t.equal(r.status, 200, `${id}: 200`);
    t.equal(r.json?.keySpec, 'AES_256', `${id}: keySpec`);
    t.equal(r.json?.keyStatus, want.status, `${id}: keyStatus`);
    const usage = r.json?.keyUsage as unknown;
    t.ok(Array.isArray(usage), `${id}: keyUsage is an array`);
    if (!Array.isArray(usage)) continue;
    t.ok(usage.length <= 10, `${id}: at most 10 entries (K3)`);
    t.ok(usage.every((u) => typeof u === 'string' && u === u.toUpperCase()), `${id}: uppercase strings`);
    t.equal(new Set(usage).size, usage.length, `${id}: no repeats`);
    t.same([...usage].sort(), want.usage, `${id}: keyUsage`);
  }
});

t.test('K6: an unknown key is 404 KeyNotFoundException', async (t) => {
  for (const id of ['no-such-key', 'demo-encrypt-decrypt2', 'DEMO-ENCRYPT-DECRYPT', 'xks-demo-encrypt-decrypt']) {
    t.equal(specErrorProblem(await c.call(`/keys/${id}/metadata`, meta()), 404, 'KeyNotFoundException'), '', id);
  }
});

t.test('K6: encrypt and decrypt on an unknown key are 404 KeyNotFoundException too', async (t) => {
  t.equal(specErrorProblem(await c.call('/keys/no-such-key/encrypt', APIS['encrypt']!.body(meta())), 404, 'KeyNotFoundException'), '', 'encrypt');
  t.equal(specErrorProblem(await c.call('/keys/no-such-key/decrypt', APIS['decrypt']!.body(meta())), 404, 'KeyNotFoundException'), '', 'decrypt');
});
