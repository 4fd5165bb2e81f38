// The demo PKI in real TLS on 127.0.0.1 and under `openssl verify`: the server certificate for
// a name and for an IP, and mTLS that accepts KMS's client certificate and refuses others at
// the handshake.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { ensureDemoPki, issueClientCert, selfSignedCert } from '../../appliance/certs/devpki.js';

const dir = mkdtempSync(join(tmpdir(), 'certs-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const files = ensureDemoPki(dir, { serverNames: ['localhost'], serverIps: ['127.0.0.1'], mtls: true, region: 'us-east-1' });
const client = files.client!;
const read = (f: string) => readFileSync(f, 'utf8');
const ca = read(files.caFile);
const serverOptions = { cert: read(files.serverChainFile), key: read(files.serverKeyFile) };

async function listen(server: tls.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Connects, reads until the socket closes, and tells what the client saw: the server's reply
 *  over a verified connection, or the first error. */
async function connect(opts: tls.ConnectionOptions): Promise<{ ok: true; reply: string } | { ok: false; code: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', ...opts });
    let reply = '';
    let failure: string | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (reply += d));
    socket.on('error', (err: NodeJS.ErrnoException) => (failure ??= err.code ?? err.message));
    socket.on('close', () => {
      if (failure) resolve({ ok: false, code: failure });
      else resolve(reply ? { ok: true, reply } : { ok: false, code: 'closed without reply' });
    });
  });
}

t.test('a Node TLS server with the demo server certificate', async (t) => {
  const server = tls.createServer(serverOptions, (s) => s.end('hello'));
  t.teardown(() => server.close());
  const port = await listen(server);

  t.same(await connect({ port, servername: 'localhost', ca }), { ok: true, reply: 'hello' }, 'by name, verified against ca.pem');
  t.same(await connect({ port, ca }), { ok: true, reply: 'hello' }, 'by IP 127.0.0.1 (IP SAN), verified against ca.pem');
  t.same(await connect({ port, servername: 'xks.example.com', ca }), { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'another name is refused');
  t.same(await connect({ port, servername: 'localhost' }), { ok: false, code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'without the demo CA it is untrusted');
});

t.test('openssl verifies the chain files against the CA files', async (t) => {
  const verify = (caFile: string, purpose: string, cert: string) =>
    spawnSync('openssl', ['verify', '-CAfile', caFile, '-purpose', purpose, cert], { encoding: 'utf8' });
  const server = verify(files.caFile, 'sslserver', files.serverChainFile);
  t.equal(server.status, 0, server.stderr);
  t.match(server.stdout, /: OK/);
  const kms = verify(client.caFile, 'sslclient', client.certFile);
  t.equal(kms.status, 0, kms.stderr);
  t.not(verify(files.caFile, 'sslclient', client.certFile).status, 0, 'the client certificate is not under the server CA');
  t.not(verify(client.caFile, 'sslserver', client.certFile).status, 0, 'a client certificate is no server certificate');
});

t.test('mTLS with client-ca.pem: KMS client accepted, others refused at the handshake', async (t) => {
  const clientCa = { certPem: read(client.caFile), keyPem: read(client.caKeyFile) };
  const now = Date.now();
  const self = selfSignedCert({ cn: client.subject });
  const expired = issueClientCert(clientCa, { cn: client.subject, notBefore: new Date(now - 30 * 86_400_000), notAfter: new Date(now - 86_400_000) });
  const foreign = issueClientCert({ certPem: ca, keyPem: read(files.caKeyFile) }, { cn: client.subject });
  const mtls = { ...serverOptions, ca: clientCa.certPem, requestCert: true };

  const accepted: string[] = [];
  const server = tls.createServer({ ...mtls, rejectUnauthorized: true }, (s) => {
    accepted.push(String(s.getPeerCertificate().subject.CN));
    s.end('hello');
  });
  t.teardown(() => server.close());
  const port = await listen(server);
  const as = (cert?: string, key?: string) => connect({ port, servername: 'localhost', ca, cert, key });

  t.same(await as(read(client.certFile), read(client.keyFile)), { ok: true, reply: 'hello' });
  t.same(accepted, [client.subject]);
  // Same CA, other CN: TLS accepts it; refusing the subject is the gateway's job, it must see it.
  t.same(await as(read(client.wrongCertFile), read(client.wrongKeyFile)), { ok: true, reply: 'hello' });
  t.same(accepted, [client.subject, client.wrongSubject]);

  // Node verifies the client certificate when OpenSSL's handshake ends and destroys the socket
  // before the application sees it: the client gets no reply and no alert.
  t.same(await as(self.certPem, self.keyPem), { ok: false, code: 'closed without reply' }, 'self-signed with the right CN');
  t.same(await as(expired.certPem, expired.keyPem), { ok: false, code: 'closed without reply' }, 'expired, from the right CA');
  t.same(await as(foreign.certPem, foreign.keyPem), { ok: false, code: 'closed without reply' }, 'from another CA');
  t.same(await as(), { ok: false, code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }, 'no client certificate at all');
  t.same(accepted, [client.subject, client.wrongSubject], 'no refused client reached the application');

  // Why each was refused: the same handshake with rejection off reports the verification error.
  const reasons = tls.createServer({ ...mtls, rejectUnauthorized: false }, (s) => s.end(s.authorized ? 'authorized' : String(s.authorizationError)));
  t.teardown(() => reasons.close());
  const reasonPort = await listen(reasons);
  const why = async (cert: string, key: string) => {
    const r = await connect({ port: reasonPort, servername: 'localhost', ca, cert, key });
    return r.ok ? r.reply : r.code;
  };
  t.equal(await why(read(client.certFile), read(client.keyFile)), 'authorized');
  t.equal(await why(self.certPem, self.keyPem), 'DEPTH_ZERO_SELF_SIGNED_CERT');
  t.equal(await why(expired.certPem, expired.keyPem), 'CERT_HAS_EXPIRED');
  // The client sends its CA along (OpenSSL builds the chain from the client's `ca`, here the
  // server CA), so the server meets an untrusted root rather than an unknown issuer.
  t.equal(await why(foreign.certPem, foreign.keyPem), 'SELF_SIGNED_CERT_IN_CHAIN');
});
