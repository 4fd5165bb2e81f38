// Real haproxy with the unprivileged rendered configuration in front of two tiny HTTPS servers
// that read PROXY v2 (as the Node service does): SNI routing, the caller's address passed on,
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
import { selfSignedCert } from '../../appliance/certs/issue.js';
import { freePorts } from '../helpers/demo.js';
import { haproxyTestConfig } from '../helpers/haproxy-config.js';
import { optionsFromConfig } from '../../appliance/haproxy-options.js';
import { renderHaproxy } from '../../haproxy/render.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const WAIT_MS = 15_000;

interface ProxyHeader {
  command: 'LOCAL' | 'PROXY';
  source?: string;
}

/** Read one PROXY v2 header off the socket; resolves with it and the bytes that followed. */
function readProxyV2(socket: net.Socket): Promise<{ header: ProxyHeader; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 16) return;
      if (!buf.subarray(0, 12).equals(SIGNATURE)) return fail(new Error('no PROXY v2 signature'));
      const total = 16 + buf.readUInt16BE(14);
      if (buf.length < total) return;
      socket.off('data', onData);
      const command = (buf[12]! & 0x0f) === 1 ? 'PROXY' : 'LOCAL';
      const source = command === 'PROXY' && buf[13] === 0x11 ? [...buf.subarray(16, 20)].join('.') : undefined;
      resolve({ header: { command, ...(source ? { source } : {}) }, rest: buf.subarray(total) });
    };
    const fail = (err: Error) => {
      socket.off('data', onData);
      reject(err);
    };
    socket.on('data', onData);
    socket.once('error', fail);
  });
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/**
 * A stand-in Node instance: PROXY v2 reader on `port`, relaying to an HTTPS server that answers
 * the health path with `health` and anything else with its name; an agent port answering `agent`.
 */
async function startInstance(name: string, cert: { key: string; cert: string }) {
  const state = { health: 200, agent: 'up', headers: [] as ProxyHeader[] };
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const api = https.createServer({ ...cert, keepAlive: true }, (req, res) => {
    res.statusCode = req.url === '/healthz' ? state.health : 200;
    res.end(req.url === '/healthz' ? String(state.health) : name);
  });
  const apiPort = await listen(api);
  const front = net.createServer((socket) => {
    track(socket);
    readProxyV2(socket).then(
      ({ header, rest }) => {
        state.headers.push(header);
        const inner = net.connect(apiPort, '127.0.0.1', () => {
          inner.write(rest);
          socket.pipe(inner).pipe(socket);
        });
        track(inner);
      },
      () => socket.destroy(),
    );
  });
  const agent = net.createServer((socket) => {
    track(socket);
    socket.end(`${state.agent}\n`);
  });
  const port = await listen(front);
  const agentPort = await listen(agent);
  const close = async () => {
    for (const s of sockets) s.destroy();
    api.closeAllConnections();
    await Promise.all([api, front, agent].map((s) => new Promise((r) => s.close(r))));
  };
  return { state, port, agentPort, close };
}

/** GET on the monitor as the NLB's health check does it: PROXY v2 LOCAL header, then HTTP. */
function monitorStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        path,
        createConnection: () => {
          const socket = net.connect(port, '127.0.0.1');
          socket.write(Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]));
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
      const addresses = Buffer.alloc(12);
      source.split('.').forEach((octet, i) => addresses.writeUInt8(Number(octet), i));
      [127, 0, 0, 1].forEach((octet, i) => addresses.writeUInt8(octet, 4 + i));
      addresses.writeUInt16BE(40000, 8);
      addresses.writeUInt16BE(443, 10);
      const head = Buffer.from([...SIGNATURE, 0x21, 0x11, 0x00, addresses.length]);
      raw.write(Buffer.concat([head, addresses]));
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
  const made = selfSignedCert({ cn: 'xks.example.com', dnsNames: ['xks.example.com'], days: 1 });
  const cert = { key: made.keyPem, cert: made.certPem };

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
    // HAProxy starts servers as up; the first checks follow within an interval.
    for (const [name, instance] of [['a', a], ['b', b]] as const) {
      await waitFor(`a check on instance ${name}`, async () => instance.state.headers.some((h) => h.command === 'LOCAL'));
      t.pass(`instance ${name} saw a LOCAL header`);
    }
  });

  t.test('TLS passes through, routed by SNI, with the caller\'s address from the NLB header', async (t) => {
    t.equal(await callThrough(bindPort, 'xks.example.com', '192.0.2.7'), 'instance-a');
    t.ok(a.state.headers.some((h) => h.command === 'PROXY' && h.source === '192.0.2.7'), 'instance a saw the caller 192.0.2.7');
    t.equal(await callThrough(bindPort, 'store2.example.com', '198.51.100.9'), 'instance-b');
    t.ok(b.state.headers.some((h) => h.command === 'PROXY' && h.source === '198.51.100.9'), 'instance b saw the caller 198.51.100.9');
    t.equal(await callThrough(bindPort, 'unknown.example.com', '192.0.2.8'), 'instance-a', 'an unknown SNI takes the default backend');
  });

  t.test('anything but a TLS ClientHello is dropped', async (t) => {
    const before = a.state.headers.filter((h) => h.command === 'PROXY').length + b.state.headers.filter((h) => h.command === 'PROXY').length;
    const raw = net.connect(bindPort, '127.0.0.1');
    raw.on('error', () => {});
    await once(raw, 'connect');
    raw.write(Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 12]), Buffer.alloc(12, 1)]));
    raw.write('GET / HTTP/1.1\r\nHost: xks.example.com\r\n\r\n');
    await once(raw, 'close');
    const after = a.state.headers.filter((h) => h.command === 'PROXY').length + b.state.headers.filter((h) => h.command === 'PROXY').length;
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
