// Edge hardening of the API listener, against the real appliance:
//  - the demo as started by `xks demo`: slow-loris (and a silent connection) cut off by the
//    headers timeout while others are served, keep-alive idle beyond Node's default 5 s and beyond
//    the headers timeout, the body cap (501), oversized headers, request smuggling (one JSON 400,
//    connection closed, the smuggled request never processed) and pipelining;
//  - the demo with `--allow 10.0.0.0/8`: 127.0.0.1 is refused before TLS (no ServerHello);
//  - settings the demo flags do not expose, in-process through startAppliance() with the demo's
//    tokens, certificates and credentials and a configuration file validated by the real loader:
//    per-source connection cap, per-store quota (429), per-store allow and policy (403 naming the
//    denying rule in the log, never for GetHealthStatus).
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../appliance/config/load.js';
import { createLogger } from '../../appliance/logging.js';
import { startAppliance, type Appliance } from '../../appliance/service.js';
import { freePorts, removeDir, startDemo, type RunningDemo } from '../helpers/demo.js';
import { classifyReply } from '../helpers/fuzz/index.js';
import { captureClientHello, collectReplies, signedRequest, tcpExchange, tlsConnect, type RawResponse } from '../helpers/raw-http.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { b64, meta, XksClient, type Reply } from '../helpers/xks-client.js';

/** gateway/listener.ts: `headersTimeout = server.headersTimeoutMs ?? 20_000`; the demo sets none. */
const HEADERS_TIMEOUT_MS = 20_000;

let d: RunningDemo;
let ca: Buffer;
let client: XksClient;
let clientHello: Buffer;
let app: Appliance | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.before(async () => {
  d = await startDemo();
  ca = readFileSync(d.demo.caFile);
  client = new XksClient(d.demo);
  clientHello = await captureClientHello();
  // These take tens of seconds of waiting: they run while the other demo tests do.
  loris = slowLoris();
  silent = silentConnection();
  idle = keptAliveThroughIdle();
});
t.teardown(async () => {
  client?.close();
  await app?.close();
  if (d) {
    await d.stop();
    removeDir(d.dir);
  }
});

/** A raw reply as the spec-JSON oracle takes it. */
function asReply(r: RawResponse): Reply {
  const text = r.body.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

const healthBody = (id: string) => JSON.stringify({ requestMetadata: { kmsRequestId: id, kmsOperation: 'KmsHealthCheck' } });
const credential = () => ({ accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey });
const signedHealth = (id: string) =>
  signedRequest({ host: `localhost:${d.port}`, path: `${d.demo.uriPath}/health`, body: healthBody(id), credential: credential(), region: d.demo.region });

// ---------------------------------------------------------------------------------------------
// The default demo.

interface LorisResult {
  reply: RawResponse | undefined;
  closed: boolean;
  elapsedMs: number;
  trickled: number;
  servedMeanwhile: number[];
}

interface IdleResult {
  statuses: number[];
  keepAlive: string | undefined;
  /** Requests served before the connection closed, if it did. */
  closedAfter: number | undefined;
}

let loris: Promise<LorisResult>;
let silent: Promise<{ reply: RawResponse | undefined; closed: boolean }>;
let idle: Promise<IdleResult>;

/**
 * One connection, three requests: idle 6 s (past Node's default 5 s keep-alive), then 50 s more
 * (past the headers timeout plus Node's 30 s check, which must not apply between requests).
 */
async function keptAliveThroughIdle(): Promise<IdleResult> {
  const socket = await tlsConnect(d.port, ca);
  const statuses: number[] = [];
  let closedAfter: number | undefined;
  socket.once('close', () => (closedAfter = statuses.length));
  let keepAlive: string | undefined;
  for (const [i, pause] of [0, 6000, 50_000].entries()) {
    await sleep(pause);
    if (closedAfter !== undefined) break;
    const got = await collectReplies(socket, signedHealth(`hardening-keepalive-${i}`), { ms: 5000, until: (r) => r.length > 0 });
    statuses.push(got.responses[0]?.status ?? 0);
    keepAlive ??= got.responses[0]?.headers['keep-alive'];
  }
  socket.destroy();
  return { statuses, keepAlive, closedAfter };
}

/** A TLS connection that never sends a request is not held forever either. */
async function silentConnection(): Promise<{ reply: RawResponse | undefined; closed: boolean }> {
  const socket = await tlsConnect(d.port, ca);
  const got = await collectReplies(socket, undefined, { ms: HEADERS_TIMEOUT_MS + 40_000 });
  socket.destroy();
  return { reply: got.responses[0], closed: got.closed };
}

/** Header bytes, one line a second, never the blank line that ends them; others call meanwhile. */
async function slowLoris(): Promise<LorisResult> {
  const socket = await tlsConnect(d.port, ca);
  const started = performance.now();
  let trickled = 0;
  socket.write(`POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\n`);
  const drip = setInterval(() => socket.write(`X-Loris-${trickled++}: a\r\n`), 1000);
  const servedMeanwhile: number[] = [];
  const others = setInterval(() => {
    client.call('/health', meta({ kmsOperation: 'KmsHealthCheck' })).then(
      (r) => servedMeanwhile.push(r.status),
      () => servedMeanwhile.push(0),
    );
  }, 2000);
  // Node checks the headers timeout every 30 s (connectionsCheckingInterval): allow for both.
  const got = await collectReplies(socket, undefined, { ms: HEADERS_TIMEOUT_MS + 40_000 });
  clearInterval(drip);
  clearInterval(others);
  socket.destroy();
  return { reply: got.responses[0], closed: got.closed, elapsedMs: performance.now() - started, trickled, servedMeanwhile };
}

t.test('body above the limit: 501 UnsupportedOperationException as JSON at once; up to 1 MiB the rest is drained and the connection serves on, beyond that it closes', async (t) => {
  const { config } = await loadConfig(d.demo.configFile);
  const max = config.server.maxBodyBytes;
  const health = (body: string) => signedRequest({ host: `localhost:${d.port}`, path: `${d.demo.uriPath}/health`, body, credential: credential(), region: d.demo.region });
  const big = JSON.stringify({ ...meta({ kmsOperation: 'KmsHealthCheck' }), pad: 'x'.repeat(max) });
  const head = `POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
  const chunked = Buffer.from(`${head}${(max + 1).toString(16)}\r\n${'x'.repeat(max + 1)}\r\n0\r\n\r\n`);
  for (const [what, bytes] of [['Content-Length above the cap', health(big)], ['a chunked body that grows past the cap', chunked]] as const) {
    const socket = await tlsConnect(d.port, ca);
    const got = await collectReplies(socket, bytes, { ms: 5000, until: (r) => r.length > 0 });
    t.equal(got.responses.length, 1, `${what}: one reply`);
    t.equal(specErrorProblem(asReply(got.responses[0]!), 501, 'UnsupportedOperationException'), '', `${what}: spec JSON 501`);
    // Closing with the body unread would make TCP reset the connection, and the reset can
    // destroy the 501 before the client reads it (seen through HAProxy): it is read and dropped.
    const next = await collectReplies(socket, health(JSON.stringify(meta({ kmsOperation: 'KmsHealthCheck' }))), { ms: 5000, until: (r) => r.length > 0 });
    t.equal(next.responses[0]?.status, 200, `${what}: the same connection then serves a valid request`);
    socket.destroy();
  }
  // Declared beyond what is worth draining: answered, then closed without reading it.
  const huge = Buffer.from(`POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${4 << 20}\r\n\r\n{"pad":"`);
  const got = await collectReplies(await tlsConnect(d.port, ca), huge, { ms: 5000 });
  t.equal(specErrorProblem(asReply(got.responses[0]!), 501, 'UnsupportedOperationException'), '', 'Content-Length of 4 MiB: spec JSON 501');
  t.ok(got.closed, 'Content-Length of 4 MiB: connection closed');
});

t.test('oversized headers: a JSON error, never Node’s bare 431/400, then the connection closes', async (t) => {
  for (const [what, extra] of [
    ['one 20 KB header', `X-Big: ${'h'.repeat(20_000)}\r\n`],
    ['500 small headers', Array.from({ length: 500 }, (_, i) => `X-H${i}: ${'v'.repeat(30)}\r\n`).join('')],
  ] as const) {
    const bytes = `POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\n${extra}Content-Length: 2\r\n\r\n{}`;
    const got = await collectReplies(await tlsConnect(d.port, ca), bytes, { ms: 5000 });
    t.equal(got.responses.length, 1, `${what}: one reply`);
    t.equal(specErrorProblem(asReply(got.responses[0]!), 400, 'ValidationException'), '', `${what}: spec JSON 400`);
    t.ok(got.closed, `${what}: connection closed`);
  }
});

t.test('request smuggling: one JSON 400, the connection closed, the smuggled request never processed', async (t) => {
  const path = `${d.demo.uriPath}/keys/${d.demo.keys.encryptDecrypt}/encrypt`;
  const smuggled = (id: string) =>
    signedRequest({
      host: `localhost:${d.port}`,
      path,
      body: JSON.stringify({ ...meta({ kmsRequestId: id }), plaintext: b64('smuggled'), encryptionAlgorithm: 'AES_GCM' }),
      credential: credential(),
      region: d.demo.region,
    }).toString('latin1');
  const front = `POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n`;
  const payloads: Record<string, (inner: string) => string> = {
    'Content-Length + Transfer-Encoding: chunked (CL.TE)': (inner) => `${front}Content-Length: ${5 + inner.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`,
    'Transfer-Encoding: chunked + Content-Length (TE.CL)': (inner) => `${front}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`,
    'two Content-Lengths': (inner) => `${front}Content-Length: 0\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`,
    'Transfer-Encoding: chunked, identity': (inner) => `${front}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${inner}`,
    'Transfer-Encoding split over two headers': (inner) => `${front}Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${inner}`,
  };
  const ids: string[] = [];
  for (const [what, build] of Object.entries(payloads)) {
    const id = `hardening-smuggled-${ids.length}`;
    ids.push(id);
    const got = await collectReplies(await tlsConnect(d.port, ca), build(smuggled(id)), { ms: 5000 });
    t.equal(got.responses.length, 1, `${what}: exactly one reply`);
    t.equal(got.responses[0] && specErrorProblem(asReply(got.responses[0]), 400, 'ValidationException'), '', `${what}: spec JSON 400`);
    t.ok(got.closed, `${what}: connection closed`);
  }
  // Control: the same request sent on its own is processed and audited, so absence means something.
  const control = await collectReplies(await tlsConnect(d.port, ca), smuggled('hardening-smuggled-control'), { ms: 5000, until: (r) => r.length > 0 });
  t.equal(control.responses[0]?.status, 200, 'control: the smuggled request alone is a valid Encrypt');
  await sleep(1500); // the audit log is flushed every second
  const audit = readFileSync(d.demo.auditLog, 'utf8');
  t.ok(audit.includes('hardening-smuggled-control'), 'control: it is in the audit log');
  for (const id of ids) t.notOk(audit.includes(id), `${id}: never processed`);
});

t.test('a malformed chunked body: a JSON 400 and the connection closed, without the client closing first', async (t) => {
  const head = `POST ${d.demo.uriPath}/health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
  for (const [what, body] of [
    ['a chunk size that is not hex', 'zz\r\n{}\r\n0\r\n\r\n'],
    ['chunk data longer than its size', '2\r\n{}XX\r\n0\r\n\r\n'],
  ] as const) {
    const socket = await tlsConnect(d.port, ca);
    const got = await collectReplies(socket, head + body, { ms: 5000 });
    socket.destroy();
    t.equal(got.responses[0] && specErrorProblem(asReply(got.responses[0]), 400, 'ValidationException'), '', `${what}: spec JSON 400`);
    t.ok(got.closed, `${what}: connection closed`);
  }
});

t.test('a request asking for a protocol upgrade is answered, then its connection closed', async (t) => {
  // Node keeps such a connection's parser in upgrade mode, where a later malformed request would
  // get no reply and no close until the headers timeout: the connection must not be reused.
  for (const upgrade of ['websocket', 'h2c']) {
    const bytes = signedRequest({
      host: `localhost:${d.port}`,
      path: `${d.demo.uriPath}/health`,
      body: healthBody(`hardening-upgrade-${upgrade}`),
      credential: credential(),
      region: d.demo.region,
      headers: [['Connection', 'Upgrade'], ['Upgrade', upgrade]],
    });
    const socket = await tlsConnect(d.port, ca);
    const got = await collectReplies(socket, bytes, { ms: 5000 });
    t.equal(got.responses[0]?.status, 200, `Upgrade: ${upgrade}: answered as a plain request`);
    t.equal(got.responses[0]?.headers['connection'], 'close', 'saying Connection: close');
    t.ok(got.closed, 'and the server closes the connection');
    socket.destroy();
  }
});

t.test('pipelining: a valid request then malformed bytes in one write: its 200 first, then a JSON 400', async (t) => {
  const encrypt = signedRequest({
    host: `localhost:${d.port}`,
    path: `${d.demo.uriPath}/keys/${d.demo.keys.encryptDecrypt}/encrypt`,
    body: JSON.stringify({ ...meta({ kmsRequestId: 'hardening-pipelined' }), plaintext: b64('pipelined'), encryptionAlgorithm: 'AES_GCM' }),
    credential: credential(),
    region: d.demo.region,
  });
  const got = await collectReplies(await tlsConnect(d.port, ca), Buffer.concat([encrypt, Buffer.from('GARBAGE\r\n\r\n')]), { ms: 5000 });
  t.ok(got.closed, 'the connection is closed after the malformed bytes');
  t.same(got.responses.map((r) => classifyReply(r, false).problem).filter(Boolean), [], 'every reply is spec JSON');
  await sleep(1500);
  const audited = readFileSync(d.demo.auditLog, 'utf8').split('\n').filter((l) => l.includes('"hardening-pipelined"'));
  t.equal(audited.length, 1, 'the valid request was processed once');
  // The parse error's reply waits for the pending Encrypt's: replies stay in request order.
  t.same(got.responses.map((r) => r.status), [200, 400], 'the Encrypt’s own 200 first, then the 400 for the garbage');
});

t.test('slow loris: cut off by the headers timeout with a JSON error while other clients are served', async (t) => {
  const r = await loris;
  t.comment(`cut off after ${(r.elapsedMs / 1000).toFixed(1)} s and ${r.trickled} header lines (headersTimeout ${HEADERS_TIMEOUT_MS / 1000} s, enforced on Node's 30 s check)`);
  t.ok(r.reply, 'the server answered the loris');
  t.equal(r.reply && specErrorProblem(asReply(r.reply), 400, 'ValidationException'), '', 'with spec JSON');
  t.match(r.reply && (asReply(r.reply).json as { errorMessage?: string }).errorMessage, /timed out/i, 'saying the request timed out');
  t.ok(r.closed, 'and closed the connection');
  // A lower bound only: the server cannot have timed the headers out before this much time passed.
  t.ok(r.elapsedMs >= HEADERS_TIMEOUT_MS, 'not before the headers timeout');
  t.ok(r.servedMeanwhile.length >= 5, `other clients called meanwhile (${r.servedMeanwhile.length})`);
  t.same([...new Set(r.servedMeanwhile)], [200], 'and were all served');
});

t.test('a TLS connection that never sends a request is closed by the same timeout', async (t) => {
  const r = await silent;
  t.ok(r.closed, 'closed by the server');
  t.equal(r.reply && classifyReply(r.reply, false).problem, undefined, 'anything it says first is spec JSON');
});

t.test('keep-alive: idle past Node’s default 5 s, and past the headers timeout, the connection serves again', async (t) => {
  const r = await idle;
  t.match(r.keepAlive ?? '', /timeout=360\b/, 'the server announces a 360 s keep-alive');
  t.same(r.statuses, [200, 200, 200], 'three requests on one connection: at once, after 6 s idle, after 50 s more');
  t.equal(r.closedAfter, undefined, 'the server never closed it');
});

t.test('a real ClientHello gets a ServerHello from an allowed source (control for the allowlist test)', async (t) => {
  const got = await tcpExchange(d.port, clientHello, 3000, true);
  t.equal(got.received[0], 0x16, 'a TLS handshake record comes back');
});

// ---------------------------------------------------------------------------------------------
// --allow 10.0.0.0/8: the global source allowlist, before TLS.

t.test('global allowlist (--allow 10.0.0.0/8): 127.0.0.1 is closed before any TLS byte', async (t) => {
  await d.stop();
  d = await startDemo(['--allow', '10.0.0.0/8'], { dir: d.dir });
  const got = await tcpExchange(d.port, clientHello, 3000);
  t.equal(got.received.length, 0, 'no ServerHello, no byte at all');
  t.ok(got.closed, 'the connection is closed');
  await sleep(200);
  t.match(d.output(), /"reason":"allowlist","source":"127\.0\.0\.1"[^\n]*connection refused/, 'logged as refused by the allowlist');
  await d.stop();
});

// ---------------------------------------------------------------------------------------------
// In-process appliance: per-source cap, quota, per-store allow and policy.

const logLines: string[] = [];
let port = 0;
let agent: https.Agent;
const POLICY = {
  principals: ['arn:aws:iam::123456789012:role/Kms*'],
  operations: ['Encrypt', 'Decrypt', 'GenerateDataKey'],
  viaServices: ['ebs.us-east-1.amazonaws.com'],
};

t.test('in-process appliance with a small per-source cap, a quota, a store allowlist and a policy', async (t) => {
  // The demo's own file, edited as an operator would: the real loader validates it.
  const raw = parse(readFileSync(d.demo.configFile, 'utf8')) as { server: object; metrics: object; health: object; keyStores: object[] };
  port = await freePorts(1);
  raw.server = { ...raw.server, port, allow: ['127.0.0.0/8'], maxConnectionsPerSource: 4 };
  raw.metrics = { host: '127.0.0.1' }; // no side ports: nothing else needs to be free
  raw.health = { path: '/healthz' };
  const base = raw.keyStores[0]! as { keys: Array<{ id: string }> };
  const only = (id: string) => base.keys.filter((k) => k.id === id);
  // Each HSM key belongs to one store (the loader refuses a label named twice).
  raw.keyStores = [
    { ...base, name: 'quota', uriPathPrefix: '/quota', quota: { requestsPerSecond: 5, burst: 5 }, keys: [] },
    { ...base, name: 'allow10', uriPathPrefix: '/allow10', allow: ['10.0.0.0/8'], keys: only(d.demo.keys.encryptOnly) },
    { ...base, name: 'policy', uriPathPrefix: '/policy', policy: POLICY, keys: only(d.demo.keys.encryptDecrypt) },
  ];
  const file = join(d.dir, 'hardening.yaml');
  writeFileSync(file, stringify(raw), { mode: 0o600 });
  const logger = createLogger('info', { write: (line: string) => void logLines.push(line) });
  app = await startAppliance(await loadConfig(file), logger, { extraRoots: [ca.toString()] });
  agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
  t.equal(app.api.port, port, 'listening');
});

const storeClient = (prefix: string) => new XksClient({ ...d.demo, endpoint: `https://localhost:${port}`, uriPath: `${prefix}/kms/xks/v1` });
const logRecord = (id: string) =>
  logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r['msg'] === 'request' && r['kmsRequestId'] === id);

t.test('per-source connection cap: the 5th connection from 127.0.0.1 is closed before TLS', async (t) => {
  const held: TLSSocket[] = [];
  for (let i = 0; i < 4; i++) held.push(await tlsConnect(port, ca));
  t.equal(held.length, 4, 'four connections up to the cap');
  const fifth = await tcpExchange(port, clientHello, 3000);
  t.equal(fifth.received.length, 0, 'the fifth gets no ServerHello');
  t.ok(fifth.closed, 'and is closed');
  t.ok(logLines.some((l) => l.includes('"reason":"per-source-limit"')), 'logged as refused by the per-source limit');
  const served = await collectReplies(held[0]!, `GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n`, { ms: 3000, until: (r) => r.length > 0 });
  t.equal(served.responses[0]?.status, 200, 'the held connections keep working');
  held.pop()!.destroy();
  // The slot frees when the server sees the close: retry briefly.
  let again: TLSSocket | undefined;
  for (let i = 0; i < 20 && !again; i++) again = await tlsConnect(port, ca).catch(() => sleep(100).then(() => undefined));
  t.ok(again, 'after one closes, a new connection is admitted');
  for (const s of [...held, again]) s?.destroy();
  await sleep(200);
});

t.test('per-store quota: beyond 5 requests/s the store answers 429 ThrottlingException; never to GetHealthStatus', async (t) => {
  const quota = storeClient('/quota');
  // GetKeyMetadata of a key the store lacks: 404 when served, 429 when throttled.
  const metadata = (id: string) => quota.call('/keys/no-such-key/metadata', meta({ kmsOperation: 'DescribeKey', kmsRequestId: id }), { agent });
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => metadata(`hardening-quota-${i}`)));
  const ok = replies.filter((r) => r.status === 404).length;
  const throttled = replies.filter((r) => r.status === 429);
  t.comment(`20 at once: ${ok} served, ${throttled.length} throttled`);
  t.ok(ok >= 1 && ok < 20, 'some are served, not all');
  t.equal(ok + throttled.length, 20, 'the rest are throttled');
  t.same(throttled.map((r) => specErrorProblem(r, 429, 'ThrottlingException')).filter(Boolean), [], 'each a spec JSON 429 ThrottlingException');
  const health = await Promise.all(Array.from({ length: 10 }, () => quota.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { agent })));
  t.same(health.map((r) => r.status), Array(10).fill(200), 'GetHealthStatus is not throttled by the quota: a busy store must not look unhealthy');
  const other = await storeClient('/policy').call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { agent });
  t.equal(other.status, 200, 'another store is not throttled by this one’s quota');
  await sleep(1200); // the bucket refills at 5 tokens/s
  const later = await metadata('hardening-quota-later');
  t.equal(later.status, 404, 'served again once the bucket refills');
  quota.close();
});

const encrypt = (c: XksClient, id: string, extra: Record<string, unknown> = {}, keyId = d.demo.keys.encryptDecrypt) =>
  c.call(`/keys/${keyId}/encrypt`, { ...meta({ kmsRequestId: id, ...extra }), plaintext: b64('policy'), encryptionAlgorithm: 'AES_GCM' }, { agent });

t.test('per-store allow: 403 AccessDeniedException on Encrypt, never on GetHealthStatus; the log names the rule', async (t) => {
  const c = storeClient('/allow10');
  const denied = await encrypt(c, 'hardening-allow10-encrypt', {}, d.demo.keys.encryptOnly);
  t.equal(specErrorProblem(denied, 403, 'AccessDeniedException'), '', 'Encrypt from 127.0.0.1: 403');
  t.equal(logRecord('hardening-allow10-encrypt')?.['detail'], 'denied by keyStores[allow10].allow', 'the log line names keyStores[allow10].allow');
  const health = await c.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { agent });
  t.equal(health.status, 200, 'GetHealthStatus is never subject to it');
  c.close();
});

t.test('per-store policy: principals, operations and viaServices each deny with 403 naming the rule; never GetHealthStatus', async (t) => {
  const c = storeClient('/policy');
  const allowed = { awsPrincipalArn: 'arn:aws:iam::123456789012:role/KmsApp', kmsOperation: 'Encrypt', kmsViaService: 'ebs.us-east-1.amazonaws.com' };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['principals', { ...allowed, awsPrincipalArn: 'arn:aws:iam::123456789012:user/Mallory' }],
    ['operations', { ...allowed, kmsOperation: 'ReEncrypt' }],
    ['viaServices', { ...allowed, kmsViaService: 's3.us-east-1.amazonaws.com' }],
  ];
  for (const [rule, md] of cases) {
    const id = `hardening-policy-${rule}`;
    const r = await encrypt(c, id, md);
    t.equal(specErrorProblem(r, 403, 'AccessDeniedException'), '', `${rule}: 403`);
    t.equal(logRecord(id)?.['detail'], `denied by keyStores[policy].policy.${rule}`, `${rule}: the log line names the rule`);
  }
  const ok = await encrypt(c, 'hardening-policy-allowed', allowed);
  t.equal(ok.status, 200, 'a request every rule allows is served');
  const health = await c.call('/health', meta({ kmsOperation: 'KmsHealthCheck', awsPrincipalArn: 'arn:aws:iam::123456789012:user/Mallory' }), { agent });
  t.equal(health.status, 200, 'GetHealthStatus is never subject to the policy');
  c.close();
  agent.destroy();
});
