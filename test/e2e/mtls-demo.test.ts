// mTLS end to end through `xks demo --mtls`, as an operator turns it on: the client certificate
// demo.json names is served; the wrong one (same CA, another CN) and none at all end in the TLS
// handshake with an alert, before any HTTP; each refusal is logged.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import t from 'tap';
import { startDemo, stopAndRemove, type RunningDemo } from '../helpers/demo.js';
import { collectReplies, signedRequest } from '../helpers/raw-http.js';
import { meta, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo | undefined;
t.before(async () => {
  // HAProxy in front too: its health checks cannot present KMS's client certificate.
  d = await startDemo((port) => ['--mtls', '--haproxy-port', String(port + 6)]);
});
t.teardown(() => stopAndRemove(d));

const read = (file: string | undefined) => readFileSync(file!);

/** A TLS handshake with `cert`/`key` (or none): the session, or the error that ended it. */
function handshake(cert?: Buffer, key?: Buffer): Promise<{ socket?: tls.TLSSocket; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: d!.port, servername: 'localhost', ca: read(d!.demo.caFile), ...(cert ? { cert, key } : {}) });
    socket.once('secureConnect', () => {
      // TLS 1.2 (alertOnReject): a refused certificate fails the handshake itself, so reaching here
      // means the server accepted it. Send a request to be sure nothing closes it afterwards.
      resolve({ socket });
    });
    socket.once('error', (error) => resolve({ error }));
  });
}

t.test('demo.json names a client certificate and a wrong one', async (t) => {
  for (const f of ['clientCert', 'clientKey', 'wrongClientCert', 'wrongClientKey'] as const) t.ok(d!.demo[f], `${f}`);
});

t.test('the right client certificate: served', async (t) => {
  const c = new XksClient(d!.demo);
  t.teardown(() => c.close());
  const tlsOpts = { cert: read(d!.demo.clientCert), key: read(d!.demo.clientKey) };
  const health = await c.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { tls: tlsOpts });
  t.equal(health.status, 200, 'GetHealthStatus');
  const enc = await c.call(`/keys/${d!.demo.keys.encryptDecrypt}/encrypt`, { ...meta(), plaintext: Buffer.from('mtls').toString('base64'), encryptionAlgorithm: 'AES_GCM' }, { tls: tlsOpts });
  t.equal(enc.status, 200, 'Encrypt');
  const { socket } = await handshake(tlsOpts.cert, tlsOpts.key);
  t.ok(socket, 'a raw handshake succeeds');
  const body = JSON.stringify({ requestMetadata: { kmsRequestId: 'mtls-raw', kmsOperation: 'KmsHealthCheck' } });
  const req = signedRequest({ host: `localhost:${d!.port}`, path: `${d!.demo.uriPath}/health`, body, credential: { accessKeyId: d!.demo.accessKeyId, secretAccessKey: d!.demo.secretAccessKey }, region: d!.demo.region });
  const got = await collectReplies(socket!, req, { ms: 5000, until: (r) => r.length > 0 });
  t.equal(got.responses[0]?.status, 200, 'and serves on it');
  socket!.destroy();
});

t.test('through HAProxy: its health checks use the plain health port, so the servers are up and mTLS calls pass', async (t) => {
  const h = d!.demo.haproxy!;
  t.match(readFileSync(h.configFile, 'utf8'), /^\s*server \S+ 127\.0\.0\.1:\d+ port \d+ /m, 'checks go to the health port');
  const c = new XksClient(d!.demo);
  t.teardown(() => c.close());
  const tlsOpts = { cert: read(d!.demo.clientCert), key: read(d!.demo.clientKey) };
  let status = 0;
  for (const end = Date.now() + 15_000; status !== 200 && Date.now() < end; await new Promise((r) => setTimeout(r, 300))) {
    status = (await c.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { tls: tlsOpts, endpoint: h.endpoint }).catch(() => ({ status: 0 }))).status;
  }
  t.equal(status, 200, 'GetHealthStatus through HAProxy with the client certificate');
});

t.test('the wrong client certificate (right CA, wrong CN): the handshake fails with an alert', async (t) => {
  const { socket, error } = await handshake(read(d!.demo.wrongClientCert), read(d!.demo.wrongClientKey));
  socket?.destroy();
  t.notOk(socket, 'no TLS session');
  t.match(error?.message, /alert|handshake/i, `refused in the handshake: ${error?.message}`);
});

t.test('no client certificate: the handshake fails', async (t) => {
  const { socket, error } = await handshake();
  socket?.destroy();
  t.notOk(socket, 'no TLS session');
  t.ok(error, `refused: ${error?.message}`);
});

t.test('the refusals are logged, naming why', async (t) => {
  await new Promise((r) => setTimeout(r, 300));
  t.match(d!.output(), /"reason":"tls-client-certificate"[^\n]*subject CN/, 'the wrong CN is logged as a client certificate refusal');
});
