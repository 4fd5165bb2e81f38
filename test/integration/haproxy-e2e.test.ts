// Real haproxy with the unprivileged rendered configuration in front of two instances of the
// gateway's real listener with PROXY v2 required: SNI routing, the caller's address passed on,
// health checks over TLS with a PROXY LOCAL header, the NLB monitor following the health path,
// the agent and the runtime API.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { freePorts } from '../helpers/demo.js';
import { haproxyTestConfig } from '../helpers/haproxy-config.js';
import { v2Header } from '../helpers/proxy-header.js';
import { makeCert, startProxyStack, type TestCert } from '../helpers/proxy-stack.js';
import { optionsFromConfig } from '../../appliance/haproxy-options.js';
import { renderHaproxy } from '../../haproxy/render.js';

const WAIT_MS = 15_000;
// Callers the NLB names in its PROXY headers: the only sources an instance admits, so a PROXY
// header naming HAProxy itself (127.0.0.1) would be refused, and only LOCAL checks pass as HAProxy.
const CALLERS = ['192.0.2.0/24', '198.51.100.0/24'];

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/**
 * A Node instance: the gateway's real listener (PROXY v2 required from 127.0.0.1) answering the
 * health path with `health` and anything else with its name; an agent port answering `agent`.
 */
async function startInstance(name: string, cert: TestCert) {
  const state = { health: 200, agent: 'up' };
  const stack = await startProxyStack(cert, {
    timeoutMs: 5000,
    allow: CALLERS,
    handler: (req, res) => {
      // The health path answers as gateway/health.ts does: the rendered check matches its body.
      res.statusCode = req.url === '/healthz' ? state.health : 200;
      res.end(req.url === '/healthz' ? JSON.stringify({ status: state.health === 200 ? 'ok' : 'unavailable' }) : name);
    },
  });
  const sockets = new Set<net.Socket>();
  const agent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.end(`${state.agent}\n`);
  });
  const agentPort = await listen(agent);
  const close = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([stack.close(), new Promise((r) => agent.close(r))]);
  };
  /** Requests that came through a PROXY header naming a caller (not HAProxy's own checks). */
  const proxied = () => stack.requests.filter((r) => r.info?.sourceAddress !== '127.0.0.1');
  return { state, stack, port: stack.port, agentPort, proxied, close };
}

/** GET on the monitor as the NLB's health check does it: PROXY v2 LOCAL header, then HTTP. */
function monitorStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        path,
        createConnection: () => {
          const socket = net.connect(port, '127.0.0.1');
          socket.write(v2Header({ command: 'LOCAL' }));
          return socket;
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Through HAProxy as the NLB would: PROXY v2 from `source`, then TLS with `sni`; the reply body. */
function callThrough(port: number, sni: string, source: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(port, '127.0.0.1', () => {
      raw.write(v2Header({ sourceAddress: source, sourcePort: 40000, destinationAddress: '127.0.0.1', destinationPort: 443 }));
      const req = https.request({ createConnection: () => tls.connect({ socket: raw, servername: sni, rejectUnauthorized: false }), path: '/hello', headers: { host: sni } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    raw.on('error', reject);
  });
}

/** One runtime API command over the admin socket. */
function runtimeApi(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath, () => c.end(`${command}\n`));
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('end', () => resolve(out));
    c.on('error', reject);
  });
}

t.test('haproxy in front of two PROXY v2 HTTPS instances', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = makeCert();
  t.teardown(() => cert.remove());

  const a = await startInstance('instance-a', cert);
  const b = await startInstance('instance-b', cert);
  t.teardown(() => a.close());
  t.teardown(() => b.close());

  const config = haproxyTestConfig({ host: '127.0.0.1', port: a.port });
  const bindPort = await freePorts(2);
  const monitorPort = bindPort + 1;
  const options = optionsFromConfig(config, {
    unprivileged: true,
    runDir: dir,
    acceptProxy: true,
    bind: { address: '127.0.0.1', port: bindPort },
    monitor: { address: '127.0.0.1', port: monitorPort },
    sni: [{ hostname: 'store2.example.com' }],
    check: { interMs: 200, fastInterMs: 100, downInterMs: 200, fall: 2, rise: 2, timeoutMs: 1000, agentInterMs: 200 },
  });
  // Each SNI route on its own instance, to see the routing; the first one has an agent.
  options.backends[0]!.servers = [{ name: 'node-a', address: '127.0.0.1', port: a.port, agentPort: a.agentPort }];
  options.backends[1]!.servers = [{ name: 'node-b', address: '127.0.0.1', port: b.port }];
  const rendered = renderHaproxy(options);
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, rendered.text);

  let stderr = '';
  const haproxy: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  haproxy.stderr!.on('data', (d) => (stderr += d));
  const exited = once(haproxy, 'exit');
  t.teardown(async () => {
    if (haproxy.exitCode === null && haproxy.signalCode === null) haproxy.kill('SIGTERM');
    await exited;
  });
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`haproxy stderr:\n${stderr.split('\n').slice(-30).join('\n')}`);
  });

  const monitorIs = (status: number) => waitFor(`monitor ${status}`, async () => (await monitorStatus(monitorPort, '/healthz')) === status);
  await monitorIs(200);
  t.pass('the monitor answers 200 while both backends have a server up');
  t.equal(await monitorStatus(monitorPort, '/other'), 404, 'nothing else is served on the monitor port');

  t.test('health checks run over TLS after a PROXY v2 LOCAL header', async (t) => {
    // HAProxy starts servers as up; the first checks follow within an interval. HAProxy's own
    // address is not allowlisted, so a check gets through only as LOCAL.
    for (const [name, instance] of [['a', a], ['b', b]] as const) {
      await waitFor(`a check on instance ${name}`, async () => instance.stack.requests.some((r) => r.url === '/healthz' && r.info?.sourceAddress === '127.0.0.1'));
      t.pass(`instance ${name} answered a LOCAL health check`);
    }
  });

  t.test('TLS passes through, routed by SNI, with the caller\'s address from the NLB header', async (t) => {
    t.equal(await callThrough(bindPort, 'xks.example.com', '192.0.2.7'), 'instance-a');
    t.ok(a.proxied().some((r) => r.info?.sourceAddress === '192.0.2.7'), 'instance a saw the caller 192.0.2.7');
    t.equal(await callThrough(bindPort, 'store2.example.com', '198.51.100.9'), 'instance-b');
    t.ok(b.proxied().some((r) => r.info?.sourceAddress === '198.51.100.9'), 'instance b saw the caller 198.51.100.9');
    t.equal(await callThrough(bindPort, 'unknown.example.com', '192.0.2.8'), 'instance-a', 'an unknown SNI takes the default backend');
  });

  t.test('anything but a TLS ClientHello is dropped', async (t) => {
    const before = a.proxied().length + b.proxied().length;
    const raw = net.connect(bindPort, '127.0.0.1');
    raw.on('error', () => {});
    await once(raw, 'connect');
    raw.write(v2Header({ sourceAddress: '192.0.2.9' }));
    raw.write('GET / HTTP/1.1\r\nHost: xks.example.com\r\n\r\n');
    await once(raw, 'close');
    const after = a.proxied().length + b.proxied().length;
    t.equal(after, before, 'no connection reached an instance');
  });

  t.test('the monitor follows the health path: 503 when a backend has no server up, then 200 again', async (t) => {
    b.state.health = 503;
    await monitorIs(503);
    t.pass('503 once instance b answers 503 on /healthz');
    b.state.health = 200;
    await monitorIs(200);
    t.pass('200 again once it recovers');
  });

  t.test('the agent can take a server out', async (t) => {
    a.state.agent = 'down';
    await monitorIs(503);
    t.pass('503 while the agent says down');
    a.state.agent = 'up';
    await monitorIs(200);
    t.pass('200 once it says up');
  });

  t.test('runtime API on the admin socket: maintenance and back', async (t) => {
    const socketPath = options.statsSocket;
    t.match(await runtimeApi(socketPath, 'show servers state be_store2_example_com'), /node-b/);
    await runtimeApi(socketPath, 'set server be_store2_example_com/node-b state maint');
    await monitorIs(503);
    t.pass('503 while node-b is in maintenance');
    await runtimeApi(socketPath, 'set server be_store2_example_com/node-b state ready');
    await monitorIs(200);
    t.pass('200 once it is ready again');
  });

  t.test('SIGTERM stops haproxy', async (t) => {
    haproxy.kill('SIGTERM');
    const [code, signal] = await exited;
    t.ok(code !== null || signal === 'SIGTERM', `exited (code ${code}, signal ${signal})`);
  });
});
