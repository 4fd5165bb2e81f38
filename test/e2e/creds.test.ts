// `xks creds list|add|retire` on a running demo of two instances sharing one credentials file,
// under continuous load with 0 failed requests: a new credential works at once here and on the
// other instance within seconds (no restart), the old ones keep working until retired, a retired
// one is refused (401), the last one cannot be retired; the file stays 0600; the audit trail has it.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import type { RunningDemo } from '../helpers/demo.js';
import { withTwoInstances } from '../helpers/fixture.js';
import { settled, sleep, WARM_UP_MS, within, xks as xksAs } from '../helpers/operator.js';
import { runLoad, type LoadReport } from '../helpers/load.js';
import { XksClient } from '../helpers/xks-client.js';


const xks = (args: string[]) => xksAs(args, 'bob');
let d: RunningDemo;
let client: XksClient;
withTwoInstances(t, (demo, c) => ([d, client] = [demo, c]));

type Cred = { accessKeyId: string; secretAccessKey: string };
const health = (credential: Cred, endpoint?: string) =>
  client.call('/health', { requestMetadata: { kmsRequestId: randomUUID(), kmsOperation: 'KmsHealthCheck' } }, { credential, ...(endpoint ? { endpoint } : {}) });

t.test('rotation under load: add, both work, retire, last one kept', async (t) => {
  const cfg = d.demo.configFile;
  const other = d.demo.instances[1]!.endpoint;
  const first = { accessKeyId: d.demo.accessKeyId, secretAccessKey: d.demo.secretAccessKey };
  const load: Promise<LoadReport> = runLoad({ demo: d.demo, rate: 50, durationMs: 10_000, timeoutMs: 2000 });
  await sleep(WARM_UP_MS);

  const added = await xks(['creds', 'add', '--config', cfg, '--store', 'demo', '--json', '--reason', 'rotation 2026-12']);
  t.equal(added.code, 0, `creds add succeeds ${added.stderr}`);
  const cred = JSON.parse(added.stdout) as Cred;
  t.same(Object.keys(cred).sort(), ['accessKeyId', 'secretAccessKey'], '--json prints the credential only');
  t.match(cred.accessKeyId, /^[A-Z2-7]{20,30}$/, 'access key id per the spec');
  t.match(cred.secretAccessKey, /^[A-Za-z0-9+/]{43}=$/, 'secret: 32 random bytes in base64');
  t.equal((await health(cred)).status, 200, 'the new credential works here at once');
  t.ok((await within(5000, async () => (await health(cred, other)).status === 200)) < 5000, 'and on the other instance without a restart');
  t.equal((await health(first)).status, 200, 'the old credential still works');

  const text = await xks(['creds', 'add', '--config', cfg, '--store', 'demo', '--custom-key-store-id', 'cks-1234567890abcdef0']);
  t.match(text.stdout, /aws kms update-custom-key-store --custom-key-store-id cks-1234567890abcdef0 \\\n {2}--xks-proxy-authentication-credential AccessKeyId=[A-Z2-7]{20},RawSecretAccessKey=\S{44}/, 'prints the AWS CLI call');
  const list = JSON.parse((await xks(['creds', 'list', '--config', cfg, '--store', 'demo', '--json'])).stdout) as { credentials: Array<{ accessKeyId: string; ageDays?: number }> };
  t.equal(list.credentials.length, 4, 'list shows every set');
  t.equal(list.credentials.find((c) => c.accessKeyId === cred.accessKeyId)?.ageDays, 0, 'with its age');
  t.notMatch(JSON.stringify(list), /secretAccessKey/, 'never the secrets');
  const file = parse(readFileSync(d.dir + '/secrets/credentials-demo.yaml', 'utf8')) as { credentials: unknown[] };
  t.equal(file.credentials.length, 4, 'the file holds them');
  t.equal(statSync(d.dir + '/secrets/credentials-demo.yaml').mode & 0o777, 0o600, 'the file stays 0600');

  // Retire the demo's second set (the load signs with the first): refused (401) here at once, on
  // the other instance within seconds.
  const gone = d.demo.secondCredential;
  const retired = await xks(['creds', 'retire', '--config', cfg, '--store', 'demo', '--access-key-id', gone.accessKeyId]);
  t.equal(retired.code, 0, `retire succeeds ${retired.stderr}`);
  t.equal((await health(gone)).status, 401, 'the retired credential is refused');
  t.ok((await within(5000, async () => (await health(gone, other)).status === 401)) < 5000, 'on the other instance too');
  t.equal((await health(cred, other)).status, 200, 'the new one keeps working');
  const report = await load;
  const after = settled(report);
  if (after.failed) console.error(d.output().split('\n').filter((l) => /"level":[456]0|credential/.test(l) && !/"component":"request"/.test(l)).join('\n'));
  t.equal(after.failed, 0, `load on the first credential through the rotation: ${after.sent} requests, none failed ${JSON.stringify(after.samples.filter((s) => s.status !== 200).slice(0, 3))}`);

  // Down to one: that one stays.
  const ids = (JSON.parse((await xks(['creds', 'list', '--config', cfg, '--store', 'demo', '--json'])).stdout) as typeof list).credentials.map((c) => c.accessKeyId);
  for (const id of ids.filter((i) => i !== cred.accessKeyId)) t.equal((await xks(['creds', 'retire', '--config', cfg, '--store', 'demo', '--access-key-id', id])).code, 0, `retire ${id}`);
  const last = await xks(['creds', 'retire', '--config', cfg, '--store', 'demo', '--access-key-id', cred.accessKeyId]);
  t.not(last.code, 0, 'the last credential cannot be retired');
  t.match(last.stderr, /is the last credential/, 'saying why');
  t.equal((await health(cred)).status, 200, 'and it still works');

  const audit = readFileSync(d.demo.auditLog, 'utf8').split('\n').filter((l) => l.includes('"type":"admin"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(audit.find((a) => a['action'] === 'creds-add'), { operator: 'bob', reason: 'rotation 2026-12', accessKeyId: cred.accessKeyId, keyStore: 'demo' }, 'creds add is audited');
  t.match(audit.find((a) => a['action'] === 'creds-retire'), { operator: 'bob', accessKeyId: gone.accessKeyId }, 'so is retire');
  t.notMatch(readFileSync(d.demo.auditLog, 'utf8'), cred.secretAccessKey, 'the secret is not in the audit trail');

});

t.test('creds list: without createdAt, the age comes from the file\'s last change (as in xks status)', async (t) => {
  const file = d.dir + '/secrets/credentials-demo.yaml';
  const doc = parse(readFileSync(file, 'utf8')) as { credentials: Array<Record<string, unknown>> };
  for (const c of doc.credentials) delete c['createdAt'];
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  const out = await xks(['creds', 'list', '--config', d.demo.configFile, '--store', 'demo']);
  t.equal(out.code, 0, `creds list succeeds ${out.stderr}`);
  t.match(out.stdout, /^[A-Z2-7]{20,30}  \S+Z \(no createdAt: the file's last change\)  0 days old\n$/, 'an age from the file time, not "age unknown"');
});
