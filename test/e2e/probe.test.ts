// `xks probe`: passes every check against the demo (directly, through its HAProxy, and with mTLS)
// and names exactly the broken rule of a deliberately broken XKS server, nothing else.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runProbe } from '../../appliance/probe/run.js';
import type { ProbeReport } from '../../appliance/probe/report.js';
import type { ProbeTarget } from '../../appliance/probe/target.js';
import { BROKEN_RULES, startBrokenXks, type Broken, type BrokenXks } from '../helpers/broken-xks-server.js';
import { startDemo, stopAndRemove, xksCommand, type RunningDemo } from '../helpers/demo.js';

// Latency is reported, never asserted on this shared machine: a budget no test run can miss.
const QUICK = ['--samples', '3', '--budget-ms', '60000'];
const LATENCY = { budgetMs: 60_000, samples: 2, rate: 0, durationS: 0 };

async function probeCli(args: string[]): Promise<{ code: number; report: ProbeReport; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(...xksCommand(['probe', ...args, '--json', ...QUICK]));
    return { code: 0, report: JSON.parse(stdout) as ProbeReport, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, report: e.stdout ? (JSON.parse(e.stdout) as ProbeReport) : (undefined as never), stderr: e.stderr };
  }
}

const notPassed = (r: ProbeReport, status: 'FAIL' | 'SKIP') => r.checks.filter((c) => c.status === status).map((c) => `${c.rule} ${c.name}: ${c.reason}`);

t.test('against the demo', async (t) => {
  let d: RunningDemo | undefined;
  t.teardown(() => stopAndRemove(d));
  d = await startDemo((port) => ['--haproxy-port', String(port + 6)]);
  const demoJson = join(d.dir, 'demo.json');

  t.test('--demo passes every check, exit 0', async (t) => {
    const { code, report, stderr } = await probeCli(['--demo', demoJson]);
    t.equal(code, 0, stderr);
    t.same(notPassed(report, 'FAIL'), []);
    t.ok(report.checks.length >= 50, `${report.checks.length} checks ran`);
    // Only what cannot apply here: the dev CA is no KMS root, and this demo has no mTLS.
    t.same(report.checks.filter((c) => c.status === 'SKIP').map((c) => c.rule).sort(), ['S10', 'S9', 'S9']);
    t.match(stderr, /xks probe: conformance/, 'progress on stderr');
    t.ok(report.latency.cold && report.latency.warm.decrypt, 'cold and warm latency figures');
  });

  t.test('--demo --via-haproxy passes every check through HAProxy, with a fixed-rate run', async (t) => {
    const { code, report } = await probeCli(['--demo', demoJson, '--via-haproxy', '--rate', '50', '--duration', '1']);
    t.equal(code, 0);
    t.equal(report.endpoint, d!.demo.haproxy!.endpoint);
    t.same(notPassed(report, 'FAIL'), []);
    t.equal(report.checks.find((c) => c.rule === 'P3')?.status, 'PASS');
    t.ok(report.latency.load && report.latency.load.sent >= 40 && report.latency.load.errors === 0, 'the fixed-rate run sent its requests');
  });

  t.test('flags instead of --demo: the secret from the KMS console file; a readable secret file is refused', async (t) => {
    const { code, report } = await probeCli([
      '--endpoint', d!.demo.endpoint, '--ca', d!.demo.caFile, '--secret-file', d!.demo.kmsProxyConfigFile,
      '--key', d!.demo.keys.encryptDecrypt, '--no-usage-key', d!.demo.keys.noUsage,
    ]);
    t.equal(code, 0);
    t.same(notPassed(report, 'FAIL'), []);
    t.match(report.checks.find((c) => c.rule === 'K3')?.status, 'PASS', 'the --no-usage-key was probed');
    const loose = join(d!.dir, 'loose-secret');
    writeFileSync(loose, `${d!.demo.secretAccessKey}\n`);
    chmodSync(loose, 0o644);
    const refused = await probeCli(['--endpoint', d!.demo.endpoint, '--uri-path', d!.demo.uriPath, '--access-key-id', d!.demo.accessKeyId, '--secret-file', loose, '--key', 'k']);
    t.not(refused.code, 0);
    t.match(refused.stderr, /readable by others: run chmod 600/);
    t.notMatch(refused.stderr, d!.demo.secretAccessKey);
  });

  t.test('a wrong secret: every authenticated check fails, exit 1', async (t) => {
    const wrong = join(d!.dir, 'wrong-secret');
    writeFileSync(wrong, 'x'.repeat(44), { mode: 0o600 });
    const { code, report } = await probeCli(['--demo', demoJson, '--secret-file', wrong]);
    t.equal(code, 1);
    t.ok(report.summary.fail > 10);
  });
});

t.test('against the demo with mTLS: a missing or wrong client certificate is refused', async (t) => {
  let d: RunningDemo | undefined;
  t.teardown(() => stopAndRemove(d));
  d = await startDemo(['--mtls']);
  const { code, report } = await probeCli(['--demo', join(d.dir, 'demo.json')]);
  t.equal(code, 0, notPassed(report, 'FAIL').join('\n'));
  t.same(report.checks.filter((c) => c.rule === 'S9').map((c) => c.status), ['PASS', 'PASS']);
});

t.test('against a deliberately broken XKS server', async (t) => {
  const probe = async (server: BrokenXks): Promise<ProbeReport> => {
    const target: ProbeTarget = { endpoint: new URL(server.endpoint), uriPath: server.uriPath, region: server.region, accessKeyId: server.accessKeyId, secret: server.secret, keys: server.keys, caPem: server.caPem };
    return runProbe(target, LATENCY);
  };

  t.test('unbroken, it passes every check', async (t) => {
    const server = await startBrokenXks([]);
    t.teardown(() => server.close());
    const report = await probe(server);
    t.same(notPassed(report, 'FAIL'), []);
    t.same(report.checks.filter((c) => c.status === 'SKIP').map((c) => c.rule).sort(), ['S10', 'S9', 'S9']);
  });

  t.test('a busy answer (503) is retried as KMS would, and reported, not judged', async (t) => {
    const server = await startBrokenXks([], { busyFirst: 3 });
    t.teardown(() => server.close());
    const report = await probe(server);
    t.same(notPassed(report, 'FAIL'), []);
    t.ok(report.retried.length >= 2 && report.retried.every((r) => r.status === 503), 'the retries are in the report');
  });

  for (const [flag, rule] of Object.entries(BROKEN_RULES) as Array<[Broken, string]>) {
    t.test(`${flag}: only ${rule} fails`, async (t) => {
      const server = await startBrokenXks([flag]);
      t.teardown(() => server.close());
      const report = await probe(server);
      const failed = report.checks.filter((c) => c.status === 'FAIL');
      t.ok(failed.length >= 1, `${rule} is reported`);
      t.same([...new Set(failed.map((c) => c.rule))], [rule], failed.map((c) => `${c.rule} ${c.name}: ${c.reason}`).join('\n'));
    });
  }
});
