// Live reload of the whole configuration under continuous load, with 0 failed requests: a reload
// that adds a key store and a key; HSM nodes removed and added; a broken file and a restart-only
// change refused with the old configuration serving; SIGHUP.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { randomBytes } from 'node:crypto';
import { newCredential } from '../../appliance/demo/provision.js';
import { provisionToken } from '../../appliance/demo/tokens.js';
import { startDemo, stopAndRemove, type RunningDemo } from '../helpers/demo.js';
import { settled, sleep, WARM_UP_MS, widenRequestBudget, xks as xksAs } from '../helpers/operator.js';
import { runLoad, type LoadReport } from '../helpers/load.js';
import { b64, meta, XksClient } from '../helpers/xks-client.js';


const xks = (args: string[]) => xksAs(args);
let d: RunningDemo;
let client: XksClient;
t.before(async () => {
  d = await startDemo(['--nodes', '3']);
  client = new XksClient(d.demo);
  await widenRequestBudget([d.demo.configFile]);
});
t.teardown(async () => {
  client?.close();
  await stopAndRemove(d);
});

type Doc = Record<string, any>;
const readConfig = (): Doc => parse(readFileSync(d.demo.configFile, 'utf8')) as Doc;
const writeConfig = (doc: Doc | string) => writeFileSync(d.demo.configFile, typeof doc === 'string' ? doc : stringify(doc), { mode: 0o600 });
const encrypt = (path: string, opts = {}) => client.call(path, { ...meta(), plaintext: b64('reload'), encryptionAlgorithm: 'AES_GCM' }, opts);
/** New AES keys on every demo token, as an HSM administrator adds them before the configuration names them. */
async function addTokenKeys(labels: string[]): Promise<void> {
  const secrets = join(d.dir, 'secrets');
  const keys = labels.map((label) => ({ label, material: randomBytes(32), encrypt: true, decrypt: true }));
  for (const node of readConfig()['hsm'].nodes as Array<{ module: string; tokenLabel: string; env: Record<string, string> }>) {
    await provisionToken({ module: node.module, env: node.env, tokenLabel: node.tokenLabel, soPin: readFileSync(join(secrets, 'so.pin'), 'utf8'), userPin: readFileSync(join(secrets, 'user.pin'), 'utf8'), keys });
  }
}
const status = async () => JSON.parse((await xks(['status', '--config', d.demo.configFile, '--json'])).stdout) as { nodes: Array<{ id: string; pid: number }> };

t.test('reloads under load: new key store and key, HSM nodes out and in, refusals, SIGHUP; 0 failed requests', async (t) => {
  // The HSM administrator's part comes first (writing a SoftHSM2 token locks its files for a while).
  await addTokenKeys(['reload-added', 'reload-second']);
  const load: Promise<LoadReport> = runLoad({ demo: d.demo, rate: 100, durationMs: 16_000, timeoutMs: 2000 });
  // The load's first second opens its connections (TLS handshakes on a busy machine): changes start after it.
  await sleep(WARM_UP_MS);
  const original = readFileSync(d.demo.configFile, 'utf8');

  // A second key store with its own credentials, and a new key in the demo store.
  const cred = newCredential();
  const secondCreds = join(d.dir, 'secrets', 'credentials-second.yaml');
  writeFileSync(secondCreds, stringify({ credentials: [cred] }), { mode: 0o600 });
  const doc = readConfig();
  doc['keyStores'][0].keys.push({ id: 'added-key', label: 'reload-added' });
  doc['keyStores'].push({ name: 'second', uriPathPrefix: '/second', credentialsFile: secondCreds, keys: [{ id: 'second-key', label: 'reload-second' }] });
  doc['logging'] = { level: 'debug' };
  t.equal((await encrypt('/keys/added-key/encrypt')).status, 404, 'the new key is unknown before the reload');
  writeConfig(doc);
  const ok = await xks(['reload', '--config', d.demo.configFile, '--json']);
  t.equal(ok.code, 0, `reload succeeds ${ok.stderr}`);
  t.match(JSON.parse(ok.stdout), { stores: 2, keys: 7, loggingLevel: 'debug' }, 'reports the new store and key, and the new logging level');
  t.equal((await encrypt('/keys/added-key/encrypt')).status, 200, 'the new key serves');
  const second = `${d.demo.endpoint}/second/kms/xks/v1/keys/second-key/encrypt`;
  t.equal((await encrypt(second, { credential: cred })).status, 200, 'the new key store serves with its own credential');
  t.equal((await encrypt(second)).status, 401, 'and not with the other store credential');

  // A broken file: refused with its reason, the running configuration keeps serving.
  writeConfig('keyStores: [\n  oops');
  const broken = await xks(['reload', '--config', d.demo.configFile]);
  t.not(broken.code, 0, 'a broken file is refused');
  t.match(broken.stderr, /not valid YAML/, 'with its reason');
  t.equal(broken.stderr.trim().split('\n').length, 1, 'on one line');
  writeConfig({ ...doc, keyStores: [{ ...doc['keyStores'][0], keys: [{ id: 'x', label: 'y', usage: ['SIGN'] }] }] });
  const invalid = await xks(['reload', '--config', d.demo.configFile]);
  t.match(invalid.stderr, /keyStores\[0\]\.keys\[0\]\.usage/, 'a schema error names the field');
  t.equal((await encrypt('/keys/added-key/encrypt')).status, 200, 'the running configuration still serves');

  // A setting bound to the listening socket takes a restart.
  writeConfig({ ...doc, server: { ...doc['server'], port: doc['server'].port + 7 } });
  const port = await xks(['reload', '--config', d.demo.configFile]);
  t.not(port.code, 0, 'a new listener port is refused');
  t.match(port.stderr, /server\.port changed: that takes a restart/, 'saying a restart is needed');

  // HSM node hsm-3 leaves the configuration, then comes back with a new process.
  const before = await status();
  writeConfig({ ...doc, hsm: { ...doc['hsm'], nodes: doc['hsm'].nodes.slice(0, 2) } });
  const out = await xks(['reload', '--config', d.demo.configFile]);
  t.match(out.stdout, /^reloaded: 2 key store\(s\), 7 key\(s\); certificate expires in [\d.]+ days; HSM nodes removed: hsm-3; logging level debug\n$/, 'without --json: one line saying what changed');
  t.same((await status()).nodes.map((n) => n.id), ['hsm-1', 'hsm-2'], 'two nodes left');
  await sleep(1000);
  writeConfig(doc);
  const back = await xks(['reload', '--config', d.demo.configFile, '--json']);
  t.match(JSON.parse(back.stdout), { hsmNodesAdded: ['hsm-3'] }, 'hsm-3 added');
  const after = await status();
  t.same(after.nodes.map((n) => n.id), ['hsm-1', 'hsm-2', 'hsm-3'], 'three nodes again');
  t.equal(after.nodes[0]!.pid, before.nodes[0]!.pid, 'an unchanged node kept its process');
  t.not(after.nodes[2]!.pid, before.nodes[2]!.pid, 'the node added back runs a new process');

  // SIGHUP: back to the original file, the second store goes away.
  writeConfig(original);
  process.kill(d.demo.pid, 'SIGHUP');
  let gone = 0;
  for (let i = 0; i < 50 && gone !== 404; i++) {
    await sleep(100);
    gone = (await encrypt(second, { credential: cred })).status;
  }
  t.equal(gone, 404, 'SIGHUP reloaded the file: the removed store answers 404');

  const report = settled(await load);
  if (report.failed) console.error(d.output().split('\n').filter((l) => /"level":[456]0|reloaded|HSM node/.test(l) && !/"component":"request"/.test(l)).join('\n'));
  t.ok(report.sent > 1000, `load ran (${report.sent} requests)`);
  t.equal(report.failed, 0, `0 failed requests (${JSON.stringify(report.samples.filter((s) => s.status !== 200).slice(0, 3))})`);
});
