// `npm run bench`: the appliance measured against a bare Node HTTPS server in the same run, on the
// same machine, with the same client. Two views: CPU time per request of each server's whole
// process tree at a fixed rate (the steady figure on a shared machine), and requests/s at full
// speed (autocannon, keep-alive); plus failover under load. Reports ratios, not absolute promises;
// never part of the tests. Traffic goes to 127.0.0.1 only.
//
// `npm run bench -- --fixed-only` runs only the fixed-rate phase; BENCH_ONLY=bare,relay,health,encrypt
// picks scenarios (relay: the bare server plus one round trip to a child process over a pipe, the
// floor of keeping the HSM in its own process); BENCH_CPU_PROF=DIR writes V8 CPU profiles of the appliance and of its HSM node
// processes there (read them with `node dist/test/bench/profile-top.js DIR/*.cpuprofile`).
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePorts, removeDir, ROOT, startDemo, type RunningDemo } from '../helpers/demo.js';
import { percentile, runLoad, signedEncrypt, summarize, type Sample } from '../helpers/load.js';
import { signXksRequest } from '../helpers/sign.js';
import { cpuDelta, treeCpu, treeRssMb } from './proc.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 8);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 32);
/** KMS's default request quota per external key store. */
const RATE = Number(process.env['BENCH_RATE'] ?? 1800);
const FIXED_S = Number(process.env['BENCH_FIXED_SECONDS'] ?? 10);
const WARM_S = 2;
const FIXED_ONLY = process.argv.includes('--fixed-only') || process.env['BENCH_FIXED_ONLY'] === '1';
const ONLY = process.env['BENCH_ONLY']?.split(',');
const PROFILE_DIR = process.env['BENCH_CPU_PROF'];

type Scenario = 'bare' | 'relay' | 'health' | 'encrypt';
const wanted = (s: Scenario) => !ONLY || ONLY.includes(s);
interface Request {
  url: string;
  headers: Record<string, string>;
  body: string;
}

interface Figures {
  name: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function cannon(name: string, { url, headers, body }: Request): Promise<Figures> {
  const r = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: DURATION_S, pipelining: 1 });
  return { name, reqPerSec: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

interface Server {
  name: string;
  /** The process whose tree is measured. */
  pid: number;
  request: Request;
}

const NAMES: Record<Scenario, string> = {
  bare: 'bare Node HTTPS (small JSON POST)',
  relay: 'bare + round trip to a child process',
  health: 'xks GetHealthStatus (SigV4, no HSM)',
  encrypt: 'xks Encrypt + CDIV (SigV4, HSM round trip)',
};

async function startBare(d: RunningDemo, scenario: 'bare' | 'relay'): Promise<{ server: Server; child: ChildProcess }> {
  const port = await freePorts(1);
  const tls = join(d.dir, 'tls');
  const args = [join(tls, 'server-chain.pem'), join(tls, 'server-key.pem'), String(port), ...(scenario === 'relay' ? ['relay'] : [])];
  const child = fork(join(ROOT, 'dist', 'test', 'bench', 'bare-server.js'), args, { stdio: 'ignore' });
  await new Promise((r) => child.once('message', r));
  // The relay carries about what a call to a node carries: an Encrypt-sized body.
  const metadata = { kmsRequestId: randomUUID(), kmsOperation: scenario === 'relay' ? 'Encrypt' : 'KmsHealthCheck' };
  const body = JSON.stringify(scenario === 'relay' ? { requestMetadata: metadata, plaintext: randomBytes(256).toString('base64') } : { requestMetadata: metadata });
  return { server: { name: NAMES[scenario], pid: child.pid!, request: { url: `https://localhost:${port}/`, headers: { 'content-type': 'application/json' }, body } }, child };
}

async function healthRequest(d: RunningDemo): Promise<Request> {
  const url = `${d.demo.endpoint}${d.demo.uriPath}/health`;
  const body = JSON.stringify({ requestMetadata: { kmsRequestId: randomUUID(), kmsOperation: 'KmsHealthCheck' } });
  const headers = await signXksRequest({ url, body, accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey });
  return { url, headers, body };
}

interface FixedFigures {
  name: string;
  'req/s': number;
  'main µs/req': number;
  'HSM nodes µs/req': number;
  'tree µs/req': number;
  p50: number;
  p99: number;
  max: number;
  /** Over the whole run, warm-up included. */
  failed: number;
  why: string;
}

/** The failures by kind, e.g. "ThrottlingException x3, client timeout x1". */
function whyFailed(samples: Sample[]): string {
  const counts = new Map<string, number>();
  for (const s of samples) if (s.status !== 200) counts.set(s.errorName ?? String(s.status), (counts.get(s.errorName ?? String(s.status)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} x${n}`).join(', ');
}

/**
 * RATE requests/s on one client's keep-alive connections: WARM_S of warm-up (JIT, TLS sessions),
 * then FIXED_S measured; CPU time of the server's process tree over the measured part, per request.
 */
async function fixedRate(d: RunningDemo, server: Server): Promise<FixedFigures> {
  let before: Map<number, number> | undefined;
  let from = 0;
  const report = await runLoad({
    demo: d.demo,
    rate: RATE,
    durationMs: (WARM_S + FIXED_S) * 1000,
    request: server.request,
    onTick: (ms) => {
      if (!before && ms >= WARM_S * 1000) {
        before = treeCpu(server.pid);
        from = ms;
      }
    },
  });
  const cpu = cpuDelta(server.pid, before!, treeCpu(server.pid));
  const measured = report.samples.filter((s) => s.at >= from);
  const n = Math.max(1, measured.length);
  const ms = measured.map((s) => s.ms).sort((a, b) => a - b);
  const lastAt = Math.max(...measured.map((s) => s.at));
  const per = (us: number) => Math.round(us / n);
  return {
    name: server.name,
    'req/s': Math.round((n * 1000) / Math.max(1, lastAt - from)),
    'main µs/req': per(cpu.main),
    'HSM nodes µs/req': per(cpu.others),
    'tree µs/req': per(cpu.main + cpu.others),
    p50: round(percentile(ms, 50)),
    p99: round(percentile(ms, 99)),
    max: round(ms[ms.length - 1] ?? NaN),
    // Warm-up included: no request may fail at this rate.
    failed: report.failed,
    why: whyFailed(report.samples),
  };
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
  const d = await startDemo(['--nodes', '2'], PROFILE_DIR ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] } : {});
  const bare = await startBare(d, 'bare');
  const relay = wanted('relay') ? await startBare(d, 'relay') : undefined;
  try {
    // Warm-up: TLS sessions, JIT, HSM session pools.
    await autocannon({ url: `${d.demo.endpoint}/healthz`, connections: 4, duration: 1 });
    const servers: Record<Scenario, Server> = {
      bare: bare.server,
      relay: relay?.server ?? bare.server,
      health: { name: NAMES.health, pid: d.demo.pid, request: await healthRequest(d) },
      encrypt: { name: NAMES.encrypt, pid: d.demo.pid, request: await signedEncrypt(d.demo) },
    };
    const scenarios = (['bare', 'relay', 'health', 'encrypt'] as const).filter(wanted);
    const fixed: FixedFigures[] = [];
    for (const s of scenarios) fixed.push(await fixedRate(d, servers[s]));
    const bareFixed = fixed.find((f) => f.name === NAMES.bare);
    console.log(`\nCPU time per request at a fixed ${RATE} req/s (${FIXED_S} s after ${WARM_S} s warm-up, one keep-alive client), whole process tree from /proc:`);
    console.table(fixed.map((f) => ({ ...f, ...(bareFixed ? { 'tree vs bare': `${(f['tree µs/req'] / bareFixed['tree µs/req']).toFixed(2)}x`, 'main vs bare': `${(f['main µs/req'] / bareFixed['tree µs/req']).toFixed(2)}x` } : {}) })));
    if (FIXED_ONLY) {
      console.log(JSON.stringify({ fixedRate: fixed }));
      return;
    }
    const rows: Figures[] = [];
    let rss = { main: 0, tree: 0, treePss: 0 };
    for (const s of scenarios) {
      rows.push(await cannon(NAMES[s], servers[s].request));
      if (s === 'health' || s === 'encrypt') {
        const now = treeRssMb(d.demo.pid);
        rss = { main: Math.max(rss.main, now.main), tree: Math.max(rss.tree, now.tree), treePss: Math.max(rss.treePss, now.treePss) };
      }
    }
    const baseline = rows.find((r) => r.name === NAMES.bare);
    console.log(`\nThroughput, ${CONNECTIONS} keep-alive connections, ${DURATION_S} s each, 2 HSM nodes (SoftHSM2), same machine:`);
    console.table(rows.map((r) => ({ ...r, ...(baseline ? { 'vs bare': `${(r.reqPerSec / baseline.reqPerSec).toFixed(2)}x` } : {}) })));
    console.log(`Memory after full-speed load: appliance main RSS ${rss.main} MB; whole tree (with the HSM node processes) RSS ${rss.tree} MB summed, PSS ${rss.treePss} MB (shared pages counted once)`);
    const fo = [await failover(d, 'SIGKILL'), await failover(d, 'SIGSTOP')];
    console.log('\nFailover under load (Encrypt + CDIV at 300 req/s for 10 s; failure window = the 3 s after the fault):');
    console.table(fo.map(({ failureWindow, ...rest }) => ({ ...rest, 'window requests': failureWindow.requests, 'window failures': failureWindow.failures, 'window p50': failureWindow.p50, 'window p99': failureWindow.p99 })));
    console.log(JSON.stringify({ fixedRate: fixed, throughput: rows, rssMb: rss, failover: fo }));
  } finally {
    bare.child.kill('SIGTERM');
    relay?.child.kill('SIGTERM');
    await d.stop();
    removeDir(d.dir);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
