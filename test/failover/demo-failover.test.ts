// HSM node failures under load through the real demo: real node processes killed and frozen with
// real signals, and the fault injection of `xks fault`. Every request must succeed while one node
// is left; with every node frozen every request must get a JSON 503, never hang. Outcomes only:
// timings are the benchmark's business (npm run bench).
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startDemo, xksCommand, type RunningDemo, stopAndRemove } from '../helpers/demo.js';
import { runLoad } from '../helpers/load.js';

const xks = (args: string[]) => promisify(execFile)(...xksCommand(args));
let d: RunningDemo;

t.before(async () => {
  d = await startDemo(['--nodes', '2']);
});
t.teardown(async () => {
  await stopAndRemove(d);
});

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const allActive = () => {
  const nodes = d.reload().hsmNodes;
  return nodes.length === 2 && nodes.every((n) => n.health === 'ACTIVE');
};

const failures = (r: { samples: Array<{ status: number; errorName?: string }> }) =>
  r.samples.filter((s) => s.status !== 200).map((s) => `${s.status} ${s.errorName ?? ''}`);

t.test('SIGKILL of one node under load: no failed request, node restarted with a new pid', async (t) => {
  const before = d.reload().hsmNodes[0]!.pid;
  let killed = false;
  const report = await runLoad({
    demo: d.demo,
    rate: 200,
    durationMs: 5000,
    onTick: (ms) => {
      if (!killed && ms > 1500) {
        killed = true;
        process.kill(before, 'SIGKILL');
      }
    },
  });
  t.ok(killed, 'node was killed during the run');
  t.ok(report.sent >= 900, `load ran (${report.sent} requests)`);
  t.same(failures(report), [], 'every request succeeded');
  await waitFor('hsm-1 restarted and ACTIVE', () => allActive() && d.reload().hsmNodes[0]!.pid !== before);
  t.not(d.reload().hsmNodes[0]!.pid, before, 'demo.json carries the new pid');
});

t.test('SIGSTOP for 3 s then SIGCONT under load: no failed request, both nodes ACTIVE again', async (t) => {
  const pid = d.reload().hsmNodes[1]!.pid;
  let stopped = false;
  let resumed = false;
  const report = await runLoad({
    demo: d.demo,
    rate: 200,
    durationMs: 6000,
    onTick: (ms) => {
      if (!stopped && ms > 1000) {
        stopped = true;
        process.kill(pid, 'SIGSTOP');
      }
      if (!resumed && ms > 4000) {
        resumed = true;
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* the supervisor may have replaced it */
        }
      }
    },
  });
  t.same(failures(report), [], 'every request succeeded');
  await waitFor('both nodes ACTIVE', allActive);
  t.pass('health shows both nodes ACTIVE again');
});

t.test('injected faults (slow past the deadline, device errors): no failed request', async (t) => {
  for (const args of [['--kind', 'slow', '--ms', '400'], ['--kind', 'fail', '--ckr', 'CKR_DEVICE_ERROR']]) {
    await xks(['fault', '--config', d.demo.configFile, '--node', 'hsm-1', ...args]);
    const report = await runLoad({ demo: d.demo, rate: 150, durationMs: 3000 });
    t.same(failures(report), [], `every request succeeded with hsm-1 ${args[1]}`);
    await xks(['fault', '--config', d.demo.configFile, '--node', 'hsm-1', '--kind', 'none']);
    await waitFor('both nodes ACTIVE', allActive);
  }
});

t.test('every node frozen: every request answers 503 DependencyTimeoutException, none hangs', async (t) => {
  const pids = d.reload().hsmNodes.map((n) => n.pid);
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    const report = await runLoad({ demo: d.demo, rate: 50, durationMs: 1000, timeoutMs: 5000 });
    t.ok(report.sent >= 40, 'requests were sent');
    t.same(
      [...new Set(report.samples.map((s) => `${s.status} ${s.errorName}`))],
      ['503 DependencyTimeoutException'],
      'all answered 503 DependencyTimeoutException as JSON',
    );
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* replaced by the supervisor */
      }
    }
  }
  await waitFor('both nodes ACTIVE after recovery', allActive);
  t.pass('cluster recovered');
});

t.test('SIGTERM after all that: exit 0, no HSM node process left', async (t) => {
  const pids = d.reload().hsmNodes.map((n) => n.pid);
  t.equal(await d.stop(), 0, 'exit code 0');
  for (const pid of pids) t.throws(() => process.kill(pid, 0), `node process ${pid} is gone`);
});
