// Seeded HTTP fuzzing of the real demo over TLS (X3: every reply is spec JSON). At least 100,000
// mutated requests, built from valid signed requests for all four APIs and mutated at every layer
// (test/helpers/fuzz.ts), go over a pool of raw TLS connections; every reply is parsed by hand.
// Rules: each reply is application/json with a spec errorName (or a 200 with an API's answer),
// never Node's bare text; every request is answered or its connection closed within seconds of
// the client finishing; afterwards the demo process and its HSM node processes are the same ones
// and a valid Encrypt still succeeds.
//
// XKS_FUZZ_SEED picks another run (the default keeps CI deterministic); a failing case is rebuilt
// by buildCase(target, seed, index).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { loadConfig } from '../../appliance/config/load.js';
import { removeDir, startDemo, type RunningDemo } from '../helpers/demo.js';
import { buildCase, demoTarget, FuzzTally, mutatorsByLayer, runCases, type FuzzTarget } from '../helpers/fuzz/index.js';
import { FastSigner, signXksRequest } from '../helpers/sign.js';
import { b64, meta, XksClient } from '../helpers/xks-client.js';

const SEED = Number(process.env['XKS_FUZZ_SEED'] ?? 0x0f0221);
// XKS_FUZZ_CASES: a shorter run while developing, or a longer one; CI runs the default.
const TOTAL = Number(process.env['XKS_FUZZ_CASES'] ?? 100_000);
// Two cores run the demo, its HSM nodes and this client: enough connections to keep both busy.
const CONCURRENCY = 48;

// A long run by design: past tap's default per-file timeout on a busy 2-core machine.
t.setTimeout(600_000);

let d: RunningDemo;
let client: XksClient;
let target: FuzzTarget;
let hsmPids: number[];

t.before(async () => {
  d = await startDemo();
  client = new XksClient(d.demo);
  hsmPids = d.demo.hsmNodes.map((n) => n.pid);
  const { config } = await loadConfig(d.demo.configFile);
  target = demoTarget(d.demo, d.dir, SEED, config.server.maxBodyBytes);
});
t.teardown(async () => {
  client?.close();
  if (d) {
    await d.stop();
    removeDir(d.dir);
  }
});

t.test('the fuzzer signs exactly as @smithy/signature-v4 does', async (t) => {
  const signer = new FastSigner();
  const url = `${d.demo.endpoint}${d.demo.uriPath}/keys/${d.demo.keys.encryptDecrypt}/encrypt`;
  const body = JSON.stringify({ ...meta(), plaintext: b64('x'), encryptionAlgorithm: 'AES_GCM' });
  for (const extra of [{}, { 'content-type': 'application/json' }] as Array<Record<string, string>>) {
    const want = await signXksRequest({ url, body, ...target.primary, region: target.region, date: target.date, headers: extra });
    const headers: Array<[string, string]> = [['Host', target.host], ['Content-Type', 'application/json']];
    const got = signer.sign({ method: 'POST', path: new URL(url).pathname, headers, body: Buffer.from(body) }, target.primary, target.region, target.date, Object.keys(extra));
    t.equal(got.authorization, want['authorization'], `Authorization, signing ${['host', 'x-amz-date', ...Object.keys(extra)].join(', ')}`);
    t.equal(got['x-amz-date'], want['x-amz-date']);
  }
});

t.test('cases are a function of (seed, index)', async (t) => {
  const signer = new FastSigner();
  for (const i of [0, 1, 77, 99_999]) t.same(buildCase(target, SEED, i, signer).bytes, buildCase(target, SEED, i, signer).bytes, `case ${i}`);
  t.not(buildCase(target, SEED, 1, signer).bytes.toString('latin1'), buildCase(target, SEED + 1, 1, signer).bytes.toString('latin1'), 'another seed, another case');
});

t.test(`${TOTAL} mutated requests over TLS: every reply is spec JSON, nothing hangs`, async (t) => {
  const signer = new FastSigner();
  const tally = new FuzzTally();
  const ca = readFileSync(d.demo.caFile);
  const started = performance.now();
  const stats = await runCases({
    port: d.port,
    ca,
    servername: 'localhost',
    concurrency: CONCURRENCY,
    total: TOTAL,
    make: (i) => buildCase(target, SEED, i, signer),
    onExchange: (ex) => tally.record(ex),
  });
  const seconds = (performance.now() - started) / 1000;

  t.comment(`seed ${SEED}: ${tally.cases} cases in ${seconds.toFixed(1)} s (${Math.round(tally.cases / seconds)}/s), ${tally.replies} replies`);
  t.comment(`outcomes ${JSON.stringify(tally.outcomes)}; stalled ${tally.stalls}; more than one reply ${tally.multiResponse}`);
  t.comment(`connections ${stats.connections} (TLS resumed ${stats.resumed}, connect errors ${stats.connectErrors})`);
  t.comment(`replies by status and errorName: ${JSON.stringify(tally.byLabel())}`);
  t.comment(`mutators: ${JSON.stringify(mutatorsByLayer())}`);

  t.equal(tally.cases, TOTAL, 'every case ran');
  for (const api of ['health', 'metadata', 'encrypt', 'decrypt']) t.ok(tally.labels.get(`200 ${api}`), `valid ${api} requests succeeded along the way`);
  t.ok(tally.labels.get('400 ValidationException') && tally.labels.get('401 AuthenticationFailedException'), 'and mutated ones were refused');
  t.equal(tally.outcomes.hang, 0, 'no request was left without a reply or a close');
  t.equal(tally.stalls, 0, 'no request the client sent whole was left waiting for more bytes (server and client agree on framing)');
  // Problems come grouped by reply label, each with examples that rebuild the case.
  t.ok(tally.authBroken > TOTAL / 20, `cases that cannot authenticate were sent (${tally.authBroken})`);
  // Problems come grouped by reply label, each with examples that rebuild the case. Among them:
  // 'authenticated' (an answer past SigV4 for a request that cannot authenticate) and 'closed'
  // (a whole request dropped without a reply).
  t.same(Object.fromEntries(tally.problems), {}, 'every reply is application/json with a spec errorName or an API answer, none past SigV4 for a request that cannot authenticate, no whole request dropped unanswered');
});

t.test('after the run: same demo process, same HSM node processes, Encrypt still works', async (t) => {
  t.doesNotThrow(() => process.kill(d.demo.pid, 0), 'the demo process is alive');
  t.equal(d.proc.exitCode, null, 'and has not exited');
  const r = await client.call(`/keys/${d.demo.keys.encryptDecrypt}/encrypt`, { ...meta(), plaintext: b64('after the fuzz'), encryptionAlgorithm: 'AES_GCM' });
  t.equal(r.status, 200, 'a valid signed Encrypt succeeds');
  t.same(d.reload().hsmNodes.map((n) => n.pid), hsmPids, 'no HSM node process was restarted');
  for (const pid of hsmPids) t.doesNotThrow(() => process.kill(pid, 0), `HSM node ${pid} is alive`);
});
