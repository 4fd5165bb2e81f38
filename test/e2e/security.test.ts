// The security review's gateway findings, each against a real appliance: the demo's tokens,
// certificates and credentials, started in-process by startAppliance() with a configuration file
// the real loader validates. Sources are told apart by loopback address (127.0.0.1 allowed,
// 127.0.0.2 the trusted PROXY peer, 127.0.0.3 nobody, and for the log test only 127.0.0.4 allowed
// and 127.0.0.5 nobody).
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../appliance/config/load.js';
import { createLogger } from '../../appliance/logging.js';
import { startAppliance, type Appliance } from '../../appliance/service.js';
import { freePorts, stopAndRemove, startDemo, type RunningDemo } from '../helpers/demo.js';
import { collectReplies, signedRequest, tlsConnect } from '../helpers/raw-http.js';
import { v2Header } from '../helpers/proxy-header.js';
import { specErrorProblem } from '../helpers/oracle.js';
import { meta, XksClient } from '../helpers/xks-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX_CONNECTIONS = 6;
const UNAUTH_IDLE_MS = 1500;
const REFUSAL_INTERVAL_MS = 2000;

let d: RunningDemo | undefined;
let app: Appliance | undefined;
let ca: Buffer;
let port = 0;
let agentPort = 0;
let auditFile = '';
const logLines: string[] = [];
const logs = () => logLines.map((l) => JSON.parse(l) as Record<string, unknown>);

t.before(async () => {
  d = await startDemo();
  ca = readFileSync(d.demo.caFile);
  const raw = parse(readFileSync(d.demo.configFile, 'utf8')) as Record<string, any>;
  port = await freePorts(3);
  agentPort = port + 1;
  raw['server'] = {
    ...raw['server'],
    port,
    allow: ['127.0.0.1/32', '127.0.0.4/32', '10.0.0.0/8'],
    maxConnections: MAX_CONNECTIONS,
    maxConnectionsPerSource: 100,
    unauthenticatedIdleTimeoutMs: UNAUTH_IDLE_MS,
    proxyProtocol: { enabled: true, mode: 'optional', trustedProxies: ['127.0.0.2/32'], timeoutMs: 3000 },
  };
  raw['metrics'] = { host: '127.0.0.1' };
  raw['health'] = { path: '/healthz', agentPort };
  raw['logging'] = { level: 'info', refusalIntervalMs: REFUSAL_INTERVAL_MS };
  auditFile = join(d.dir, 'logs', 'security-audit.log');
  raw['audit'] = { file: auditFile };
  const store = raw['keyStores'][0];
  // A second store without regions of its own: SigV4 regions default to proxy.regions.
  raw['keyStores'] = [store, { ...store, name: 'noregions', uriPathPrefix: '/noregions', regions: undefined, keys: [] }];
  const file = join(d.dir, 'security.yaml');
  writeFileSync(file, stringify(raw), { mode: 0o600 });
  app = await startAppliance(await loadConfig(file), createLogger('info', { write: (line: string) => void logLines.push(line) }), { extraRoots: [ca.toString()] });
});
t.teardown(async () => {
  await app?.close();
  await stopAndRemove(d);
});

const credential = () => ({ accessKeyId: d!.demo.accessKeyId, secretAccessKey: d!.demo.secretAccessKey });
const healthBody = (id: string) => JSON.stringify({ requestMetadata: { kmsRequestId: id, kmsOperation: 'KmsHealthCheck' } });
const signedHealth = (id: string, o: { host?: string; region?: string; prefix?: string } = {}) =>
  signedRequest({ host: o.host ?? `localhost:${port}`, path: `${o.prefix ?? '/demo'}/kms/xks/v1/health`, body: healthBody(id), credential: credential(), region: o.region ?? 'us-east-1' });
const GET_HEALTHZ = `GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n`;
const oneReply = (s: tls.TLSSocket, bytes: Buffer | string) => collectReplies(s, bytes, { ms: 5000, until: (r) => r.length > 0 });
const closedWithin = (s: net.Socket, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (s.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

/** A TLS connection from the trusted proxy address, behind `header`. */
function viaProxy(header: Buffer): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => {
      raw.write(header);
      const s = tls.connect({ socket: raw, servername: 'localhost', ca }, () => resolve(s));
      s.once('error', reject);
    });
    raw.once('error', reject);
  });
}

t.test('unauthenticated connections get a short idle timeout; authenticated ones keep the long keep-alive', async (t) => {
  const anon = await tlsConnect(port, ca);
  t.equal((await oneReply(anon, GET_HEALTHZ)).responses[0]?.status, 200, 'an unauthenticated GET /healthz is answered');
  const signed = await tlsConnect(port, ca);
  t.equal((await oneReply(signed, signedHealth('security-idle-1'))).responses[0]?.status, 200, 'a signed request is answered');
  // Generous bounds for a loaded 2-core machine: closed well after the timeout, not before it.
  t.ok(await closedWithin(anon, UNAUTH_IDLE_MS + 5000), `the unauthenticated connection is closed after ~${UNAUTH_IDLE_MS} ms idle`);
  t.notOk(signed.destroyed, 'the authenticated connection is still open');
  t.equal((await oneReply(signed, signedHealth('security-idle-2'))).responses[0]?.status, 200, 'and still serves');
  const silent = await tlsConnect(port, ca);
  t.ok(await closedWithin(silent, UNAUTH_IDLE_MS + 5000), 'a connection that never sends a request is closed after the same short time');
  signed.destroy();
  await sleep(100);
});

t.test('unauthenticated connections cannot lock KMS out: a newcomer takes the oldest one’s slot', async (t) => {
  const held: tls.TLSSocket[] = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const s = await tlsConnect(port, ca);
    await oneReply(s, GET_HEALTHZ);
    held.push(s);
  }
  const kms = await tlsConnect(port, ca);
  const got = await oneReply(kms, signedHealth('security-slots-1'));
  t.equal(got.responses[0]?.status, 200, 'a signed request on a new connection is served with every slot held');
  t.ok(await closedWithin(held[0]!, 2000), 'the oldest unauthenticated connection gave up its slot');
  t.ok(logs().some((r) => r['reason'] === 'unauthenticated-evicted'), 'logged');
  for (const s of held) s.destroy();
  // Authenticated connections are never closed to make room: with every slot authenticated, a
  // newcomer is refused instead.
  await sleep(200);
  const authed = [kms];
  for (let i = 1; i < MAX_CONNECTIONS; i++) {
    const s = await tlsConnect(port, ca);
    t.equal((await oneReply(s, signedHealth(`security-slots-auth-${i}`))).responses[0]?.status, 200);
    authed.push(s);
  }
  const late = await tlsConnect(port, ca).then(
    (s) => closedWithin(s, 2000).then((closed) => (s.destroy(), closed)),
    () => true,
  );
  t.ok(late, 'a newcomer finds no slot when every connection is authenticated');
  t.ok(authed.every((s) => !s.destroyed), 'every authenticated connection stays open');
  t.equal((await oneReply(authed[0]!, signedHealth('security-slots-2'))).responses[0]?.status, 200, 'and serves');
  for (const s of authed) s.destroy();
  await sleep(200);
});

t.test('PROXY v2 LOCAL from the trusted proxy: the health path only', async (t) => {
  const local = await viaProxy(v2Header({ command: 'LOCAL', vpceId: 'vpce-0123456789abcdef0' }));
  t.equal((await oneReply(local, GET_HEALTHZ)).responses[0]?.status, 200, 'GET /healthz is answered (127.0.0.2 is not in server.allow)');
  const api = await oneReply(local, signedHealth('security-local'));
  t.equal(api.responses[0]?.status, 403, 'a signed API request on a LOCAL connection is refused');
  t.match(api.responses[0]?.body.toString(), /AccessDeniedException/);
  local.destroy();
  const proxied = await viaProxy(v2Header({ sourceAddress: '127.0.0.1', sourcePort: 4000, destinationAddress: '127.0.0.1', destinationPort: port }));
  t.equal((await oneReply(proxied, signedHealth('security-proxied'))).responses[0]?.status, 200, 'a PROXY header naming an allowed client is served');
  proxied.destroy();
});

t.test('a PROXY header from a peer that is not a trusted proxy is not believed', async (t) => {
  // 127.0.0.3 is neither trusted nor allowed; its header claims the allowed 127.0.0.1.
  const claimed = v2Header({ sourceAddress: '127.0.0.1', sourcePort: 4000, destinationAddress: '127.0.0.1', destinationPort: port });
  const believed = await new Promise<boolean>((resolve) => {
    const raw = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' }, () => {
      raw.write(claimed);
      const s = tls.connect({ socket: raw, servername: 'localhost', ca }, () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    raw.once('error', () => resolve(false));
    raw.once('close', () => resolve(false));
  });
  t.notOk(believed, 'no TLS session: judged by its own address, 127.0.0.3');
});

t.test('PROXY v2 UNIX family is refused (a path is not a source address)', async (t) => {
  const refused = await viaProxy(v2Header({ family: 'UNIX', sourceAddress: '127.0.0.1', destinationAddress: '/x' })).then(
    (s) => (s.destroy(), false),
    () => true,
  );
  t.ok(refused, 'no TLS session behind a UNIX-family header, even with an allowlisted "path"');
  await sleep(100);
  t.ok(logs().some((r) => r['reason'] === 'proxy-protocol' && /UNIX/.test(String(r['detail']))), 'logged as a PROXY protocol refusal');
});

t.test('Host must name proxy.hostname (any port, any case)', async (t) => {
  const s = await tlsConnect(port, ca);
  const evil = await oneReply(s, signedHealth('security-host-evil', { host: 'evil.example' }));
  t.equal(specErrorProblem({ status: evil.responses[0]!.status, headers: evil.responses[0]!.headers, text: evil.responses[0]!.body.toString(), json: JSON.parse(evil.responses[0]!.body.toString()) }, 401, 'AuthenticationFailedException'), '', 'signed for evil.example: 401');
  t.equal((await oneReply(s, signedHealth('security-host-case', { host: 'LOCALHOST:1' }))).responses[0]?.status, 200, 'LOCALHOST:1 names localhost');
  s.destroy();
});

t.test('SigV4 regions default to proxy.regions for a store that names none', async (t) => {
  const s = await tlsConnect(port, ca);
  const other = await oneReply(s, signedHealth('security-region-other', { prefix: '/noregions', region: 'eu-west-1' }));
  t.equal(other.responses[0]?.status, 401, 'signed for eu-west-1 (not in proxy.regions): 401');
  const ok = await oneReply(s, signedHealth('security-region-ok', { prefix: '/noregions' }));
  t.equal(ok.responses[0]?.status, 200, 'signed for us-east-1: served');
  s.destroy();
});

t.test('the agent-check port applies an allowlist (default: server.allow)', async (t) => {
  const ask = (localAddress: string) =>
    new Promise<string>((resolve) => {
      let text = '';
      const s = net.connect({ port: agentPort, host: '127.0.0.1', localAddress });
      s.on('data', (c: Buffer) => (text += c.toString()));
      s.on('error', () => undefined);
      s.once('close', () => resolve(text));
    });
  t.match(await ask('127.0.0.1'), /up|drain|down/, 'an allowed source gets the agent reply');
  t.equal(await ask('127.0.0.3'), '', 'a source outside the allowlist gets nothing');
});

t.test('refused connections and unauthenticated requests: one line per source and interval, then a sum', async (t) => {
  const client = new XksClient({ ...d!.demo, endpoint: `https://localhost:${port}` });
  const agent = new https.Agent({ keepAlive: true, localAddress: '127.0.0.4' });
  for (let i = 0; i < 12; i++) {
    const r = await client.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { unsigned: true, agent });
    t.equal(r.status, 401);
  }
  for (let i = 0; i < 8; i++) await tlsConnect(port, ca, { localAddress: '127.0.0.5' } as tls.ConnectionOptions).then((s) => s.destroy(), () => undefined);
  await sleep(REFUSAL_INTERVAL_MS + 1500); // every interval these fell into has been summed up
  // The sends may straddle an interval boundary (a slow machine): then a source gets one full
  // line per interval. Either way, lines plus summed-up counts account for every refusal, and
  // the lines are far fewer than the refusals.
  const from4 = logs().filter((r) => r['msg'] === 'request' && r['source'] === '127.0.0.4');
  const sums4 = logs().filter((r) => r['msg'] === 'refusals summed up' && r['source'] === '127.0.0.4' && r['status'] === 401);
  const total = (lines: unknown[], sums: Array<Record<string, unknown>>) => lines.length + sums.reduce((n, r) => n + Number(r['suppressed']), 0);
  t.equal(total(from4, sums4), 12, `12 unsigned requests accounted for: ${from4.length} full lines, ${sums4.length} sums`);
  t.ok(from4.length <= 2 && sums4.length >= 1, 'one full line per source and interval, the rest summed up');
  const refused5 = logs().filter((r) => r['msg'] === 'connection refused' && r['reason'] === 'allowlist' && r['source'] === '127.0.0.5');
  const sums5 = logs().filter((r) => r['msg'] === 'refusals summed up' && r['reason'] === 'allowlist' && r['source'] === '127.0.0.5');
  t.equal(total(refused5, sums5), 8, `8 refused connections accounted for: ${refused5.length} full lines, ${sums5.length} sums`);
  t.ok(refused5.length <= 2 && sums5.length >= 1, 'one full line per source and interval, the rest summed up');
  const audit = readFileSync(auditFile, 'utf8').split('\n').filter((l) => l.includes('"127.0.0.4"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(audit.reduce((n, r) => n + (typeof r['suppressed'] === 'number' ? r['suppressed'] : 1), 0), 12, 'the audit log accounts for all 12');
  t.ok(audit.length <= 4, `in ${audit.length} records, not 12`);
  agent.destroy();
  client.close();
});

t.test('the demo directory says it is not fit for production, in the files it writes', async (t) => {
  const material = JSON.parse(readFileSync(join(d!.dir, 'secrets', 'demo-key-material.json'), 'utf8')) as Record<string, string>;
  t.match(material['_notice'], /NOT FIT FOR PRODUCTION/, 'the raw key material file carries the notice');
  t.match(readFileSync(d!.demo.configFile, 'utf8').split('\n').slice(0, 3).join('\n'), /NOT FIT FOR PRODUCTION/, 'so does the head of its xks.yaml');
});
