// `xks demo --instances 2 --haproxy-port HP`: two proxy processes, each on its own configuration,
// ports, control socket and HSM node processes over the same SoftHSM2 tokens; HAProxy balances
// over both; GetHealthStatus reports the fleet; an instance that dies is restarted like systemd
// does it and demo.json follows; SIGTERM stops everything.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { startDemo, stopAndRemove, xksCommand, type DemoInstance, type RunningDemo } from '../helpers/demo.js';
import { alive, gone, parentOf } from '../helpers/processes.js';
import { b64, meta, request, XksClient } from '../helpers/xks-client.js';

const xks = (args: string[]) => promisify(execFile)(...xksCommand(args));
let d: RunningDemo;
let client: XksClient;

t.before(async () => {
  d = await startDemo((port) => ['--haproxy-port', String(port + 6)], { instances: 2 });
  client = new XksClient(d.demo);
});
t.teardown(async () => {
  client?.close();
  await stopAndRemove(d);
});

const auditIds = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { kmsRequestId?: string }).kmsRequestId ?? '');

async function waitFor<T>(what: string, get: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

t.test('demo.json: two instances, each its own process under the demo, instance 1 on top', async (t) => {
  const j = d.demo;
  t.equal(j.pid, d.proc.pid, 'pid is the demo process');
  t.equal(j.instances.length, 2);
  const [one, two] = j.instances as [DemoInstance, DemoInstance];
  t.same([one.id, two.id], ['xks-1', 'xks-2']);
  for (const i of j.instances) {
    t.ok(alive(i.pid), `${i.id}: pid ${i.pid} is live`);
    t.not(i.pid, j.pid, `${i.id}: not the demo process`);
    t.equal(parentOf(i.pid), j.pid, `${i.id}: supervised by the demo`);
  }
  t.equal(one.endpoint, j.endpoint, 'instance 1 is the one the top-level fields describe');
  t.equal(one.configFile, j.configFile);
  t.not(one.configFile, two.configFile, 'each instance has its own configuration file');
  t.not(one.endpoint, two.endpoint, 'and its own API port');
  t.same(j.hsmNodes.map((n) => n.pid), one.hsmNodes.map((n) => n.pid), 'hsmNodes describe instance 1');
  t.equal(parentOf(j.hsmNodes[0]!.pid), one.pid, 'instance 1 holds those node processes');
  const twoNodes = two.hsmNodes.map((n) => n.pid);
  t.equal(twoNodes.length, 2);
  t.notOk(twoNodes.some((p) => j.hsmNodes.some((n) => n.pid === p)), 'instance 2 has node processes of its own');
});

t.test('each instance has its own control socket: xks status answers for its own port', async (t) => {
  for (const i of d.demo.instances) {
    const { stdout } = await xks(['status', '--config', i.configFile, '--json']);
    const s = JSON.parse(stdout) as { api: { port: number } };
    t.equal(`https://localhost:${s.api.port}`, i.endpoint, `${i.id}: its own appliance answered`);
  }
});

t.test('same keys and credentials everywhere: encrypt on one instance, decrypt on the other', async (t) => {
  const [one, two] = d.demo.instances as [DemoInstance, DemoInstance];
  const key = `/keys/${d.demo.keys.encryptDecrypt}`;
  const aad = b64('fleet');
  const enc = await client.call(`${key}/encrypt`, { ...meta(), plaintext: b64('one fleet'), encryptionAlgorithm: 'AES_GCM', additionalAuthenticatedData: aad }, { endpoint: one.endpoint });
  t.equal(enc.status, 200, enc.text);
  const dec = await client.call(
    `${key}/decrypt`,
    { ...meta({ kmsOperation: 'Decrypt' }), encryptionAlgorithm: 'AES_GCM', additionalAuthenticatedData: aad, ...enc.json },
    { endpoint: two.endpoint, credential: d.demo.secondCredential },
  );
  t.equal(dec.status, 200, dec.text);
  t.equal(Buffer.from(dec.json.plaintext, 'base64').toString(), 'one fleet');
});

t.test('HAProxy lists both instances, spreads new connections over them, reports fleet size 2', async (t) => {
  const cfg = readFileSync(d.demo.haproxy!.configFile, 'utf8');
  for (const i of d.demo.instances) t.match(cfg, new RegExp(`server ${i.id} 127\\.0\\.0\\.1:${new URL(i.endpoint).port} .*agent-port ${i.agentCheckPort}`), `${i.id} is a server`);
  const ids: string[] = [];
  const answered = () => d.demo.instances.filter((i) => auditIds(i.auditLog).some((id) => ids.includes(id))).length;
  // Bounded: a busy machine may fail a health check now and then, leaving one server out a while.
  for (let n = 0; n < 40 && (n < 8 || answered() < 2); n++) {
    const body = meta({ kmsOperation: 'KmsHealthCheck' });
    ids.push(body.requestMetadata.kmsRequestId);
    // A new connection each time: HAProxy balances connections, not requests.
    const r = await client.call('/health', body, { endpoint: d.demo.haproxy!.endpoint, agent: false as never });
    t.equal(r.status, 200, 'GetHealthStatus through haproxy');
    t.equal(r.json.xksProxyFleetSize, 2, 'xksProxyFleetSize is the number of instances configured to serve');
    if (n >= 8) await sleep(250);
  }
  await sleep(500);
  for (const i of d.demo.instances) t.ok(auditIds(i.auditLog).some((id) => ids.includes(id)), `${i.id} answered some of them`);
});

const agentSays = (port: number) =>
  new Promise<string>((resolve) => {
    let text = '';
    const s = net.connect(port, '127.0.0.1');
    s.setEncoding('utf8');
    s.on('data', (c: string) => (text += c));
    s.on('close', () => resolve(text.trim()));
    s.on('error', () => resolve(''));
  });

t.test('SIGTERM drains: load balancers told, answers go on with Connection: close, idle connections closed only after the notice period', async (t) => {
  const two = d.reload().instances[1]!;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const health = () => client.call('/health', meta({ kmsOperation: 'KmsHealthCheck' }), { endpoint: two.endpoint, agent });
  const first = await health();
  t.equal(first.status, 200);
  t.not(first.headers['connection'], 'close', 'kept alive before the stop');
  // An idle TLS connection that has sent nothing: it must not be cut at once.
  const idle = tls.connect({ host: '127.0.0.1', port: Number(new URL(two.endpoint).port), servername: 'localhost', ca: client.ca });
  await new Promise((resolve) => idle.once('secureConnect', resolve));
  let idleClosedAt = 0;
  idle.on('close', () => (idleClosedAt = Date.now()));
  idle.on('error', () => undefined);
  const termAt = Date.now();
  process.kill(two.pid, 'SIGTERM');
  await sleep(300);
  t.equal(await agentSays(two.agentCheckPort), 'drain', 'agent-check says drain');
  const h = await fetch(two.healthHttpUrl);
  t.same([h.status, await h.json()], [503, { status: 'draining' }], 'health 503 draining');
  const during = await health();
  t.equal(during.status, 200, 'still answering');
  t.equal(during.headers['connection'], 'close', 'and ending the connection with that answer');
  await waitFor('the drained process to exit', () => (alive(two.pid) ? undefined : true), 20_000);
  t.ok(idleClosedAt > 0, 'the idle connection was closed');
  t.ok(idleClosedAt - termAt >= 1500, `not before the notice period (${idleClosedAt - termAt} ms after SIGTERM)`);
  agent.destroy();
  const back = await waitFor('xks-2 restarted', () => {
    const i = d.reload().instances[1];
    return i && i.pid !== two.pid && i.hsmNodes.length === 2 ? i : undefined;
  });
  t.ok(alive(back.pid), 'the demo started it again');
});

t.test('an instance that dies is restarted; demo.json names the new process and its nodes', async (t) => {
  const before = d.reload().instances[1]!;
  process.kill(before.pid, 'SIGKILL');
  const after = await waitFor('a restarted xks-2 with its nodes', () => {
    const i = d.reload().instances[1];
    return i && i.pid !== before.pid && i.pid && i.hsmNodes.length === 2 && i.hsmNodes.every((n) => n.health === 'ACTIVE') ? i : undefined;
  });
  t.ok(alive(after.pid));
  t.ok(await gone(before.hsmNodes.map((n) => n.pid)), 'the killed instance took its node processes with it');
  const r = await request(after.healthzUrl, { method: 'GET', headers: {}, ca: client.ca });
  t.equal(r.status, 200, 'the new process serves');
  t.equal(d.reload().instances[0]!.pid, d.demo.instances[0]!.pid, 'instance 1 was left alone');
});

t.test('SIGTERM to the demo stops every instance, its nodes and haproxy; exit 0', async (t) => {
  const j = d.reload();
  const pids = [j.haproxy!.pid, ...j.instances.flatMap((i) => [i.pid, ...i.hsmNodes.map((n) => n.pid)])];
  t.equal(await d.stop(), 0, 'exit code 0');
  t.ok(await gone(pids), 'nothing left running');
});
