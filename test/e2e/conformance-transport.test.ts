// Conformance §1 (transport and routing) against the real demo appliance: content types (T1), TLS
// versions and suites (T3), methods (T5), URI shape and routing before authentication (T6-T11),
// long ARNs (T12) and the body cap (T13). Rule ids are those of docs/conformance.md.
import https from 'node:https';
import tls from 'node:tls';
import t from 'tap';
import { type RunningDemo } from '../helpers/demo.js';
import { withDemo } from '../helpers/fixture.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { b64, meta, request, XksClient, type Reply } from '../helpers/xks-client.js';

let d: RunningDemo;
let c: XksClient;
withDemo(t, [], (demo, client) => {
  d = demo;
  c = client;
});

const KEY = 'demo-encrypt-decrypt';
const API_PATHS = ['/health', `/keys/${KEY}/metadata`, `/keys/${KEY}/encrypt`, `/keys/${KEY}/decrypt`];
const encryptBody = () => ({ ...meta(), plaintext: b64('transport'), encryptionAlgorithm: 'AES_GCM' });
const isJsonType = (r: Reply) => /^application\/json(;|$)/.test(String(r.headers['content-type']));

/** A signed request to an absolute path on the demo (outside uriPath too). */
const signedAt = (path: string, body: unknown = meta()) => c.call(`${d.demo.endpoint}${path}`, body);

function handshake(opts: tls.ConnectionOptions): Promise<{ protocol: string | null; cipher: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: d.port, servername: 'localhost', ca: c.ca, ...opts }, () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
      socket.end();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** Raw bytes over TLS, for requests no HTTP client would send; the reply split into its parts. */
function rawExchange(bytes: string): Promise<{ statusLine: string; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: d.port, servername: 'localhost', ca: c.ca }, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    // One request per connection: the reply is complete once the first body is (or the socket ends).
    const done = () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = text.slice(end + 4);
      if (body.length < Number(headers['content-length'] ?? Infinity)) return false;
      resolve({ statusLine, headers, body });
      socket.destroy();
      return true;
    };
    socket.on('data', done);
    socket.once('end', () => done() || reject(new Error(`incomplete reply: ${Buffer.concat(chunks).toString('latin1')}`)));
  });
}

t.test('T1: every response is Content-Type application/json, 200s and errors alike', async (t) => {
  const replies: Record<string, Reply> = {
    '200 health': await c.call('/health', meta()),
    '200 metadata': await c.call(`/keys/${KEY}/metadata`, meta()),
    '200 encrypt': await c.call(`/keys/${KEY}/encrypt`, encryptBody()),
    '400 bad json': await c.call('/health', undefined, { rawBody: '{' }),
    '401 unsigned': await c.call('/health', meta(), { unsigned: true }),
    '404 unknown path': await signedAt('/nope/kms/xks/v1/health'),
    '404 unknown key': await c.call('/keys/no-such-key/metadata', meta()),
    '405 GET': await c.call('/health', undefined, { method: 'GET', unsigned: true, rawBody: '' }),
    '501 body too large': await c.call('/health', undefined, { rawBody: ' '.repeat(70_000) }),
  };
  for (const [what, r] of Object.entries(replies)) {
    t.equal(String(r.status), what.slice(0, 3), `${what}: status`);
    t.equal(r.headers['content-type'], 'application/json', `${what}: content-type`);
    t.type(r.json, 'object', `${what}: the body is JSON`);
  }
});

t.test('T1: application/json; charset=utf-8 is accepted (signed like any header)', async (t) => {
  for (const type of ['application/json; charset=utf-8', 'application/json;charset=UTF-8']) {
    const r = await c.call('/health', meta(), { headers: { 'content-type': type } });
    t.equal(r.status, 200, type);
  }
});

t.test('T1: any other request content type is 400 ValidationException', async (t) => {
  for (const type of ['text/plain', 'application/xml', 'application/jsonx', 'application/x-www-form-urlencoded', 'text/json', '']) {
    const r = await c.call('/health', meta(), { headers: { 'content-type': type } });
    t.equal(specErrorProblem(r, 400, 'ValidationException'), '', `content-type "${type}"`);
  }
});

t.test('T3: TLS 1.2 with ECDHE-RSA-AES256-GCM-SHA384 handshakes', async (t) => {
  const r = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
  t.same(r, { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
});

t.test('T3: TLS 1.3 with TLS_AES_256_GCM_SHA384 handshakes', async (t) => {
  const r = await handshake({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_256_GCM_SHA384' });
  t.same(r, { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
});

t.test('T3: TLS 1.1 is refused by the server', async (t) => {
  // SECLEVEL=0 lets OpenSSL 3 offer TLS 1.1 at all, so the refusal is the server's alert.
  const r = await handshake({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  t.same(r, { error: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
});

t.test('T5: GET, PUT, DELETE and PATCH on each API URI are 405 with Allow: POST and a JSON body', async (t) => {
  for (const path of API_PATHS) {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const r = await c.call(path, undefined, { method, unsigned: true, rawBody: '' });
      t.equal(specErrorProblem(r, 405), '', `${method} ${path}`);
      t.equal(r.headers['allow'], 'POST', `${method} ${path}: Allow`);
    }
  }
});

t.test('T6/T11: an invalid URI path is 404 InvalidUriPathException even with a valid signature', async (t) => {
  const u = d.demo.uriPath;
  const paths = [
    '/unknown/kms/xks/v1/health',
    '/demo/invalid/kms/xks/v1/health',
    `/demo/invalid/kms/xks/v1/keys/${KEY}/metadata`,
    '/demo/kms/xks/v2/health',
    '/DEMO/kms/xks/v1/health',
    '/demo/KMS/xks/v1/health',
    '/kms/xks/v1/health',
    `//demo/kms/xks/v1/health`,
    `${u}`,
    `${u}/`,
    `${u}/status`,
    `${u}/Health`,
    `${u}/keys/${KEY}/sign`,
    `${u}/keys/${KEY}/Encrypt`,
    `${u}/keys/${KEY}`,
    `${u}/keys/${KEY}/`,
    `${u}/keys//metadata`,
    `${u}/keys/${KEY}/encrypt/extra`,
    `${u}/keys/a/b/metadata`,
    `${u}/health/extra`,
    `${u}/health?x=1`,
    `${u}/keys/${KEY}/metadata?kmsRequestId=1`,
  ];
  for (const path of paths) {
    const r = await signedAt(path);
    t.equal(specErrorProblem(r, 404, 'InvalidUriPathException'), '', path);
  }
  // The same signing on the valid path succeeds: the 404s are the router's, not the signature's.
  t.equal((await signedAt(`${u}/keys/${KEY}/metadata`)).status, 200, 'control: the valid path');
});

t.test('T9: key ids with . _ - route; an unconfigured one is 404 KeyNotFoundException', async (t) => {
  for (const id of ['a.b', 'a_b', 'A-z.0_9', '...', '_', 'k'.repeat(128)]) {
    const r = await c.call(`/keys/${id}/metadata`, meta());
    t.equal(specErrorProblem(r, 404, 'KeyNotFoundException'), '', `key id ${id.slice(0, 20)} (${id.length} chars)`);
  }
});

t.test('T9: a 129-char key id or one outside [A-Za-z0-9._-] is 404 InvalidUriPathException', async (t) => {
  for (const id of ['k'.repeat(129), 'a~b', 'a%2Fb', 'a%20b', 'a+b', 'a:b', 'a@b', '%41']) {
    const r = await c.call(`/keys/${id}/metadata`, meta());
    t.equal(specErrorProblem(r, 404, 'InvalidUriPathException'), '', `key id ${id.slice(0, 20)} (${id.length} chars)`);
  }
});

t.test('T12: 2048-character ARNs in requestMetadata are accepted', async (t) => {
  const arn = (kind: string) => `arn:aws:${kind}::123456789012:`.padEnd(2048, 'x');
  const long = { awsPrincipalArn: arn('iam'), kmsKeyArn: arn('kms'), awsSourceVpc: 'vpc-'.padEnd(2048, '0') };
  t.equal(long.awsPrincipalArn.length, 2048);
  t.equal((await c.call(`/keys/${KEY}/metadata`, meta(long))).status, 200, 'metadata');
  t.equal((await c.call(`/keys/${KEY}/encrypt`, { ...encryptBody(), ...meta(long) })).status, 200, 'encrypt');
});

t.test('T13: a body above 64 KiB is 501 UnsupportedOperationException as JSON', async (t) => {
  const r = await c.call('/health', undefined, { rawBody: JSON.stringify({ ...meta(), pad: 'x'.repeat(64 * 1024) }) });
  t.equal(specErrorProblem(r, 501, 'UnsupportedOperationException'), '', 'with Content-Length');
  // Chunked, so the size is known only while reading.
  const chunked = await request(c.url('/health'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    body: ' '.repeat(70_000),
    ca: c.ca,
    agent: new https.Agent({ keepAlive: false }),
  });
  t.equal(specErrorProblem(chunked, 501, 'UnsupportedOperationException'), '', 'chunked');
});

t.test('T13: the cap is no lower than 64 KiB: a signed 60 KB health body succeeds', async (t) => {
  const body = JSON.stringify({ ...meta(), pad: 'x'.repeat(60_000) });
  const r = await c.call('/health', undefined, { rawBody: body });
  t.equal(r.status, 200);
  t.ok(isJsonType(r));
});

t.test('X3: malformed HTTP gets a spec JSON error, never a bare Node 400', async (t) => {
  const path = `${d.demo.uriPath}/health`;
  const body = JSON.stringify(meta());
  const head = (lines: string[]) => `POST ${path} HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
  const cases: Record<string, string> = {
    'no Host header': head(['Content-Type: application/json', `Content-Length: ${body.length}`]) + body,
    'a control byte in a header value': head(['Host: localhost', 'X-Bad: a\x01b', `Content-Length: ${body.length}`]) + body,
    'a space before the colon': head(['Host: localhost', 'X-Bad : v', `Content-Length: ${body.length}`]) + body,
    'Content-Length and Transfer-Encoding': head(['Host: localhost', `Content-Length: ${body.length}`, 'Transfer-Encoding: chunked']) + `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    'two different Content-Lengths': head(['Host: localhost', `Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`]) + body,
    'a non-numeric Content-Length': head(['Host: localhost', 'Content-Length: ten']) + body,
    'headers far above the limit': head(['Host: localhost', `X-Big: ${'a'.repeat(70_000)}`, `Content-Length: ${body.length}`]) + body,
    'a garbage request line': 'GARBAGE\r\n\r\n',
    'an unknown HTTP version': `POST ${path} HTTP/9.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n`,
  };
  for (const [what, bytes] of Object.entries(cases)) {
    const r = await rawExchange(bytes);
    const status = Number(r.statusLine.split(' ')[1]);
    t.match(r.statusLine, /^HTTP\/1\.1 4\d\d /, `${what}: a 4xx status line`);
    const reply = { status, headers: r.headers, text: r.body, json: parseOrUndefined(r.body) };
    t.equal(specErrorProblem(reply, status), '', `${what}: ${r.statusLine}`);
  }
});

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
