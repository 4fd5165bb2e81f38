// The demo with the real haproxy in front (`--haproxy-port`): SigV4 calls pass through it, the
// Node service sees the client's own address from PROXY v2, the NLB monitor follows the HSM
// cluster's health and the operator's drain.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { promisify } from 'node:util';
import { startDemo, xksCommand, type RunningDemo, stopAndRemove } from '../helpers/demo.js';
import { meta, XksClient } from '../helpers/xks-client.js';
import { freePorts } from '../helpers/demo.js';

const xks = (args: string[]) => promisify(execFile)(...xksCommand(args));
let d: RunningDemo;
let client: XksClient;
let hp = 0;

t.before(async () => {
  d = await startDemo((port) => ['--haproxy-port', String((hp = port + 6))]);
  client = new XksClient(d.demo);
});
t.teardown(async () => {
  client?.close();
  await stopAndRemove(d);
});


const monitorStatus = (url: string) =>
  new Promise<number>((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });

async function waitMonitor(want: (status: number) => boolean, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let last = 0;
  while (Date.now() < end) {
    last = await monitorStatus(d.demo.haproxy!.monitorUrl);
    if (want(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

t.test('demo.json names the running haproxy', async (t) => {
  const h = d.demo.haproxy!;
  t.equal(h.endpoint, `https://localhost:${hp}`);
  t.match(h.monitorUrl, /^http:\/\/127\.0\.0\.1:\d+\/healthz$/);
  t.doesNotThrow(() => process.kill(h.pid, 0), 'haproxy pid is alive');
  t.match(readFileSync(h.configFile, 'utf8'), /send-proxy-v2/, 'the rendered config sends PROXY v2 to the Node service');
});

t.test('SigV4 calls through haproxy; the Node service sees the client port from PROXY v2', async (t) => {
  const localPort = (await freePorts(1)) as number;
  const agent = new (await import('node:https')).Agent({ keepAlive: false, localPort } as never);
  const body = { ...meta(), plaintext: Buffer.from('via haproxy').toString('base64'), encryptionAlgorithm: 'AES_GCM' };
  const r = await client.call(`/keys/${d.demo.keys.encryptDecrypt}/encrypt`, body, { endpoint: d.demo.haproxy!.endpoint, agent, tls: { localPort } as never });
  t.equal(r.status, 200, r.text);
  const id = body.requestMetadata.kmsRequestId;
  let line: { sourceAddress?: string; sourcePort?: number } | undefined;
  for (let i = 0; i < 40 && !line; i++) {
    await new Promise((res) => setTimeout(res, 100));
    line = readFileSync(d.demo.auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.kmsRequestId === id);
  }
  t.ok(line, 'the request is in the audit log');
  t.equal(line?.sourceAddress, '127.0.0.1');
  t.equal(line?.sourcePort, localPort, "the client's own port, not haproxy's, reached the service");
  const direct = await client.call('/health', { requestMetadata: { kmsRequestId: 'direct', kmsOperation: 'KmsHealthCheck' } });
  t.equal(direct.status, 200, 'direct clients still work on the API port');
});

t.test('the NLB monitor: 200, 503 once every HSM node is frozen, 200 after recovery', async (t) => {
  t.equal(await monitorStatus(d.demo.haproxy!.monitorUrl), 200, 'monitor is 200');
  const pids = d.reload().hsmNodes.map((n) => n.pid);
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    // 503 from a live monitor, not a dead one (status 0) or any other error.
    t.equal(await waitMonitor((s) => s !== 200, 15_000), 503, 'monitor answers 503 within 15 s');
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* replaced by the supervisor */
      }
    }
  }
  t.equal(await waitMonitor((s) => s === 200, 30_000), 200, 'monitor back to 200 after recovery');
});

t.test('xks drain moves traffic away (monitor 503), xks undrain brings it back', async (t) => {
  await xks(['drain', '--config', d.demo.configFile]);
  t.equal(await waitMonitor((s) => s !== 200, 15_000), 503, 'monitor answers 503 while drained');
  await xks(['undrain', '--config', d.demo.configFile]);
  t.equal(await waitMonitor((s) => s === 200, 15_000), 200, 'monitor 200 again');
  const r = await client.call('/health', { requestMetadata: { kmsRequestId: 'after-drain', kmsOperation: 'KmsHealthCheck' } }, { endpoint: d.demo.haproxy!.endpoint });
  t.equal(r.status, 200, 'traffic flows through haproxy again');
});

t.test('SIGTERM stops the demo and its haproxy, exit 0', async (t) => {
  const pid = d.demo.haproxy!.pid;
  t.equal(await d.stop(), 0, 'exit code 0');
  t.throws(() => process.kill(pid, 0), 'haproxy is gone');
});
