// Conformance §4 (SigV4, S1-S8) and the §7 check order, end to end against the demo: requests are
// signed by @smithy/signature-v4 (test/helpers/sign.ts) and by curl's --aws-sigv4, as KMS and the
// AWS test client do.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { removeDir, type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { signXksRequest, type SignXksRequestOptions } from '../helpers/sign.js';
import { b64, meta, request, XksClient, type Reply } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
});

const KEY = 'demo-encrypt-decrypt';
const MINUTE = 60_000;
const encryptBody = (plaintext = 'sigv4') => ({ ...meta(), plaintext: b64(plaintext), encryptionAlgorithm: 'AES_GCM' });
const authFailed = (r: Reply) => specErrorProblem(r, 401, 'AuthenticationFailedException');

/**
 * Sign one request (path, body, options as given in `signed`), then send a possibly different one
 * (`sent`): how a tampered request looks to the proxy.
 */
async function tampered(
  signed: { path: string; body: string } & Partial<SignXksRequestOptions>,
  sent: { path?: string; body?: string; headers?: Record<string, string | string[]> } = {},
): Promise<Reply> {
  const { path, ...rest } = signed;
  const headers = await signXksRequest({ accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey, ...rest, url: c.url(path) });
  return request(c.url(sent.path ?? path), {
    method: 'POST',
    headers: { ...headers, ...sent.headers } as Record<string, string>,
    body: sent.body ?? signed.body,
    ca: c.ca,
    agent: c.agent,
  });
}

t.test('S1/S8: both credential sets of demo.json are accepted on every API', async (t) => {
  const creds = [
    { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey },
    d.demo.secondCredential,
  ];
  t.not(creds[0]!.accessKeyId, creds[1]!.accessKeyId, 'two distinct sets');
  for (const [i, credential] of creds.entries()) {
    t.equal((await c.call('/health', meta(), { credential })).status, 200, `set ${i + 1}: health`);
    t.equal((await c.call(`/keys/${KEY}/metadata`, meta(), { credential })).status, 200, `set ${i + 1}: metadata`);
    const enc = await c.call(`/keys/${KEY}/encrypt`, encryptBody(), { credential });
    t.equal(enc.status, 200, `set ${i + 1}: encrypt`);
    // Credentials authenticate KMS, they do not scope ciphertexts: decrypt with the other set.
    const other = creds[1 - i]!;
    const dec = await c.call(`/keys/${KEY}/decrypt`, { ...meta(), ...enc.json, encryptionAlgorithm: 'AES_GCM' }, { credential: other });
    t.equal(dec.status, 200, `set ${i + 1}'s ciphertext decrypts under the other set`);
    t.equal(dec.json?.plaintext, b64('sigv4'));
  }
});

t.test('S3: the secret of another credential set does not verify for this access key id', async (t) => {
  const r = await c.call('/health', meta(), { credential: { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secondCredential.secretAccessKey } });
  t.equal(authFailed(r), '');
  const r2 = await c.call('/health', meta(), { credential: { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey.slice(0, -2) + 'AA' } });
  t.equal(authFailed(r2), '', 'a secret off by its last characters');
});

t.test('S6: an unknown access key id is 401', async (t) => {
  for (const accessKeyId of ['XKSUNKNOWNUNKNOWN234', d.demo.accessKeyId.toLowerCase(), d.demo.accessKeyId + 'A']) {
    const r = await c.call('/health', meta(), { credential: { accessKeyId, secretAccessKey: d.demo.secretAccessKey } });
    t.equal(authFailed(r), '', accessKeyId);
  }
});

t.test('S2: a region outside the demo store\'s pinned us-east-1 is 401', async (t) => {
  for (const region of ['us-west-2', 'eu-west-1']) {
    t.equal(authFailed(await c.call('/health', meta(), { region })), '', region);
  }
});

t.test('S2: a service other than kms-xks-proxy is 401', async (t) => {
  const body = JSON.stringify(meta());
  for (const service of ['kms', 'kms-xks', 'execute-api']) {
    t.equal(authFailed(await tampered({ path: '/health', body, service })), '', service);
  }
});

t.test('S5: X-Amz-Date more than 5 minutes off is 401; within is accepted', async (t) => {
  t.equal(authFailed(await c.call('/health', meta(), { date: new Date(Date.now() - 6 * MINUTE) })), '', '6 min in the past');
  t.equal(authFailed(await c.call('/health', meta(), { date: new Date(Date.now() + 6 * MINUTE) })), '', '6 min in the future');
  t.equal((await c.call('/health', meta(), { date: new Date(Date.now() - 4 * MINUTE) })).status, 200, '4 min in the past');
  t.equal((await c.call('/health', meta(), { date: new Date(Date.now() + 4 * MINUTE) })).status, 200, '4 min in the future');
});

t.test('S3: anything changed after signing is 401', async (t) => {
  const body = JSON.stringify(encryptBody('signed body'));
  const path = `/keys/${KEY}/encrypt`;
  t.equal((await tampered({ path, body })).status, 200, 'control: sent as signed');
  const cases: Array<[string, Parameters<typeof tampered>[1]]> = [
    ['body tampered', { body: body.replace(b64('signed body'), b64('signed bodz')) }],
    ['body with a trailing space', { body: body + ' ' }],
    ['path changed to another key', { path: '/keys/demo-encrypt-only/encrypt' }],
    ['x-amz-date changed', { headers: { 'x-amz-date': new Date(Date.now() - 1000).toISOString().replace(/[-:]|\.\d{3}/g, '') } }],
  ];
  for (const [what, sent] of cases) t.equal(authFailed(await tampered({ path, body }, sent)), '', what);
  // A header the signer signed (as curl signs content-type), changed afterwards.
  const signedType = { path, body, headers: { 'content-type': 'application/json' } };
  t.equal((await tampered(signedType)).status, 200, 'control: signed content-type');
  t.equal(authFailed(await tampered(signedType, { headers: { 'content-type': 'application/json; charset=utf-8' } })), '', 'signed content-type changed');
});

t.test('S1: a missing, malformed, altered or repeated Authorization header is 401', async (t) => {
  const body = JSON.stringify(meta());
  const good = await signXksRequest({ url: c.url('/health'), body, accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey });
  const auth = good['authorization']!;
  const flipped = auth.slice(0, -1) + (auth.endsWith('0') ? '1' : '0');
  const variants: Record<string, string | string[] | undefined> = {
    missing: undefined,
    'signature altered': flipped,
    'other algorithm': auth.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512'),
    'empty': '',
    'repeated': [auth, auth],
  };
  for (const [what, value] of Object.entries(variants)) {
    const headers: Record<string, string | string[]> = { ...good };
    if (value === undefined) delete headers['authorization'];
    else headers['authorization'] = value;
    const r = await request(c.url('/health'), { method: 'POST', headers: headers as Record<string, string>, body, ca: c.ca, agent: c.agent });
    t.equal(authFailed(r), '', what);
  }
});

t.test('P4/S4: curl --aws-sigv4 "aws:amz:us-east-1:kms-xks-proxy" encrypts and decrypts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xks-curl-'));
  t.teardown(() => removeDir(dir));
  // Credentials in a 0600 config file, never in argv.
  const config = join(dir, 'curl.cfg');
  writeFileSync(
    config,
    [
      `user = "${d.demo.accessKeyId}:${d.demo.secretAccessKey}"`,
      'aws-sigv4 = "aws:amz:us-east-1:kms-xks-proxy"',
      `cacert = "${d.demo.caFile}"`,
      'header = "Content-Type: application/json"',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const curl = async (path: string, body: object): Promise<{ status: number; json: any }> => {
    const file = join(dir, 'body.json');
    writeFileSync(file, JSON.stringify(body));
    const { stdout } = await promisify(execFile)('curl', ['-sS', '-K', config, '--data-binary', `@${file}`, '-w', '\n%{http_code}', c.url(path)]);
    const at = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(at + 1)), json: JSON.parse(stdout.slice(0, at)) };
  };
  const aad = b64('curl aad');
  const enc = await curl(`/keys/${KEY}/encrypt`, { ...encryptBody('through curl'), additionalAuthenticatedData: aad });
  t.equal(enc.status, 200, 'encrypt');
  const dec = await curl(`/keys/${KEY}/decrypt`, { ...meta({ kmsOperation: 'Decrypt' }), ...enc.json, additionalAuthenticatedData: aad, encryptionAlgorithm: 'AES_GCM' });
  t.equal(dec.status, 200, 'decrypt');
  t.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'through curl');
});

t.test('§7 order: route, then method, then SigV4, then the body', async (t) => {
  t.equal(authFailed(await c.call('/keys/no-such-key/metadata', meta(), { unsigned: true })), '', 'unsigned, unknown key: 401, not 404 (no key enumeration)');
  t.equal(authFailed(await c.call('/keys/demo-disabled/encrypt', encryptBody(), { unsigned: true })), '', 'unsigned, disabled key: 401, not 400');
  t.equal(authFailed(await c.call('/health', undefined, { unsigned: true, rawBody: 'garbage' })), '', 'unsigned garbage: 401, not 400');
  t.equal(authFailed(await c.call('/health', meta(), { unsigned: true, headers: { 'content-type': 'text/plain' } })), '', 'unsigned wrong content type: 401, not 400');
  t.equal(specErrorProblem(await c.call('/health', undefined, { method: 'GET', unsigned: true, rawBody: '' }), 405), '', 'unsigned GET on an API path: 405');
  t.equal(specErrorProblem(await c.call(`${d.demo.endpoint}/nope/kms/xks/v1/health`, meta(), { unsigned: true }), 404, 'InvalidUriPathException'), '', 'unsigned, unknown path: 404 before auth');
  for (const garbage of ['garbage', '{"requestMetadata":', '[]', '']) {
    t.equal(specErrorProblem(await c.call('/health', undefined, { rawBody: garbage }), 400, 'ValidationException'), '', `signed ${JSON.stringify(garbage)}: 400`);
  }
});
