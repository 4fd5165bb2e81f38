// Keep-alive on every hop: an idle KMS connection must outlive Node's 5 s default and HAProxy's
// Debian default of 50 s (the NLB keeps idle connections 350 s), or every call after a pause pays
// a new TCP + TLS handshake out of its 250 ms. Waiting out 350 s is no test; instead: what each
// hop is configured to allow is read from the hop itself (the Node service's Keep-Alive header,
// the demo's haproxy.cfg as haproxy loaded it), and one connection straight to the Node service
// and one through haproxy are really left idle past Node's default and then reused.
import t from 'tap';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { startDemo, stopAndRemove, type RunningDemo } from '../helpers/demo.js';
import { XksClient } from '../helpers/xks-client.js';

const NLB_IDLE_S = 350;
const IDLE_MS = 7000; // past Node's default keep-alive of 5 s
let d: RunningDemo;

t.before(async () => {
  d = await startDemo((port) => ['--haproxy-port', String(port + 6)]);
});
t.teardown(() => stopAndRemove(d));

const health = { requestMetadata: { kmsRequestId: 'keepalive', kmsOperation: 'KmsHealthCheck' } };

/** HAProxy duration (default unit ms; us, ms, s, m, h, d) in seconds. */
function seconds(text: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text);
  if (!m) throw new Error(`not a HAProxy duration: ${text}`);
  const unit = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unit;
}

t.test(`every hop keeps an idle connection longer than the NLB's ${NLB_IDLE_S} s`, async (t) => {
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  const r = await client.call('/health', health);
  const keepAlive = /timeout=(\d+)/.exec(String(r.headers['keep-alive']))?.[1];
  t.ok(Number(keepAlive) > NLB_IDLE_S, `Node service: Keep-Alive timeout=${keepAlive} s`);
  const cfg = readFileSync(d.demo.haproxy!.configFile, 'utf8');
  // Every section KMS traffic passes; the NLB monitor frontend (HTTP, one request per check) is not one.
  const sections = cfg.split(/\n(?=\S)/).filter((sec) => !/^frontend\s+\S*monitor/.test(sec));
  const timeouts = sections.flatMap((sec) => [...sec.matchAll(/^\s*timeout\s+(client|server|tunnel)\s+(\S+)/gm)].map((m) => [m[1]!, seconds(m[2]!)] as const));
  for (const kind of ['client', 'server', 'tunnel']) t.ok(timeouts.some(([k]) => k === kind), `haproxy.cfg sets timeout ${kind}`);
  for (const [kind, s] of timeouts) t.ok(s > NLB_IDLE_S, `haproxy.cfg: timeout ${kind} ${s} s`);
});

t.test(`an idle connection survives ${IDLE_MS / 1000} s and is reused, directly and through haproxy`, async (t) => {
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  const endpoints = { direct: d.demo.endpoint, haproxy: d.demo.haproxy!.endpoint };
  const agents = Object.fromEntries(Object.keys(endpoints).map((k) => [k, new https.Agent({ keepAlive: true, maxSockets: 1 })]));
  const sockets: Record<string, unknown> = {};
  for (const [name, endpoint] of Object.entries(endpoints)) {
    const r = await client.call('/health', health, { endpoint, agent: agents[name]! });
    t.equal(r.status, 200, `${name}: first request`);
    sockets[name] = Object.values(agents[name]!.freeSockets)[0]?.[0];
    t.ok(sockets[name], `${name}: the connection is kept alive`);
  }
  await new Promise((r) => setTimeout(r, IDLE_MS));
  for (const [name, endpoint] of Object.entries(endpoints)) {
    const still = Object.values(agents[name]!.freeSockets)[0]?.[0];
    t.equal(still, sockets[name], `${name}: the same connection is still open after ${IDLE_MS / 1000} s idle`);
    t.notOk((still as { destroyed?: boolean } | undefined)?.destroyed, `${name}: not closed by the server`);
    const r = await client.call('/health', health, { endpoint, agent: agents[name]! });
    t.equal(r.status, 200, `${name}: served on the old connection`);
  }
  for (const a of Object.values(agents)) a.destroy();
});
