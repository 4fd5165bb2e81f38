// `npm run bench`: the appliance measured against a bare Node HTTPS server in the same run, on the
// same machine, with the same client (autocannon, keep-alive), plus failover under load. Reports
// ratios, not absolute promises; never part of the tests. Traffic goes to 127.0.0.1 only.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePorts, removeDir, ROOT, startDemo, type RunningDemo } from '../helpers/demo.js';
import { runLoad, signedEncrypt, summarize, type Sample } from '../helpers/load.js';
import { signXksRequest } from '../helpers/sign.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 8);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 32);

interface Figures {
  name: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function cannon(name: string, url: string, headers: Record<string, string>, body: string): Promise<Figures> {
  const r = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: DURATION_S, pipelining: 1 });
  return { name, reqPerSec: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

async function bare(d: RunningDemo): Promise<Figures> {
  const port = await freePorts(1);
  const tls = join(d.dir, 'tls');
  const child = fork(join(ROOT, 'dist', 'test', 'bench', 'bare-server.js'), [join(tls, 'server-chain.pem'), join(tls, 'server-key.pem'), String(port)], { stdio: 'ignore' });
  await new Promise((r) => child.once('message', r));
  try {
    const body = JSON.stringify({ requestMetadata: { kmsRequestId: randomUUID(), kmsOperation: 'KmsHealthCheck' } });
    return await cannon('bare Node HTTPS (small JSON POST)', `https://localhost:${port}/`, { 'content-type': 'application/json' }, body);
  } finally {
    child.kill('SIGTERM');
  }
}

async function health(d: RunningDemo): Promise<Figures> {
  const url = `${d.demo.endpoint}${d.demo.uriPath}/health`;
  const body = JSON.stringify({ requestMetadata: { kmsRequestId: randomUUID(), kmsOperation: 'KmsHealthCheck' } });
  const headers = await signXksRequest({ url, body, accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey });
  return cannon('xks GetHealthStatus (SigV4, no HSM)', url, headers, body);
}

async function encrypt(d: RunningDemo): Promise<Figures> {
  const { url, body, headers } = await signedEncrypt(d.demo);
  return cannon('xks Encrypt + CDIV (SigV4, HSM round trip)', url, headers, body);
}

function windowOf(samples: Sample[], from: number, to: number) {
  const w = summarize(samples.filter((s) => s.at >= from && s.at < to));
  return { requests: w.sent, failures: w.failed, p50: round(w.p50), p99: round(w.p99) };
}
const round = (n: number) => Math.round(n * 10) / 10;

async function waitActive(d: RunningDemo, since: number): Promise<number> {
  while (Date.now() - since < 60_000) {
    if (d.reload().hsmNodes.every((n) => n.health === 'ACTIVE')) return Date.now() - since;
    await new Promise((r) => setTimeout(r, 100));
  }
  return NaN;
}

async function failover(d: RunningDemo, signal: 'SIGKILL' | 'SIGSTOP') {
  const pid = d.reload().hsmNodes[0]!.pid;
  const at = 3000;
  let fired = false;
  let resumed = false;
  const report = await runLoad({
    demo: d.demo,
    rate: 300,
    durationMs: 10_000,
    onTick: (ms) => {
      if (!fired && ms >= at) {
        fired = true;
        process.kill(pid, signal);
      }
      if (signal === 'SIGSTOP' && !resumed && ms >= at + 3000) {
        resumed = true;
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* replaced */
        }
      }
    },
  });
  const recoveredMs = await waitActive(d, Date.now());
  return {
    scenario: signal === 'SIGKILL' ? 'SIGKILL hsm-1 at 3 s' : 'SIGSTOP hsm-1 at 3 s, SIGCONT at 6 s',
    rate: 300,
    requests: report.sent,
    failures: report.failed,
    p50: round(report.p50),
    p99: round(report.p99),
    failureWindow: windowOf(report.samples, at, at + 3000),
    bothActiveAgainAfterMs: recoveredMs,
  };
}

async function main(): Promise<void> {
  const d = await startDemo(['--nodes', '2']);
  try {
    // Warm-up: TLS sessions, JIT, HSM session pools.
    await autocannon({ url: `${d.demo.endpoint}/healthz`, connections: 4, duration: 1 });
    const baseline = await bare(d);
    const rows = [baseline, await health(d), await encrypt(d)];
    console.log(`\nThroughput, ${CONNECTIONS} keep-alive connections, ${DURATION_S} s each, 2 HSM nodes (SoftHSM2), same machine:`);
    console.table(rows.map((r) => ({ ...r, 'vs bare': `${(r.reqPerSec / baseline.reqPerSec).toFixed(2)}x` })));
    const fo = [await failover(d, 'SIGKILL'), await failover(d, 'SIGSTOP')];
    console.log('\nFailover under load (Encrypt + CDIV at 300 req/s for 10 s; failure window = the 3 s after the fault):');
    console.table(fo.map(({ failureWindow, ...rest }) => ({ ...rest, 'window requests': failureWindow.requests, 'window failures': failureWindow.failures, 'window p50': failureWindow.p50, 'window p99': failureWindow.p99 })));
    console.log(JSON.stringify({ throughput: rows, failover: fo }));
  } finally {
    await d.stop();
    removeDir(d.dir);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
