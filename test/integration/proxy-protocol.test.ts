/**
 * readProxyHeader on real sockets on 127.0.0.1, feeding Node's https server the way the gateway
 * does (emit('connection')): TLS and HTTP keep-alive after the header, the source from the header,
 * and the connections that must be dropped.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import t, { type Test } from 'tap';
import { readProxyHeader, ProxyProtocolError } from '../../gateway/proxy-protocol.js';
import { v1Header, v2Header } from '../helpers/proxy-header.js';
import { connectProxied, makeCert, overSocket, pattern, startProxyStack, type ProxyStack } from '../helpers/proxy-stack.js';

const cert = makeCert();
t.teardown(() => cert.remove());

async function stack(t: Test, opts: { timeoutMs?: number; keepAliveTimeout?: number } = {}): Promise<ProxyStack> {
  const s = await startProxyStack(cert, { timeoutMs: opts.timeoutMs ?? 5000, keepAliveTimeout: opts.keepAliveTimeout });
  t.teardown(() => s.close());
  return s;
}

const json = (body: Buffer): { connection: number; info: { sourceAddress?: string; sourcePort?: number; command: string; vpceId?: string; tlvs: number[] } } =>
  JSON.parse(body.toString());

t.test('PROXY v2 then TLS: two keep-alive requests on one connection, source from the header', async (t) => {
  const s = await stack(t);
  const header = v2Header({ sourceAddress: '192.0.2.44', sourcePort: 40001, destinationAddress: '10.0.0.5', destinationPort: 443 });
  const socket = await connectProxied(s.port, header, { ca: cert.cert });
  const client = overSocket(socket);
  const a = await client.request('/one');
  const b = await client.request('/two');
  t.equal(a.status, 200);
  t.equal(b.status, 200);
  t.equal(client.connectionsMade(), 1, 'the client used one connection');
  t.equal(json(a.body).connection, json(b.body).connection, 'the server saw one connection');
  for (const r of [a, b]) t.match(json(r.body).info, { command: 'PROXY', sourceAddress: '192.0.2.44', sourcePort: 40001 });
  socket.destroy();
});

t.test('header and ClientHello in the same TCP write: the bytes after the header reach TLS', async (t) => {
  const s = await stack(t);
  const header = v2Header({ family: 'TCP6', sourceAddress: '2001:db8::44', sourcePort: 1, vpceId: 'vpce-0123456789abcdef0', crc: true });
  const socket = await connectProxied(s.port, header, { ca: cert.cert, withClientHello: true });
  const r = await overSocket(socket).request('/hello');
  t.ok(s.bufferedAfterHeader[0] > 0, `${s.bufferedAfterHeader[0]} ClientHello bytes arrived with the header`);
  t.equal(r.status, 200);
  t.match(json(r.body).info, { sourceAddress: '2001:db8::44', vpceId: 'vpce-0123456789abcdef0', tlvs: [0xea, 0x03] });
  socket.destroy();
});

t.test('a header split across many tiny writes', async (t) => {
  const s = await stack(t);
  const header = v2Header({ sourceAddress: '198.51.100.1', sourcePort: 2, vpceId: 'vpce-0abc', crc: true });
  const socket = await connectProxied(s.port, header, { ca: cert.cert, pieceSize: 1 });
  t.match(json((await overSocket(socket).request('/')).body).info, { sourceAddress: '198.51.100.1', vpceId: 'vpce-0abc' });
  socket.destroy();

  const v1 = await connectProxied(s.port, v1Header('TCP4', '203.0.113.9', '10.0.0.1', 5555, 443), { ca: cert.cert, pieceSize: 3 });
  t.match(json((await overSocket(v1).request('/')).body).info, { version: 1, sourceAddress: '203.0.113.9', sourcePort: 5555 });
  v1.destroy();
});

t.test('LOCAL (health checks) and v1 UNKNOWN are served with the real endpoints', async (t) => {
  const s = await stack(t);
  for (const header of [v2Header({ command: 'LOCAL' }), v1Header('UNKNOWN')]) {
    const socket = await connectProxied(s.port, header, { ca: cert.cert });
    const r = await overSocket(socket).request('/healthz');
    t.equal(r.status, 200);
    t.equal(json(r.body).info.sourceAddress, undefined, 'no address in the header');
    socket.destroy();
  }
  t.same(s.headers.map((h) => [h.version, h.command, h.family]), [[2, 'LOCAL', 'UNSPEC'], [1, 'PROXY', 'UNSPEC']]);
});

/** Open a raw connection, send `bytes`, and wait for the server to drop it. */
async function dropped(s: ProxyStack, bytes: Buffer | null): Promise<ProxyProtocolError> {
  const rejection = s.nextRejection();
  const raw = net.connect(s.port, '127.0.0.1');
  raw.on('error', () => {});
  await once(raw, 'connect');
  if (bytes) raw.write(bytes);
  raw.resume();
  const [err] = await Promise.all([rejection, once(raw, 'close')]);
  return err;
}

t.test('a client that sends nothing is dropped after timeoutMs', async (t) => {
  const s = await stack(t, { timeoutMs: 150 });
  t.equal((await dropped(s, null)).code, 'TIMEOUT');
  t.equal((await dropped(s, v2Header().subarray(0, 20))).code, 'TIMEOUT', 'half a header, then silence');

  // A peer that keeps sending one byte at a time never completes: the deadline is total, not idle.
  const rejection = s.nextRejection();
  const raw = net.connect(s.port, '127.0.0.1');
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.write('PROXY UNKNOWN ');
  const trickle = setInterval(() => raw.write('x'), 30); // 107 bytes would take 3 s: the 150 ms deadline comes first
  t.teardown(() => clearInterval(trickle));
  await once(raw, 'close');
  clearInterval(trickle);
  t.equal((await rejection).code, 'TIMEOUT', 'a trickling peer');
});

t.test('bytes that are not a PROXY header are dropped before TLS', async (t) => {
  const s = await stack(t);
  t.equal((await dropped(s, Buffer.from('160301020001000100', 'hex'))).code, 'MALFORMED', 'a ClientHello without a header');
  t.equal((await dropped(s, Buffer.from('GET / HTTP/1.1\r\n\r\n'))).code, 'MALFORMED');
  const badCrc = v2Header({ sourceAddress: '1.2.3.4', crc: true });
  badCrc[17] ^= 1;
  t.equal((await dropped(s, badCrc)).code, 'BAD_CRC');
  t.equal((await dropped(s, Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}`))).code, 'TOO_LARGE');
  t.equal(s.headers.length, 0);
});

t.test('a TLS client that sends no header fails instead of reaching the server', async (t) => {
  const s = await stack(t);
  const rejection = s.nextRejection();
  const err = await new Promise<Error>((resolve) => {
    https.get({ host: '127.0.0.1', port: s.port, ca: cert.cert, servername: 'localhost' }, () => resolve(new Error('answered'))).on('error', resolve);
  });
  t.not(err.message, 'answered');
  t.equal((await rejection).code, 'MALFORMED');
  t.equal(s.requests.length, 0);
});

t.test('a peer that closes mid-header is reported CLOSED', async (t) => {
  const s = await stack(t);
  const rejection = s.nextRejection();
  const raw = net.connect(s.port, '127.0.0.1');
  await once(raw, 'connect');
  raw.end(v2Header().subarray(0, 10));
  t.equal((await rejection).code, 'CLOSED');
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

t.test('the server keep-alive timeout still closes an idle proxied connection', async (t) => {
  const s = await stack(t, { keepAliveTimeout: 200 });
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.cert });
  const ended = once(socket, 'end');
  t.match(await rawGet(socket), /^HTTP\/1\.1 200 /);
  await ended; // the server's FIN: only its socket.setTimeout can have closed this idle connection
  t.pass('ended by the server');
  socket.destroy();
});

t.test('closeAllConnections() closes proxied connections', async (t) => {
  const s = await stack(t);
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.cert });
  t.match(await rawGet(socket), /^HTTP\/1\.1 200 /);
  const closed = once(socket, 'close');
  s.https.closeAllConnections();
  await closed;
  t.pass('closed by the server');
});

t.test('large bodies both ways with a slow reader: intact, and the server waited for drain', async (t) => {
  const s = await stack(t);
  const socket = await connectProxied(s.port, v2Header({ sourceAddress: '192.0.2.1' }), { ca: cert.cert, withClientHello: true });
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
