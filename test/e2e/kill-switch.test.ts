// The kill switch on two instances sharing the demo's HSM tokens, under continuous load with 0
// failed requests: block/unblock at key, key-store and global scope take effect here at once and
// on the other instance within 2 s; blocked keys answer 400 InvalidStateException, GetKeyMetadata
// says DISABLED (key) or InvalidStateException (store, all), health checks keep answering; a block
// survives a restart; each block and unblock is an audit record with who and why.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RunningDemo } from '../helpers/demo.js';
import { withTwoInstances } from '../helpers/fixture.js';
import { settled, sleep, WARM_UP_MS, within, xks as xksAs } from '../helpers/operator.js';
import { runLoad, type LoadReport } from '../helpers/load.js';
import { signXksRequest } from '../helpers/sign.js';
import { b64, meta, request, XksClient } from '../helpers/xks-client.js';


const xks = (args: string[]) => xksAs(args, 'alice');
let d: RunningDemo;
let client: XksClient;
withTwoInstances(t, (demo, c) => ([d, client] = [demo, c]));

const second = () => d.reload().instances[1]!;
const encrypt = (key: string, endpoint?: string) =>
  client.call(`/keys/${key}/encrypt`, { ...meta(), plaintext: b64('kill switch'), encryptionAlgorithm: 'AES_GCM' }, endpoint ? { endpoint } : {});
const metadata = (key: string) => client.call(`/keys/${key}/metadata`, meta({ kmsOperation: 'DescribeKey' }));
const health = () => client.call('/health', { requestMetadata: { kmsRequestId: randomUUID(), kmsOperation: 'KmsHealthCheck' } });
const lbHealth = async () => (await request(d.demo.healthzUrl, { method: 'GET', headers: {}, ca: client.ca })).status;

const blockedOn = (key: string, endpoint?: string) => async () => (await encrypt(key, endpoint)).json?.errorName === 'InvalidStateException';
const servesOn = (key: string, endpoint?: string) => async () => (await encrypt(key, endpoint)).status === 200;

t.test('block and unblock at three scopes, here and on the other instance, under load', async (t) => {
  const cfg = d.demo.configFile;
  // GetHealthStatus keeps answering through every block: the load that must never fail.
  const url = `${d.demo.endpoint}${d.demo.uriPath}/health`;
  const body = JSON.stringify({ requestMetadata: { kmsRequestId: 'kill-switch-load', kmsOperation: 'KmsHealthCheck' } });
  const headers = await signXksRequest({ url, body, accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey, region: d.demo.region });
  const load: Promise<LoadReport> = runLoad({ demo: d.demo, rate: 50, durationMs: 25_000, timeoutMs: 2000, request: { url, headers, body } });
  // Encrypts on a key that stays unblocked, on the other instance, while one key is blocked.
  const keyLoad: Promise<LoadReport> = runLoad({ demo: d.demo, endpoint: second().endpoint, rate: 50, durationMs: 7000, timeoutMs: 2000 });
  await sleep(WARM_UP_MS);

  // Key scope.
  const key = d.demo.keys.encryptOnly;
  const b = await xks(['block', '--config', cfg, '--key', key, '--reason', 'suspected misuse', '--json']);
  t.equal(b.code, 0, `block --key succeeds ${b.stderr}`);
  t.match(JSON.parse(b.stdout), { blocked: `key ${key} of key store demo`, nodes: ['hsm-1', 'hsm-2'] }, 'written on every HSM node');
  const here = await encrypt(key);
  t.match({ status: here.status, ...here.json }, { status: 400, errorName: 'InvalidStateException' }, 'this instance refuses at once');
  const there = await within(5000, blockedOn(key, second().endpoint));
  t.ok(there < 2000, `the other instance refuses within 2 s (${Math.round(there)} ms)`);
  t.match((await metadata(key)).json, { keyStatus: 'DISABLED' }, 'GetKeyMetadata reports the blocked key DISABLED');
  t.equal((await encrypt(d.demo.keys.encryptDecrypt)).status, 200, 'other keys still serve');
  t.equal((await xks(['unblock', '--config', cfg, '--key', key, '--reason', 'cleared'])).code, 0, 'unblock succeeds');
  t.equal((await encrypt(key)).status, 200, 'this instance serves the key again at once');
  t.ok((await within(5000, servesOn(key, second().endpoint))) < 2000, 'and the other within 2 s');
  const keyReport = settled(await keyLoad);
  t.equal(keyReport.failed, 0, `encrypts on an unblocked key: ${keyReport.sent} sent, 0 failed ${JSON.stringify(keyReport.samples.filter((s) => s.status !== 200).slice(0, 3))}`);

  // Key-store scope, set on the other instance this time.
  const bs = await xks(['block', '--config', second().configFile, '--store', 'demo', '--reason', 'incident 42']);
  t.equal(bs.code, 0, 'block --store succeeds');
  t.match(bs.stdout, /^blocked key store demo on hsm-1, hsm-2\nnow blocked \(xks unblock lifts one\):\n  key store demo  by \S+ .*ago  reason: incident 42\n$/, 'without --json: what is now blocked, by whom and why, in words');
  t.ok((await within(5000, blockedOn(d.demo.keys.encryptDecrypt))) < 2000, 'a store block set on the other instance holds here within 2 s');
  t.match((await metadata(d.demo.keys.encryptDecrypt)).json, { errorName: 'InvalidStateException' }, 'GetKeyMetadata: InvalidStateException for a blocked store');
  t.equal((await health()).status, 200, 'GetHealthStatus keeps answering');
  t.equal(await lbHealth(), 200, 'the load balancer health check keeps answering');
  t.equal((await xks(['unblock', '--config', second().configFile, '--store', 'demo'])).code, 0, 'unblock --store succeeds');
  t.ok((await within(5000, servesOn(d.demo.keys.encryptDecrypt))) < 2000, 'serving again within 2 s');

  // Global scope; it survives a restart of an instance.
  t.equal((await xks(['block', '--config', cfg, '--all', '--reason', 'everything off'])).code, 0, 'block --all succeeds');
  t.ok(await blockedOn(d.demo.keys.encryptDecrypt)(), 'everything refused here at once');
  const status = JSON.parse((await xks(['status', '--config', cfg, '--json'])).stdout) as { sections?: unknown; blocks?: unknown };
  t.match(JSON.stringify(status), /"scope":"all"/, 'xks status shows the block');
  const metrics = await fetch(d.demo.metricsUrl).then((r) => r.text());
  t.match(metrics, /xks_proxy_blocks_active\{scope="all"\} 1/, 'metric: blocks active');
  const oldPid = second().pid;
  process.kill(oldPid, 'SIGTERM');
  t.ok((await within(30_000, async () => second().pid !== oldPid && (await encrypt(d.demo.keys.encryptDecrypt, second().endpoint).catch(() => undefined))?.status === 400)) < 30_000, 'the restarted instance starts blocked');
  t.equal((await xks(['unblock', '--config', cfg, '--all', '--reason', 'all clear'])).code, 0, 'unblock --all succeeds');
  t.ok((await within(5000, servesOn(d.demo.keys.encryptDecrypt, second().endpoint))) < 2000, 'the restarted instance serves again within 2 s');

  // Refusals that say what to fix.
  const typo = await xks(['block', '--config', cfg, '--key', 'no-such-key']);
  t.not(typo.code, 0, 'an unknown key is refused');
  t.match(typo.stderr, /no key "no-such-key"/, 'naming it');
  const none = await xks(['block', '--config', cfg]);
  t.match(none.stderr, /exactly one target/, 'a target is required');

  const audit = readFileSync(d.demo.auditLog, 'utf8').split('\n').filter((l) => l.includes('"type":"admin"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(audit.find((a) => a['action'] === 'block' && a['scope'] === 'key'), { operator: 'alice', reason: 'suspected misuse', externalKeyId: key, outcome: 'success' }, 'the block is audited with who and why');
  t.match(audit.find((a) => a['action'] === 'unblock' && a['scope'] === 'all'), { operator: 'alice', reason: 'all clear' }, 'so is the unblock');

  const report = settled(await load);
  t.equal(report.failed, 0, `GetHealthStatus under load: ${report.sent} sent, 0 failed`);
});
