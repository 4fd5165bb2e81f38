// Conformance §3 (error bodies, X1-X4) and §5 logging (L1, L2) against the demo: every error is
// spec JSON with no internals; no plaintext, ciphertext, AAD or secret reaches stdout or the audit log; the audit
// log has one JSON line per request, keyed by kmsRequestId. The last test stops the demo (the
// audit log is flushed on a clean stop) and asserts it exits 0 on SIGTERM.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { loadKeyMaterial, specErrorProblem } from '../helpers/oracle.js';
import { b64, meta, XksClient, type CallOptions, type Reply } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
});

const KEY = 'demo-encrypt-decrypt';
/** Every request this file sends reaches the request handler, so each must leave one audit line. */
let requests = 0;
const call = (path: string, body: unknown, opts?: CallOptions): Promise<Reply> => {
  requests++;
  return c.call(path, body, opts);
};
const encryptBody = (plaintext: string, extra: object = {}) => ({ ...meta(), plaintext: b64(plaintext), encryptionAlgorithm: 'AES_GCM', ...extra });

/** No stack frames, file paths or error class names in what KMS (and the caller's account) sees. */
const INTERNALS = /\bat \S+ \(|\.[jt]s:\d+|\/work\/|node:internal|node_modules|\b(Type|Range|Syntax|Reference)Error\b|CKR_/;

t.test('X2/X3: every error kind is spec JSON: errorName from the table, short printable errorMessage, no internals', async (t) => {
  const sealed = (await call(`/keys/${KEY}/encrypt`, encryptBody('to tamper'))).json as Record<string, string>;
  const deep = '['.repeat(30_000) + ']'.repeat(30_000); // deeper than any recursive parser's stack
  const cases: Array<[string, () => Promise<Reply>, number, string | undefined]> = [
    ['invalid JSON', () => call('/health', undefined, { rawBody: '{"requestMetadata":' }), 400, 'ValidationException'],
    ['JSON array', () => call('/health', undefined, { rawBody: '[]' }), 400, 'ValidationException'],
    ['JSON null', () => call('/health', undefined, { rawBody: 'null' }), 400, 'ValidationException'],
    ['deeply nested JSON', () => call('/health', undefined, { rawBody: deep }), 400, 'ValidationException'],
    ['invalid UTF-8', () => call('/health', undefined, { rawBody: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }), 400, 'ValidationException'],
    ['bad base64', () => call(`/keys/${KEY}/encrypt`, encryptBody('x', { plaintext: 'not base64!' })), 400, 'ValidationException'],
    ['disabled key', () => call('/keys/demo-disabled/encrypt', encryptBody('x')), 400, 'InvalidStateException'],
    ['key usage', () => call('/keys/demo-decrypt-only/encrypt', encryptBody('x')), 400, 'InvalidKeyUsageException'],
    ['tampered tag', () => call(`/keys/${KEY}/decrypt`, { ...meta(), ...sealed, authenticationTag: b64(Buffer.alloc(16)), encryptionAlgorithm: 'AES_GCM' }), 400, 'InvalidCiphertextException'],
    ['unsigned', () => call('/health', meta(), { unsigned: true }), 401, 'AuthenticationFailedException'],
    ['unknown key', () => call('/keys/nope/metadata', meta()), 404, 'KeyNotFoundException'],
    ['unknown path', () => call(`${d.demo.endpoint}/x/kms/xks/v1/health`, meta()), 404, 'InvalidUriPathException'],
    ['GET', () => call('/health', undefined, { method: 'GET', unsigned: true, rawBody: '' }), 405, undefined],
    ['plaintext too large', () => call(`/keys/${KEY}/encrypt`, encryptBody('x'.repeat(20_000))), 501, 'UnsupportedOperationException'],
    ['body too large', () => call('/health', undefined, { rawBody: ' '.repeat(100_000) }), 501, 'UnsupportedOperationException'],
  ];
  for (const [what, send, status, name] of cases) {
    const r = await send();
    t.equal(specErrorProblem(r, status, name), '', what);
    t.same(Object.keys(r.json ?? {}).filter((k) => k !== 'errorName' && k !== 'errorMessage'), [], `${what}: only errorName and errorMessage`);
    t.notMatch(r.text, INTERNALS, `${what}: no internals`);
    t.notOk(r.json?.errorName === 'IncorrectKeyException', `${what}: no removed error names (X4)`);
  }
});

t.test('X2: error messages echo neither secrets nor request values', async (t) => {
  const marker = `MARKER${randomBytes(6).toString('hex')}`;
  const replies = [
    await call(`/keys/${KEY}/encrypt`, encryptBody('x', { encryptionAlgorithm: marker })),
    await call(`/keys/${KEY}/encrypt`, encryptBody('x', { plaintext: `${marker}!` })),
    await call('/health', meta(), { credential: { accessKeyId: d.demo.accessKeyId, secretAccessKey: marker } }),
    await call('/health', meta(), { credential: { accessKeyId: marker, secretAccessKey: d.demo.secretAccessKey } }),
  ];
  for (const r of replies) {
    t.ok(r.status >= 400, `${r.status} ${r.json?.errorName}`);
    t.notOk(r.text.includes(marker), 'the sent value is not echoed');
    t.notOk(r.text.includes(d.demo.secretAccessKey), 'no secret');
  }
});

t.test('L1/L2: no plaintext or secret in stdout or the audit log; one audit line per request, keyed by kmsRequestId', async (t) => {
  const plaintext = `L2-PLAINTEXT-${randomBytes(12).toString('hex')}`;
  const aadText = `L2-AAD-${randomBytes(12).toString('hex')}`;
  const aad = b64(aadText);
  const ids = { encrypt: randomUUID(), decrypt: randomUUID(), metadata: randomUUID(), health: randomUUID(), failed: randomUUID() };
  const enc = await call(`/keys/${KEY}/encrypt`, encryptBody(plaintext, { ...meta({ kmsRequestId: ids.encrypt }), additionalAuthenticatedData: aad, ciphertextDataIntegrityValueAlgorithm: 'SHA_256' }));
  t.equal(enc.status, 200, 'encrypt');
  const dec = await call(`/keys/${KEY}/decrypt`, { ...meta({ kmsRequestId: ids.decrypt, kmsOperation: 'Decrypt' }), ...enc.json, additionalAuthenticatedData: aad, encryptionAlgorithm: 'AES_GCM' });
  t.equal(Buffer.from(dec.json?.plaintext ?? '', 'base64').toString(), plaintext, 'decrypt returns it');
  t.equal((await call(`/keys/${KEY}/metadata`, meta({ kmsRequestId: ids.metadata }))).status, 200, 'metadata');
  t.equal((await call('/health', meta({ kmsRequestId: ids.health }))).status, 200, 'health');
  const failed = await call(`/keys/${KEY}/decrypt`, { ...meta({ kmsRequestId: ids.failed }), ...enc.json, encryptionAlgorithm: 'AES_GCM' });
  t.equal(failed.json?.errorName, 'InvalidCiphertextException', 'a failed decrypt (AAD missing)');

  // The audit log is flushed on a clean stop.
  t.equal(await d.stop(), 0, 'SIGTERM: exit code 0');
  const stdout = d.output();
  const audit = readFileSync(d.demo.auditLog, 'utf8');
  const logs = readdirSync(join(d.dir, 'logs')).map((f) => readFileSync(join(d.dir, 'logs', f), 'utf8'));

  const forbidden: Record<string, string> = {
    plaintext,
    'plaintext base64': b64(plaintext),
    'plaintext hex': Buffer.from(plaintext).toString('hex'),
    'secret 1': d.demo.secretAccessKey,
    'secret 2': d.demo.secondCredential.secretAccessKey,
    'user PIN': readFileSync(join(d.dir, 'secrets', 'user.pin'), 'utf8').trim(),
    'SO PIN': readFileSync(join(d.dir, 'secrets', 'so.pin'), 'utf8').trim(),
    ciphertext: String(enc.json?.ciphertext),
    AAD: aadText,
    'AAD base64': aad,
  };
  for (const [label, key] of loadKeyMaterial(d.dir)) {
    forbidden[`key material ${label} (base64)`] = key.toString('base64');
    forbidden[`key material ${label} (hex)`] = key.toString('hex');
  }
  // Successes are logged at debug level only (the audit record is the per-request record).
  t.ok(stdout.includes(ids.failed) && audit.includes(ids.encrypt), 'control: stdout records the failed request, the audit log every request');
  for (const [what, value] of Object.entries(forbidden)) {
    t.ok(value.length >= 8, `${what}: a distinctive value`);
    t.notOk(stdout.includes(value), `${what}: not in stdout`);
    t.notOk(logs.some((log) => log.includes(value)), `${what}: not in logs/`);
  }

  const lines = audit.split('\n').filter((l) => l !== '');
  // Besides the requests, the trail holds its own chain records (start, reopen, ...).
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['type'] === 'request');
  t.ok(records.every((r) => typeof r['status'] === 'number' && typeof r['seq'] === 'number'), 'every request line is a chained JSON record with a status');
  // Unauthenticated requests are written once per source, status and interval; a summary record
  // stands for the rest (`suppressed`). Together they account for every request sent.
  const represented = records.reduce((n, r) => n + (typeof r['suppressed'] === 'number' ? r['suppressed'] : 1), 0);
  t.equal(represented, requests, `every request accounted for (${requests} sent)`);
  t.equal(records.filter((r) => r['authenticated'] === true).length, records.filter((r) => r['accessKeyId'] !== undefined).length, 'authenticated exactly when an access key id is named');
  t.ok(records.filter((r) => r['authenticated'] === true).every((r) => r['suppressed'] === undefined), 'authenticated requests are never summed up');
  for (const [what, id] of Object.entries(ids)) {
    const mine = records.filter((r) => r['kmsRequestId'] === id);
    t.equal(mine.length, 1, `${what}: exactly one line with its kmsRequestId`);
    t.notOk(lines.filter((l) => l.includes(id)).length > 1, `${what}: the id appears in no other line`);
  }
  t.equal(records.find((r) => r['kmsRequestId'] === ids.failed)?.['errorName'], 'InvalidCiphertextException', 'L1: the outcome is logged');
  t.equal(records.find((r) => r['kmsRequestId'] === ids.encrypt)?.['kmsOperation'], 'Encrypt', 'L1: kmsOperation is logged');
  // The fields an investigation needs, with their values, not just their presence.
  const enc1 = records.find((r) => r['kmsRequestId'] === ids.encrypt)!;
  t.match(
    enc1,
    {
      type: 'request',
      authenticated: true,
      operation: 'encrypt',
      keyStore: d.demo.store,
      externalKeyId: KEY,
      principal: 'arn:aws:iam::123456789012:user/Alice',
      accessKeyId: d.demo.accessKeyId,
      sourceAddress: '127.0.0.1',
      sourcePort: Number,
      outcome: 'success',
      status: 200,
      hsmNode: /^hsm-\d+$/,
      latencyMs: Number,
    },
    'an Encrypt record: key store, key, principal, credential, source, node, outcome, latency',
  );
  t.match(records.find((r) => r['kmsRequestId'] === ids.failed)!, { operation: 'decrypt', outcome: 'failure', status: 400, externalKeyId: KEY }, 'a failed Decrypt record');
  t.equal(statSync(d.demo.auditLog).mode & 0o777, 0o600, 'the audit file is readable by the service user only (0600)');
});
