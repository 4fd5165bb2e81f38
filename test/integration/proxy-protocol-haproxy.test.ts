/**
 * The real HAProxy 2.6 in front of the gateway's real listener: `send-proxy-v2` with its CRC32C TLV
 * on client connections, and `check-ssl` health checks, which carry a PROXY v2 LOCAL header.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { freePorts } from '../helpers/demo.js';
import { makeCert, startProxyStack } from '../helpers/proxy-stack.js';

// Clients connect from this loopback address; only it may pass through HAProxy.
const CLIENT = '127.0.0.2';

/** One command on HAProxy's runtime API socket. */
async function runtime(socketPath: string, command: string): Promise<string> {
  const c = net.connect(socketPath);
  c.end(`${command}\n`);
  let out = '';
  for await (const chunk of c) out += chunk.toString();
  return out;
}

/** The `show stat` CSV row of backend `be`, server `node`, as field -> value. */
async function serverStat(socketPath: string): Promise<Record<string, string>> {
  const [head, ...rows] = (await runtime(socketPath, 'show stat')).split('\n');
  const names = head.replace(/^# /, '').split(',');
  const row = rows.map((r) => r.split(',')).find((r) => r[0] === 'be' && r[1] === 'node') ?? [];
  return Object.fromEntries(names.map((n, i) => [n, row[i] ?? '']));
}

const get = (agent: https.Agent, port: number, ca: Buffer, p: string): Promise<{ status: number; localPort: number; body: string }> =>
  new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: p, agent, ca, servername: 'localhost', localAddress: CLIENT }, (res) => {
        const localPort = res.socket.localPort ?? 0; // read now: the agent takes the socket back at 'end'
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, localPort, body }));
      })
      .on('error', reject);
  });

t.test('HAProxy send-proxy-v2 + check-ssl in front of the listener', async (t) => {
  const cert = makeCert();
  t.teardown(() => cert.remove());
  // HAProxy itself (127.0.0.1) is not allowlisted: its health checks pass only as LOCAL, and a
  // client's request only with a header that names the client.
  const stack = await startProxyStack(cert, { timeoutMs: 5000, allow: [`${CLIENT}/32`] });
  t.teardown(() => stack.close());

  const frontPort = await freePorts(1);
  const admin = path.join(cert.dir, 'admin.sock');
  const cfg = path.join(cert.dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `global
  stats socket ${admin} mode 600 level admin
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${frontPort}
  default_backend be
backend be
  option httpchk GET /healthz
  http-check expect status 200
  server node 127.0.0.1:${stack.port} send-proxy-v2 proxy-v2-options crc32c check check-ssl verify none inter 200ms
`,
  );
  const haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  haproxy.stderr.on('data', (d) => (stderr += d));
  const exited = once(haproxy, 'exit');
  t.teardown(async () => {
    if (haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await exited;
    }
  });

  // Wait (bounded) until HAProxy's health check has passed through the PROXY listener.
  let stat: Record<string, string> = {};
  for (let i = 0; i < 100 && stat.check_status !== 'L7OK'; i++) {
    await sleep(100);
    if (haproxy.exitCode !== null) {
      t.fail('haproxy exited', { stderr });
      return;
    }
    if (fs.existsSync(admin)) stat = await serverStat(admin).catch(() => ({}));
  }
  t.equal(stat.check_status, 'L7OK', 'HTTPS health check (GET /healthz) passed');
  t.equal(stat.status, 'UP');
  const checks = stack.requests.filter((r) => r.url === '/healthz');
  t.ok(checks.length > 0, 'health checks reached the HTTP server');
  t.ok(checks.every((r) => r.info?.sourceAddress === '127.0.0.1'), 'every health check came with a LOCAL header (HAProxy speaks for itself)');

  // Proxied client requests: two on one kept-alive connection, source = the client's own socket.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const a = await get(agent, frontPort, cert.ca, '/a');
  const b = await get(agent, frontPort, cert.ca, '/b');
  t.equal(a.status, 200);
  t.equal(b.status, 200);
  t.equal(a.localPort, b.localPort, 'one client connection');
  const seen = stack.requests.filter((r) => r.url === '/a' || r.url === '/b');
  t.equal(seen.length, 2);
  // The header's source is the client's own socket; its CRC32C TLV was verified (a bad one is dropped).
  for (const r of seen) t.match(r.info, { sourceAddress: CLIENT, sourcePort: a.localPort, peerAddress: '127.0.0.1' });
  t.equal(seen[0].connection, seen[1].connection, 'one server-side connection');
  t.same(stack.rejections, [], 'no header was rejected');
});
