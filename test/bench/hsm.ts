// Throughput of a 2-node SoftHSM2 cluster for 256-byte encrypts, sync vs async call mode.
// Not a test: `npm run build && node dist/test/bench/hsm.js [seconds] [concurrency]`.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createHsmCluster } from '../../xks/hsm/parent/cluster.js';
import { LABELS, makeTestHsm } from '../helpers/softhsm.js';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 16);

async function run(callMode: 'sync' | 'async', sessions: number): Promise<void> {
  const th = await makeTestHsm({ nodes: 2, node: { callMode, sessions } });
  const cluster = createHsmCluster(th.hsm);
  try {
    await cluster.start();
    const plaintext = randomBytes(256);
    const hsmAad = Buffer.from([0, 0, 1, 1]);
    const latencies: number[] = [];
    let failures = 0;
    const end = performance.now() + seconds * 1000;
    const worker = async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await cluster.encrypt({ label: LABELS.aes, plaintext, hsmAad }, t0 + th.hsm.requestBudgetMs);
          latencies.push(performance.now() - t0);
        } catch {
          failures++;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => (latencies[Math.floor((latencies.length - 1) * p)] ?? NaN).toFixed(2);
    const rate = Math.round(latencies.length / seconds);
    console.log(
      `${callMode.padEnd(5)} sessions=${sessions} concurrency=${concurrency}: ${rate} ops/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, failures ${failures}`,
    );
  } finally {
    await cluster.close();
    th.cleanup();
  }
}

await run('sync', 1);
await run('sync', 4);
await run('async', 4);
await run('async', 8);
