/**
 * PROXY protocol on real sockets on 127.0.0.1, through the gateway's real API listener: TLS and
 * HTTP keep-alive after the header, the source from the header, and the connections that must be
 * dropped; then readProxyHeader itself, byte for byte.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import t, { type Test } from 'tap';
import { readProxyHeader } from '../../gateway/proxy-protocol.js';
import { v1Header, v2Header } from '../helpers/proxy-header.js';
import { makeCert, pattern, startProxyStack, type ProxyStack, type StackOptions } from '../helpers/proxy-stack.js';
import { connectProxied, overSocket } from '../helpers/raw-http.js';

// The listener's reasons for dropping a connection at the PROXY header (gateway/proxy-protocol.ts).
const TIMEOUT = /no complete PROXY header within/;
const NO_SIGNATURE = /does not start with a PROXY protocol signature/;

const cert = makeCert();
t.teardown(() => cert.remove());

async function stack(t: Test, opts: Partial<StackOptions> = {}): Promise<ProxyStack> {
  const s = await startProxyStack(cert, { ...opts, timeoutMs: opts.timeoutMs ?? 5000 });
  t.teardown(() => s.close());
  return s;
}

const json = (body: Buffer): { connection: number; info: { sourceAddress: string; sourcePort?: number; peerAddress: string; vpceId?: string } } =>
  JSON.parse(body.toString());

t.test('PROXY v2 then TLS: two keep-alive requests on one connection, source from the header', async (t) => {
  const s = await stack(t);
  const header = v2Header({ sourceAddress: '192.0.2.44', sourcePort: 40001, destinationAddress: '10.0.0.5', destinationPort: 443 });
  const socket = await connectProxied(s.port, header, { ca: cert.ca });
  const client = overSocket(socket);
  const a = await client.request('/one');
  const b = await client.request('/two');
  t.equal(a.status, 200);
  t.equal(b.status, 200);
  t.equal(client.connectionsMade(), 1, 'the client used one connection');
  t.equal(json(a.body).connection, json(b.body).connection, 'the server saw one connection');
  for (const r of [a, b]) t.match(json(r.body).info, { sourceAddress: '192.0.2.44', sourcePort: 40001, peerAddress: '127.0.0.1' });
  socket.destroy();
});

t.test('header and ClientHello in the same TCP write: the bytes after the header reach TLS', async (t) => {
  const s = await stack(t);
  const header = v2Header({ family: 'TCP6', sourceAddress: '2001:db8::44', sourcePort: 1, vpceId: 'vpce-0123456789abcdef0', crc: true });
  const socket = await connectProxied(s.port, header, { ca: cert.ca, withClientHello: true });
  const r = await overSocket(socket).request('/hello');
  t.equal(r.status, 200);
  // With its CRC32C TLV, verified (a bad one is dropped: below).
  t.match(json(r.body).info, { sourceAddress: '2001:db8::44', vpceId: 'vpce-0123456789abcdef0' });
  socket.destroy();
});

t.test('a header split across many tiny writes', async (t) => {
  const s = await stack(t);
  const header = v2Header({ sourceAddress: '198.51.100.1', sourcePort: 2, vpceId: 'vpce-0abc', crc: true });
  const socket = await connectProxied(s.port, header, { ca: cert.ca, pieceSize: 1 });
  t.match(json((await overSocket(socket).request('/')).body).info, { sourceAddress: '198.51.100.1', vpceId: 'vpce-0abc' });
  socket.destroy();

  const v1 = await connectProxied(s.port, v1Header('TCP4', '203.0.113.9', '10.0.0.1', 5555, 443), { ca: cert.ca, pieceSize: 3 });
  t.match(json((await overSocket(v1).request('/')).body).info, { sourceAddress: '203.0.113.9', sourcePort: 5555 });
  v1.destroy();
});

t.test('LOCAL (health checks) and v1 UNKNOWN are served as the proxy itself', async (t) => {
  // Only 192.0.2.0/24 may connect through the proxy: a LOCAL connection is the trusted proxy's own
  // health check and passes anyway; v1 UNKNOWN names no source, so it is judged as the proxy.
  const s = await stack(t, { allow: ['192.0.2.0/24'] });
  const local = await connectProxied(s.port, v2Header({ command: 'LOCAL' }), { ca: cert.ca });
  const r = await overSocket(local).request('/healthz');
  t.equal(r.status, 200);
  t.match(json(r.body).info, { sourceAddress: '127.0.0.1', peerAddress: '127.0.0.1', sourcePort: local.localPort });
  local.destroy();
  await t.rejects(connectProxied(s.port, v1Header('UNKNOWN'), { ca: cert.ca }), 'v1 UNKNOWN from a proxy outside the allowlist: dropped');
  t.same(s.rejections, [], 'after the header was read');

  const open = await stack(t);
  const socket = await connectProxied(open.port, v1Header('UNKNOWN'), { ca: cert.ca });
  t.match(json((await overSocket(socket).request('/healthz')).body).info, { sourceAddress: '127.0.0.1', sourcePort: socket.localPort });
  socket.destroy();
});

/**
 * Open a raw connection, send `bytes`, and wait for the server to drop it; the listener's reason
 * when the PROXY header was refused, undefined when the connection was dropped after it.
 */
async function dropped(s: ProxyStack, bytes: Buffer | null): Promise<string | undefined> {
  const before = s.rejections.length;
  const raw = net.connect(s.port, '127.0.0.1');
  raw.on('error', () => {});
  await once(raw, 'connect');
  if (bytes) raw.write(bytes);
  raw.resume();
  await new Promise((resolve) => raw.once('close', resolve)); // a reset is a close too (once() would throw)
  return s.rejections[before];
}

t.test('a client that sends nothing is dropped after timeoutMs', async (t) => {
  const s = await stack(t, { timeoutMs: 150 });
  t.match(await dropped(s, null), TIMEOUT);
  t.match(await dropped(s, v2Header().subarray(0, 20)), TIMEOUT, 'half a header, then silence');

  // A peer that keeps sending one byte at a time never completes: the deadline is total, not idle.
  const rejection = s.nextRejection();
  const raw = net.connect(s.port, '127.0.0.1');
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.write('PROXY UNKNOWN ');
  const trickle = setInterval(() => raw.write('x'), 30); // 107 bytes would take 3 s: the 150 ms deadline comes first
  t.teardown(() => clearInterval(trickle));
  await new Promise((resolve) => raw.once('close', resolve)); // a reset is a close too (once() would throw)
  clearInterval(trickle);
  t.match(await rejection, TIMEOUT, 'a trickling peer');
});

t.test('bytes that are not a PROXY header are dropped before TLS', async (t) => {
  const s = await stack(t);
  t.match(await dropped(s, Buffer.from('160301020001000100', 'hex')), NO_SIGNATURE, 'a ClientHello without a header');
  t.match(await dropped(s, Buffer.from('GET / HTTP/1.1\r\n\r\n')), NO_SIGNATURE);
  const badCrc = v2Header({ sourceAddress: '1.2.3.4', crc: true });
  badCrc[17] ^= 1;
  t.match(await dropped(s, badCrc), /CRC32C mismatch/);
  t.match(await dropped(s, Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}`)), /longer than 107 bytes/);
  t.equal(s.requests.length, 0);
});

t.test('a TLS client that sends no header fails instead of reaching the server', async (t) => {
  const s = await stack(t);
  const rejection = s.nextRejection();
  const err = await new Promise<Error>((resolve) => {
    https.get({ host: '127.0.0.1', port: s.port, ca: cert.ca, servername: 'localhost' }, () => resolve(new Error('answered'))).on('error', resolve);
  });
  t.not(err.message, 'answered');
  t.match(await rejection, NO_SIGNATURE);
  t.equal(s.requests.length, 0);
});

t.test('a peer that closes mid-header is reported CLOSED', async (t) => {
  const s = await stack(t);
  const rejection = s.nextRejection();
  const raw = net.connect(s.port, '127.0.0.1');
  await once(raw, 'connect');
  raw.end(v2Header().subarray(0, 10));
  t.match(await rejection, /closed before the PROXY header/);
});

/** One GET written by hand (no Agent: its keep-alive handling would close the socket itself). */
function rawGet(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (text.endsWith('0\r\n\r\n')) {
        socket.off('data', onData); // end of the chunked body; the socket stays open
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.write('GET /raw HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
}

/** Resolves true when `event` comes within `ms`, false when it does not. */
const within = (emitter: NodeJS.EventEmitter, event: string, ms: number) =>
  Promise.race([once(emitter, event).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);

t.test('the server keep-alive timeout still closes an idle proxied connection', async (t) => {
  const s = await stack(t, { keepAliveTimeout: 1000 });
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.ca });
  const ended = within(socket, 'end', 15_000);
  const first = await rawGet(socket);
  t.match(first, /^HTTP\/1\.1 200 /);
  t.notMatch(first, /connection: close/i, 'the reply keeps the connection alive');
  // Kept alive, not closed after each reply: a second request on it is served.
  t.match(await rawGet(socket), /^HTTP\/1\.1 200 /, 'a second request on the same connection is served');
  t.ok(await ended, 'then the server ends the idle connection (its keep-alive timeout), well within 15 s');
  socket.destroy();
});

t.test('closing the listener closes idle proxied connections', async (t) => {
  const s = await stack(t);
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.ca });
  t.match(await rawGet(socket), /^HTTP\/1\.1 200 /);
  const closed = within(socket, 'close', 10_000);
  await s.close();
  t.ok(await closed, 'closed by the server within 10 s');
});

t.test('large bodies both ways with a slow reader: intact, and the server waited for drain', async (t) => {
  const s = await stack(t);
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.ca, withClientHello: true });
  const upload = pattern(4 * 1024 * 1024).reverse();
  const downloadSize = 24 * 1024 * 1024;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => socket;
  const { status, uploadHash, body } = await new Promise<{ status: number; uploadHash: string; body: Buffer }>((resolve, reject) => {
    const req = https.request({ host: 'localhost', path: `/upload?size=${downloadSize}`, method: 'POST', agent }, (res) => {
      const chunks: Buffer[] = [];
      let paused = 0;
      res.on('data', (d: Buffer) => {
        chunks.push(d);
        if (paused++ < 3) {
          res.pause(); // a slow reader: the server's writes must back up meanwhile
          setTimeout(() => res.resume(), 100);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, uploadHash: String(res.headers['x-upload-sha256']), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(upload);
  });
  t.equal(status, 200);
  t.equal(uploadHash, createHash('sha256').update(upload).digest('hex'), 'upload intact');
  t.equal(body.length, downloadSize);
  t.ok(body.equals(pattern(downloadSize)), 'download intact');
  t.ok(s.drainWaits() > 0, 'the server saw backpressure');
  socket.destroy();
});

t.test('readProxyHeader gives back the stream after the header, byte for byte', async (t) => {
  const payload = pattern(1024 * 1024);
  for (const mode of ['one write', 'separate writes', 'paused on connect'] as const) {
    const received = new Promise<{ source?: string; data: Buffer }>((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: mode === 'paused on connect' }, (socket) => {
        readProxyHeader(socket, { timeoutMs: 5000 }).then(({ info, socket: stream }) => {
          const chunks: Buffer[] = [];
          stream.on('data', (d: Buffer) => chunks.push(d));
          stream.resume(); // handed back paused
          stream.on('end', () => {
            server.close();
            stream.end();
            resolve({ source: info.sourceAddress, data: Buffer.concat(chunks) });
          });
        }, reject);
      });
      server.listen(0, '127.0.0.1', () => {
        const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => {
          const header = v2Header({ sourceAddress: '192.0.2.7' });
          if (mode === 'one write') client.end(Buffer.concat([header, payload]));
          else {
            client.write(header);
            setTimeout(() => client.end(payload), 20);
          }
        });
        client.resume();
      });
    });
    const { source, data } = await received;
    t.equal(source, '192.0.2.7', mode);
    t.ok(data.equals(payload), `${mode}: all ${payload.length} bytes after the header, in order`);
  }
});

t.test('readProxyHeader rejects an already closed socket', async (t) => {
  const socket = new net.Socket();
  socket.destroy();
  await t.rejects(readProxyHeader(socket, { timeoutMs: 1000 }), { code: 'CLOSED' });
});
