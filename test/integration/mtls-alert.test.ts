/**
 * mTLS through the real API listener on 127.0.0.1, driven by real curl and openssl: a refused
 * client certificate (expired, self-signed, another CA, the wrong CN, none) ends the handshake
 * with a fatal handshake_failure alert, as AWS's XKS test client requires
 * ("TLS alert, handshake failure" in `curl -v`), and never reaches HTTP; KMS's certificate gets
 * TLS 1.2 keep-alive and session resumption. Also behind a PROXY header (v1 from curl, v2 with the header and the
 * ClientHello in one segment), on garbage bytes, and with alertOnReject off (TLS 1.3, no alert).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { createCa, issueClientCert, issueServerCert, selfSignedCert, type CertAndKey } from '../../appliance/certs/devpki.js';
import { configSchema, type Config } from '../../appliance/config/schema.js';
import { connectionOf } from '../../gateway/connection.js';
import { createApiListener, type RejectReason } from '../../gateway/listener.js';
import { HANDSHAKE_FAILURE_ALERT } from '../../gateway/tls-records.js';
import { v2Header } from '../helpers/proxy-header.js';

const CN = 'cks.kms.us-east-1.amazonaws.com';
const DAY = 86_400_000;
const ALERT_TEXT = 'TLS alert, handshake failure';

const dir = mkdtempSync(join(tmpdir(), 'xks-mtls-alert-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a pair to DIR/name.pem and DIR/name-key.pem (0600); returns the paths. */
function save(name: string, pair: CertAndKey): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  writeFileSync(cert, pair.certPem);
  writeFileSync(key, pair.keyPem, { mode: 0o600 });
  chmodSync(key, 0o600);
  return { cert, key };
}

const serverCa = createCa('mTLS Test Server CA');
const clientCa = createCa('mTLS Test Client CA');
const otherCa = createCa('mTLS Test Other CA');
const now = Date.now();
const files = {
  serverCa: save('server-ca', serverCa).cert,
  clientCa: save('client-ca', clientCa).cert,
  server: save('server', issueServerCert(serverCa, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })),
  good: save('good', issueClientCert(clientCa, { cn: CN })),
  expired: save('expired', issueClientCert(clientCa, { cn: CN, notBefore: new Date(now - 60 * DAY), notAfter: new Date(now - DAY) })),
  selfSigned: save('self-signed', selfSignedCert({ cn: CN })),
  wrongCn: save('wrong-cn', issueClientCert(clientCa, { cn: 'not-kms.example.invalid' })),
  otherCa: save('other-ca', issueClientCert(otherCa, { cn: CN })),
};

interface Stack {
  port: number;
  rejections: Array<{ reason: RejectReason; source: string | undefined; detail: string | undefined }>;
  requests: Array<{ connection: number; source: string | undefined; cn: unknown; protocol: string | null }>;
}

/** The real API listener with a handler that reports what it saw of the connection. */
async function startListener(t: Test, overrides: { alertOnReject?: boolean; proxyProtocol?: boolean } = {}): Promise<Stack> {
  const parsed = configSchema.parse({
    proxy: { hostname: 'localhost' },
    server: {
      host: '127.0.0.1',
      port: 1, // replaced by 0 below: any free port
      tls: {
        certFile: files.server.cert,
        keyFile: files.server.key,
        clientAuth: { caFile: files.clientCa, subjects: [CN], ...(overrides.alertOnReject === false ? { alertOnReject: false } : {}) },
      },
      allow: ['127.0.0.0/8', '203.0.113.0/24'],
      proxyProtocol: { enabled: overrides.proxyProtocol ?? false, trustedProxies: ['127.0.0.1/32'] },
    },
    hsm: { nodes: [{ id: 'unused', module: '/nonexistent.so', slot: 0, pin: { env: 'UNUSED' } }] },
    keyStores: [{ name: 'test', uriPathPrefix: '/test', credentialsFile: 'unused.json' }],
  });
  const config: Config = { ...parsed, server: { ...parsed.server, port: 0 } };
  const stack: Stack = { port: 0, rejections: [], requests: [] };
  const connectionIds = new WeakMap<object, number>();
  let connections = 0;
  const handler: RequestListener = (req, res) => {
    const socket = req.socket as TLSSocket;
    if (!connectionIds.has(socket)) connectionIds.set(socket, ++connections);
    const seen = {
      connection: connectionIds.get(socket)!,
      source: connectionOf(req.socket)?.sourceAddress,
      cn: socket.getPeerCertificate().subject?.CN,
      protocol: socket.getProtocol(),
    };
    stack.requests.push(seen);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
  };
  const listener = createApiListener(config, handler, {
    onReject: (reason, source, detail) => stack.rejections.push({ reason, source, detail }),
  });
  stack.port = (await listener.listen()).port;
  t.teardown(() => listener.close());
  return stack;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** `curl -v` as AWS's test client runs it, only ever to 127.0.0.1. */
function curl(port: number, pair: { cert: string; key: string } | undefined, extra: string[] = [], paths = ['/ping']): Promise<Run> {
  return run('curl', [
    '--silent',
    '--verbose',
    '--max-time', '20',
    '--resolve', `localhost:${port}:127.0.0.1`,
    '--cacert', files.serverCa,
    ...(pair ? ['--cert', pair.cert, '--key', pair.key] : []),
    ...extra,
    ...paths.map((p) => `https://localhost:${port}${p}`),
  ]);
}

function opensslClient(port: number, pair: { cert: string; key: string }, input: string, extra: string[] = []): Promise<Run> {
  return run(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', files.serverCa, '-cert', pair.cert, '-key', pair.key, '-ign_eof', ...extra],
    input,
  );
}

const HTTP_RESPONSE = /^< HTTP\//m;

t.test('gated listener: KMS certificate over TLS 1.2, refused ones get the alert', async (t) => {
  const stack = await startListener(t);

  t.test('(a) the allowed CN from the client CA: TLS 1.2, several requests on one connection', async (t) => {
    const r = await curl(stack.port, files.good, [], ['/a', '/b', '/c']);
    t.equal(r.code, 0, 'curl exits 0', { stderr: r.stderr });
    t.match(r.stderr, /SSL connection using TLSv1\.2/);
    t.match(r.stderr, /Re-using existing connection/);
    t.notMatch(r.stderr, ALERT_TEXT);
    t.equal(stack.requests.length, 3);
    t.same(new Set(stack.requests.map((q) => q.connection)).size, 1, 'one TLS connection for the three requests');
    t.ok(stack.requests.every((q) => q.cn === CN && q.protocol === 'TLSv1.2' && q.source === '127.0.0.1'), JSON.stringify(stack.requests));
    t.same(stack.rejections, []);
  });

  const refused: Array<[string, { cert: string; key: string }, RegExp]> = [
    ['(b) an expired certificate', files.expired, /expired/],
    ['(c) a self-signed certificate', files.selfSigned, /not issued by a trusted client CA/],
    ['(d) the right CA, the wrong CN', files.wrongCn, /CN "not-kms\.example\.invalid" not allowed/],
    ['(e) a certificate from another CA', files.otherCa, /not issued by a trusted client CA/],
  ];
  for (const [name, pair, reason] of refused) {
    t.test(`${name}: "${ALERT_TEXT}" and no HTTP`, async (t) => {
      stack.requests.length = 0;
      stack.rejections.length = 0;
      const r = await curl(stack.port, pair);
      t.not(r.code, 0);
      t.match(r.stderr, ALERT_TEXT);
      t.notMatch(r.stderr, HTTP_RESPONSE);
      t.equal(r.stdout, '');
      t.same(stack.requests, []);
      t.equal(stack.rejections.length, 1, 'reported once (not again as a TLS error)');
      t.match(stack.rejections[0], { reason: 'tls-client-certificate', source: '127.0.0.1', detail: reason });
    });
  }

  t.test('(f) no client certificate: the handshake fails, no HTTP', async (t) => {
    stack.requests.length = 0;
    stack.rejections.length = 0;
    const r = await curl(stack.port, undefined);
    t.not(r.code, 0);
    t.notMatch(r.stderr, HTTP_RESPONSE);
    t.same(stack.requests, []);
    t.match(stack.rejections, [{ reason: 'tls-client-certificate', detail: 'no client certificate' }]);
  });

  t.test('(g) a TLS-1.3-only client cannot connect', async (t) => {
    stack.requests.length = 0;
    const r = await curl(stack.port, files.good, ['--tlsv1.3']);
    t.not(r.code, 0);
    t.match(r.stderr, /protocol version/);
    t.notMatch(r.stderr, HTTP_RESPONSE);
    const o = await opensslClient(stack.port, files.good, '', ['-tls1_3']);
    t.not(o.code, 0);
    t.match(o.stdout + o.stderr, /alert protocol version/);
    t.same(stack.requests, []);
  });

  t.test('openssl s_client: good certificate served, expired one gets alert 40', async (t) => {
    const ok = await opensslClient(stack.port, files.good, 'GET /openssl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    t.match(ok.stdout, /Protocol {2}: TLSv1\.2/);
    t.match(ok.stdout, /HTTP\/1\.1 200 OK/);
    t.match(ok.stdout, /"cn":"cks\.kms\.us-east-1\.amazonaws\.com"/);
    const bad = await opensslClient(stack.port, files.expired, 'GET / HTTP/1.1\r\n\r\n', ['-tls1_2']);
    t.not(bad.code, 0);
    t.match(bad.stderr, /alert handshake failure/);
    t.match(bad.stderr, /SSL alert number 40/);
    t.notMatch(bad.stdout, /HTTP\/1\.1/);
  });

  t.test('bytes that are not a TLS handshake get the alert record itself, then FIN', async (t) => {
    for (const [name, bytes, reason] of [
      ['oversized record', Buffer.concat([Buffer.from([22, 3, 3, 0x40, 0x01]), Buffer.alloc(64)]), /record length 16385/],
      ['plaintext HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /not a TLS record/],
    ] as const) {
      stack.rejections.length = 0;
      const socket = net.connect(stack.port, '127.0.0.1');
      socket.end(bytes);
      const received: Buffer[] = [];
      socket.on('data', (d: Buffer) => received.push(d));
      await once(socket, 'end');
      socket.destroy();
      t.same(Buffer.concat(received), HANDSHAKE_FAILURE_ALERT, name);
      t.match(stack.rejections, [{ reason: 'tls-client-certificate', detail: reason }]);
    }
  });

  t.test('a resumed session (no Certificate message) passes the gate and keeps its identity', async (t) => {
    stack.requests.length = 0;
    const read = (f: string) => readFileSync(f, 'utf8');
    const connect = (session?: Buffer) =>
      new Promise<{ reused: boolean; session: Buffer | undefined; body: string }>((resolve, reject) => {
        const c = tls.connect({ port: stack.port, host: '127.0.0.1', servername: 'localhost', ca: read(files.serverCa), cert: read(files.good.cert), key: read(files.good.key), session });
        let ticket: Buffer | undefined;
        let reused = false;
        let body = '';
        c.on('session', (s: Buffer) => (ticket = s));
        c.on('secureConnect', () => {
          reused = c.isSessionReused();
          c.write('GET /resumed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        });
        c.setEncoding('utf8').on('data', (d: string) => (body += d));
        c.on('error', reject);
        c.on('close', () => resolve({ reused, session: ticket, body }));
      });
    const first = await connect();
    t.ok(first.session, 'a session ticket');
    const second = await connect(first.session);
    t.ok(second.reused, 'the session was resumed');
    t.match(second.body, /^HTTP\/1\.1 200 OK/);
    t.match(stack.requests, [{ cn: CN }, { cn: CN, protocol: 'TLSv1.2' }]);
  });

  t.test('a client leaving mid-handshake is a TLS error, reported with its source', async (t) => {
    stack.rejections.length = 0;
    const socket = net.connect(stack.port, '127.0.0.1');
    socket.end(Buffer.from([22, 3, 1])); // the start of a record header, then FIN
    socket.resume();
    await once(socket, 'close');
    while (stack.rejections.length === 0) await new Promise((resolve) => setImmediate(resolve));
    t.match(stack.rejections, [{ reason: 'tls-handshake', source: '127.0.0.1' }]);
  });
});

/** A Node TLS client whose first bytes on the wire are the PROXY header and the ClientHello,
 *  written together (one segment), so the listener reads ClientHello bytes with the header. */
function tlsBehindHeader(port: number, header: Buffer, pair: { cert: string; key: string }): Promise<{ body?: string; error?: string }> {
  const tcp = net.connect(port, '127.0.0.1');
  let headerSent = false;
  const carrier = new Duplex({
    read: () => void tcp.resume(),
    write(chunk: Buffer, _enc, done) {
      tcp.write(headerSent ? chunk : Buffer.concat([header, chunk]), done);
      headerSent = true;
    },
    final: (done) => tcp.end(done),
    destroy: (err, done) => {
      tcp.destroy();
      done(err);
    },
  });
  tcp.on('data', (d: Buffer) => carrier.push(d) || tcp.pause());
  tcp.on('end', () => carrier.push(null));
  tcp.on('error', (err) => carrier.destroy(err));
  return new Promise((resolve) => {
    const read = (f: string) => readFileSync(f, 'utf8');
    const client = tls.connect({ socket: carrier, servername: 'localhost', ca: read(files.serverCa), cert: read(pair.cert), key: read(pair.key) });
    let body = '';
    client.setEncoding('utf8');
    client.on('secureConnect', () => client.end('GET /behind-header HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    client.on('data', (d: string) => (body += d));
    client.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    client.on('close', () => resolve({ body }));
  });
}

t.test('behind a PROXY header the gate reads what the header reader left', async (t) => {
  const stack = await startListener(t, { proxyProtocol: true });

  t.test('PROXY v1 from curl --haproxy-protocol', async (t) => {
    const ok = await curl(stack.port, files.good, ['--haproxy-protocol']);
    t.equal(ok.code, 0, 'curl exits 0', { stderr: ok.stderr });
    t.match(ok.stdout, /"cn":"cks\.kms\.us-east-1\.amazonaws\.com"/);
    const bad = await curl(stack.port, files.selfSigned, ['--haproxy-protocol']);
    t.match(bad.stderr, ALERT_TEXT);
    t.notMatch(bad.stderr, HTTP_RESPONSE);
  });

  t.test('PROXY v2 and the ClientHello in one write: the source is the header\'s', async (t) => {
    stack.rejections.length = 0;
    stack.requests.length = 0;
    const header = v2Header({ sourceAddress: '203.0.113.7', destinationAddress: '127.0.0.1', sourcePort: 50_000, destinationPort: 443 });
    const ok = await tlsBehindHeader(stack.port, header, files.good);
    t.match(ok.body, /^HTTP\/1\.1 200 OK/);
    t.match(stack.requests, [{ source: '203.0.113.7', cn: CN, protocol: 'TLSv1.2' }]);
    const bad = await tlsBehindHeader(stack.port, header, files.expired);
    t.same(bad, { error: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    t.match(stack.rejections, [{ reason: 'tls-client-certificate', source: '203.0.113.7', detail: /expired/ }]);
  });
});

t.test('alertOnReject false: TLS 1.3 available, refused clients are just disconnected', async (t) => {
  const stack = await startListener(t, { alertOnReject: false });
  const ok = await curl(stack.port, files.good, ['--tlsv1.3']);
  t.equal(ok.code, 0, 'curl exits 0', { stderr: ok.stderr });
  t.match(stack.requests, [{ protocol: 'TLSv1.3', cn: CN }]);
  const wrong = await curl(stack.port, files.wrongCn);
  t.notMatch(wrong.stderr, ALERT_TEXT, 'the trade-off: no alert');
  t.notMatch(wrong.stderr, HTTP_RESPONSE);
  t.match(stack.rejections, [{ reason: 'tls-client-subject', detail: 'not-kms.example.invalid' }]);
});
