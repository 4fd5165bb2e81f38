/**
 * The client-certificate gate as a stream over real TCP on 127.0.0.1, without TLS on top: bytes
 * pass unchanged, both directions respect backpressure (the gate buffers no more than a stream's
 * high-water mark plus a chunk, however much the peer sends or the writer has), ends propagate,
 * and a refusal sends the alert and a clean FIN even when the client keeps sending.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { createCa } from '../../appliance/certs/devpki.js';
import { gateClientCertificate } from '../../gateway/client-cert-gate.js';
import { HANDSHAKE_FAILURE_ALERT } from '../../gateway/tls-records.js';

const MiB = 1 << 20;
const CHUNK = 64 * 1024;
const u24 = (n: number) => Buffer.from([n >>> 16, (n >>> 8) & 0xff, n & 0xff]);
const record = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 0xff]), body]);
const clientHello = record(22, Buffer.concat([Buffer.from([1]), u24(200), Buffer.alloc(200, 0x11)]));
/** ClientHello then ChangeCipherSpec: an abbreviated handshake, after which the gate only relays. */
const resumedFlight = Buffer.concat([clientHello, record(20, Buffer.from([1]))]);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const caCerts = [new X509Certificate(createCa('Stream Test CA').certPem)];

interface Pair {
  client: net.Socket;
  raw: net.Socket;
  gate: Duplex;
  rejections: string[];
}

async function connectedPair(t: Test): Promise<Pair> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  // Half-open, so each direction's end can be watched on its own.
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [raw] = await accepted;
  const rejections: string[] = [];
  const gate = gateClientCertificate(raw, { caCerts, subjects: new Set(['x']), onReject: (r) => rejections.push(r) });
  t.teardown(() => {
    client.destroy();
    gate.destroy();
    server.close();
  });
  return { client, raw, gate, rejections };
}

t.test('client to server: unchanged bytes, and the socket paused while the reader is', async (t) => {
  const { client, raw, gate } = await connectedPair(t);
  const payload = Buffer.concat([resumedFlight, randomBytes(32 * MiB)]);
  client.end(payload); // all of it queued at once: only backpressure keeps it out of the server

  const received: Buffer[] = [];
  let total = 0;
  let maxBuffered = 0;
  const bound = gate.readableHighWaterMark + CHUNK;
  let readerPaused: (() => void) | undefined;
  const paused = new Promise<void>((resolve) => (readerPaused = resolve));
  gate.on('data', (d: Buffer) => {
    received.push(d);
    total += d.length;
    if (total >= MiB && readerPaused) {
      gate.pause(); // the TLS engine stops reading, once
      readerPaused();
      readerPaused = undefined;
    }
  });
  raw.on('data', () => (maxBuffered = Math.max(maxBuffered, gate.readableLength)));
  await paused;
  // Without backpressure the gate would keep pulling from the socket into its own buffer.
  while (!raw.isPaused() && gate.readableLength <= 4 * MiB) await tick();
  t.ok(raw.isPaused(), 'the TCP socket is paused');
  t.ok(gate.readableLength <= bound, `gate holds ${gate.readableLength} bytes (at most ${bound})`);

  gate.resume();
  await once(gate, 'end');
  t.ok(maxBuffered <= bound, `never more than ${bound} bytes buffered (saw ${maxBuffered})`);
  t.equal(total, payload.length);
  t.equal(sha(Buffer.concat(received)), sha(payload), 'the bytes pass unchanged');
});

t.test('server to client: the writer waits for TCP, a slow reader bounds what is buffered', async (t) => {
  const { client, raw, gate } = await connectedPair(t);
  client.write(resumedFlight);
  gate.resume(); // discard the flight; this test is about the other direction

  const payload = randomBytes(32 * MiB);
  const received: Buffer[] = [];
  client.on('data', (d: Buffer) => {
    received.push(d);
    client.pause(); // a slow reader: one chunk per timer turn
    setTimeout(() => client.resume(), 1);
  });
  const ended = once(client, 'end');

  // A writer that respects backpressure, as Node's TLS engine does over a JS stream.
  let maxBuffered = 0;
  const bound = gate.writableHighWaterMark + 2 * CHUNK;
  for (let at = 0; at < payload.length; at += CHUNK) {
    const more = gate.write(payload.subarray(at, at + CHUNK));
    maxBuffered = Math.max(maxBuffered, gate.writableLength + raw.writableLength);
    if (!more) await once(gate, 'drain');
  }
  gate.end();
  await ended;
  t.ok(maxBuffered <= bound, `gate + socket never held more than ${bound} bytes (saw ${maxBuffered})`);
  t.equal(sha(Buffer.concat(received)), sha(payload), 'the bytes pass unchanged');
});

t.test('ends travel both ways, and a close takes the other side with it', async (t) => {
  const a = await connectedPair(t);
  a.client.write(resumedFlight);
  a.gate.resume();
  const [clientEnded, gateEnded, gateClosed] = [once(a.client, 'end'), once(a.gate, 'end'), once(a.gate, 'close')];
  a.gate.end();
  await clientEnded;
  a.client.end();
  await gateEnded;
  await gateClosed;

  const b = await connectedPair(t);
  b.gate.resume(); // TLS reads whenever it may: that is how it notices the peer leave
  const bClosed = once(b.gate, 'close');
  b.client.destroy();
  await bClosed;
  const c = await connectedPair(t);
  c.client.resume();
  const cEnded = once(c.client, 'end');
  c.gate.destroy();
  await cEnded;
  t.ok(c.raw.destroyed, 'destroying the gate destroys the socket');
});

t.test('refusal: the alert, then FIN (no reset) although the client keeps sending', async (t) => {
  const { client, gate, rejections } = await connectedPair(t);
  gate.resume();
  const emptyCertificate = record(22, Buffer.from([11, 0, 0, 3, 0, 0, 0]));
  client.write(Buffer.concat([clientHello, emptyCertificate]));
  client.write(randomBytes(16 * MiB)); // still in flight when the gate refuses
  const received: Buffer[] = [];
  let error: string | undefined;
  client.on('data', (d: Buffer) => received.push(d));
  client.on('error', (err: NodeJS.ErrnoException) => (error = err.code));
  await once(client, 'end');
  client.end();
  await once(client, 'close');
  t.equal(error, undefined, 'no ECONNRESET');
  t.same(Buffer.concat(received), HANDSHAKE_FAILURE_ALERT);
  t.same(rejections, ['no client certificate']);
  t.ok(gate.destroyed, 'the layers above see a closed stream');
});
