// The API port behind a load balancer that speaks PROXY protocol v2 (`xks demo --accept-proxy`,
// trusted from loopback): the allowlist judges the source the header names, the NLB's VPC
// endpoint TLV reaches the audit record, a connection without a header is dropped, and the bytes
// after the header (the TLS ClientHello, even in the same packet) reach TLS intact. A LOCAL
// header is the balancer's own health check.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import t from 'tap';
import { removeDir, startDemo, type RunningDemo } from '../helpers/demo.js';
import { captureClientHello, collectReplies, signedRequest, tcpExchange, type Collected } from '../helpers/raw-http.js';
import { v2Header, type V2HeaderOptions } from '../helpers/proxy-header.js';
import { b64 } from '../helpers/xks-client.js';

const VPCE = 'vpce-0123456789abcdef0';
const INSIDE = '10.1.2.3';
const OUTSIDE = '192.0.2.1';

let d: RunningDemo;
let ca: Buffer;
let clientHello: Buffer;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.before(async () => {
  d = await startDemo(['--accept-proxy', '--allow', '10.0.0.0/8']);
  ca = readFileSync(d.demo.caFile);
  clientHello = await captureClientHello();
});
t.teardown(async () => {
  if (d) {
    await d.stop();
    removeDir(d.dir);
  }
});

const header = (o: V2HeaderOptions) => v2Header({ sourcePort: 40123, destinationAddress: '127.0.0.1', destinationPort: 443, ...o });

/** Wraps a TCP socket so that the first bytes TLS writes (the ClientHello) leave in one write
 *  together with `prefix`: the header and the handshake arrive in the same segment. */
function prefixedStream(raw: net.Socket, prefix: Buffer): Duplex {
  let first = true;
  const stream = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      raw.write(first ? Buffer.concat([prefix, chunk]) : chunk, callback);
      first = false;
    },
    read() {
      raw.resume();
    },
    final(callback) {
      raw.end();
      callback();
    },
    destroy(err, callback) {
      raw.destroy();
      callback(err);
    },
  });
  raw.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) raw.pause();
  });
  raw.on('end', () => stream.push(null));
  raw.on('error', (err) => stream.destroy(err));
  return stream;
}

/** TLS to the demo behind a PROXY v2 header, sent on its own or in the ClientHello's write. */
function proxiedTls(head: Buffer, sameWrite = false): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(d.port, '127.0.0.1', () => {
      raw.setNoDelay(true);
      if (!sameWrite) raw.write(head);
      const socket = tls.connect({ socket: sameWrite ? prefixedStream(raw, head) : raw, servername: 'localhost', ca }, () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
    raw.once('error', reject);
  });
}

function signed(path: string, body: object): Buffer {
  const credential = { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey };
  return signedRequest({ host: `localhost:${d.port}`, path: `${d.demo.uriPath}${path}`, body: JSON.stringify(body), credential, region: d.demo.region });
}

const healthBody = (id: string) => ({ requestMetadata: { kmsRequestId: id, kmsOperation: 'KmsHealthCheck' } });
const oneReply = (socket: tls.TLSSocket, bytes: Buffer | string): Promise<Collected> => collectReplies(socket, bytes, { ms: 5000, until: (r) => r.length > 0 });

/** The audit record of `kmsRequestId`, once the buffered audit log has flushed it. */
async function auditRecord(id: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 50; i++) {
    const line = readFileSync(d.demo.auditLog, 'utf8')
      .split('\n')
      .find((l) => l.includes(`"kmsRequestId":"${id}"`));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    await sleep(100);
  }
  return undefined;
}

t.test('a PROXY source outside the allowlist is refused: closed before TLS, no HTTP reply', async (t) => {
  const got = await tcpExchange(d.port, Buffer.concat([header({ sourceAddress: OUTSIDE }), clientHello]), 3000);
  t.equal(got.received.length, 0, 'not a byte back: no ServerHello, no HTTP');
  t.ok(got.closed, 'the connection is closed');
  await t.rejects(proxiedTls(header({ sourceAddress: OUTSIDE })), 'a real TLS client fails its handshake');
  await sleep(200);
  t.match(d.output(), new RegExp(`"reason":"allowlist","source":"${OUTSIDE.replace(/\./g, '\\.')}"`), 'logged as refused by the allowlist, naming the PROXY source');
});

t.test('a PROXY source inside the allowlist is served, and audited under that source', async (t) => {
  const socket = await proxiedTls(header({ sourceAddress: INSIDE }));
  const got = await oneReply(socket, signed('/health', healthBody('edge-inside')));
  t.equal(got.responses[0]?.status, 200, 'GetHealthStatus served');
  socket.destroy();
  const record = await auditRecord('edge-inside');
  t.equal(record?.['sourceAddress'], INSIDE, 'the audit record names the PROXY source, not 127.0.0.1');
});

t.test('the AWS VPC endpoint TLV (0xEA/0x01) is accepted and its id reaches the audit record', async (t) => {
  for (const crc of [false, true]) {
    const id = `edge-vpce-${crc ? 'crc' : 'plain'}`;
    const socket = await proxiedTls(header({ sourceAddress: INSIDE, vpceId: VPCE, crc }));
    const got = await oneReply(socket, signed('/health', healthBody(id)));
    t.equal(got.responses[0]?.status, 200, `served${crc ? ' (with a CRC32C TLV too)' : ''}`);
    socket.destroy();
    const record = await auditRecord(id);
    t.equal(record?.['vpcEndpointId'], VPCE, `${id}: vpcEndpointId in the audit record`);
  }
});

t.test('a connection without a PROXY header is dropped', async (t) => {
  const got = await tcpExchange(d.port, clientHello, 5000);
  t.equal(got.received.length, 0, 'a bare ClientHello gets nothing back');
  t.ok(got.closed, 'and the connection is closed');
  await sleep(200);
  t.match(d.output(), /"reason":"proxy-protocol"/, 'logged as a PROXY protocol refusal');
});

t.test('bytes after the header reach TLS intact, also in the same write as the ClientHello', async (t) => {
  for (const sameWrite of [false, true]) {
    const socket = await proxiedTls(header({ sourceAddress: INSIDE, vpceId: VPCE }), sameWrite);
    const body = {
      requestMetadata: { kmsRequestId: `edge-intact-${sameWrite}`, kmsOperation: 'Encrypt', awsPrincipalArn: 'arn:aws:iam::123456789012:user/Edge', kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/edge' },
      plaintext: b64(Buffer.alloc(4096, 0xa5)),
      encryptionAlgorithm: 'AES_GCM',
    };
    const got = await oneReply(socket, signed(`/keys/${d.demo.keys.encryptDecrypt}/encrypt`, body));
    const json = JSON.parse(got.responses[0]?.body.toString() ?? '{}') as { ciphertext?: string };
    t.equal(got.responses[0]?.status, 200, `${sameWrite ? 'header and ClientHello in one write' : 'header on its own'}: a 4 KB Encrypt is served`);
    t.equal(Buffer.from(json.ciphertext ?? '', 'base64').length, 4096, 'and its ciphertext is as long as the plaintext');
    socket.destroy();
  }
});

t.test('a LOCAL header (the balancer’s own health check), then GET /healthz', async (t) => {
  // The trusted proxy's own address (127.0.0.1) is outside --allow 10.0.0.0/8, but a LOCAL
  // connection is the proxy's health check, not a client's: it is answered.
  const socket = await proxiedTls(v2Header({ command: 'LOCAL' }));
  const got = await oneReply(socket, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.equal(got.responses[0]?.status, 200, 'GET /healthz answers 200');
  t.equal(got.responses[0]?.headers['content-type'], 'application/json', 'as JSON');
  t.same(JSON.parse(got.responses[0]?.body.toString() ?? '{}'), { status: 'ok' }, 'with the health body');
  socket.destroy();
});
