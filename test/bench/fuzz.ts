// A longer HTTP fuzz run against a fresh demo, not part of the tests (the test runs 100,000 cases
// with one seed). Build first, then:
//   node dist/test/bench/fuzz.js [--requests N] [--seed S] [--concurrency C] [--from I]
// Prints the counts by status and errorName, and every problem with the (seed, index) that
// rebuilds it; exits 1 when a rule was broken.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../appliance/config/load.js';
import { removeDir, startDemo } from '../helpers/demo.js';
import { buildCase, demoTarget, FuzzTally, runCases } from '../helpers/fuzz/index.js';
import { FastSigner } from '../helpers/sign.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 0x1_0000_0000) },
    concurrency: { type: 'string', default: '48' },
    from: { type: 'string', default: '0' },
  },
});
const total = Number(values.requests);
const seed = Number(values.seed);
const from = Number(values.from);

const d = await startDemo();
let failed = false;
try {
  const hsmPids = d.demo.hsmNodes.map((n) => n.pid);
  const { config } = await loadConfig(d.demo.configFile);
  const target = demoTarget(d.demo, d.dir, seed, config.server.maxBodyBytes);
  const signer = new FastSigner();
  const tally = new FuzzTally(5);
  const started = performance.now();
  const progress = setInterval(() => console.error(`${tally.cases} cases, ${tally.problemCount} problems`), 10_000);
  const stats = await runCases({
    port: d.port,
    ca: readFileSync(d.demo.caFile),
    servername: 'localhost',
    concurrency: Number(values.concurrency),
    total,
    // Signatures age: re-date the target every 4 minutes of a long run (SigV4 allows 5).
    make: (i) => {
      if (Date.now() - target.date.getTime() > 240_000) target.date = new Date();
      return buildCase(target, seed, from + i, signer);
    },
    onExchange: (ex) => tally.record(ex),
  });
  clearInterval(progress);
  const alive = d.proc.exitCode === null && hsmPids.every((p, i) => d.reload().hsmNodes[i]?.pid === p);
  failed = tally.problemCount > 0 || tally.outcomes.hang > 0 || tally.stalls > 0 || !alive;
  console.log(
    JSON.stringify(
      {
        seed,
        from,
        cases: tally.cases,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        outcomes: tally.outcomes,
        stalls: tally.stalls,
        multiResponse: tally.multiResponse,
        connections: stats,
        demoAndNodesUnchanged: alive,
        byLabel: tally.byLabel(),
        problemCount: tally.problemCount,
        problems: Object.fromEntries(tally.problems),
      },
      null,
      2,
    ),
  );
} finally {
  await d.stop();
  removeDir(d.dir);
}
process.exit(failed ? 1 : 0);
