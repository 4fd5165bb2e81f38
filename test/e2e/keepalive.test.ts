// Keep-alive on every hop: an idle KMS connection must outlive Node's 5 s default and HAProxy's
// Debian default of 50 s (the NLB keeps idle connections 350 s), or every call after a pause pays
// a new TCP + TLS handshake out of its 250 ms. One connection straight to the Node service and one
// through haproxy, idle for 55 s, then reused.
import t from 'tap';
import https from 'node:https';
import { startDemo, stopAndRemove, type RunningDemo } from '../helpers/demo.js';
import { XksClient } from '../helpers/xks-client.js';

const IDLE_MS = 55_000;
let d: RunningDemo;

t.before(async () => {
  d = await startDemo((port) => ['--haproxy-port', String(port + 6)]);
});
t.teardown(() => stopAndRemove(d));

const health = { requestMetadata: { kmsRequestId: 'keepalive', kmsOperation: 'KmsHealthCheck' } };

t.test(`an idle connection survives ${IDLE_MS / 1000} s, directly and through haproxy`, { timeout: IDLE_MS + 60_000 }, async (t) => {
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
