// No answer without its record: SIGKILL the appliance while it is under load; every kmsRequestId
// that got a 200 must already be in the audit file (its write reached the OS before the reply).
// Then the operator's view: a restart continues the chain, logrotate (create + xks reload, and
// SIGHUP) keeps it, administrative actions are recorded with operator and reason, and
// `xks audit verify` passes the whole trail and fails a tampered copy, naming the line.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { startDemo, stopAndRemove, xksCommand, type RunningDemo } from '../helpers/demo.js';
import { b64, meta, XksClient } from '../helpers/xks-client.js';

let d: RunningDemo | undefined;
t.teardown(() => stopAndRemove(d));

t.test('SIGKILL under load loses no answered request from the audit log', async (t) => {
  d = await startDemo();
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  const answered: string[] = [];
  let failed = 0;
  let killed = false;
  const worker = async () => {
    while (!killed) {
      const id = randomUUID();
      const reply = await client
        .call(`/keys/${d!.demo.keys.encryptDecrypt}/encrypt`, { ...meta({ kmsRequestId: id }), plaintext: b64('crash test'), encryptionAlgorithm: 'AES_GCM' })
        .catch(() => undefined);
      if (reply?.status === 200) answered.push(id);
      else failed++;
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  // Kill mid-stream, once enough has been answered that batches of several records are in flight.
  while (answered.length < 300) await new Promise((r) => setTimeout(r, 20));
  process.kill(d.demo.pid, 'SIGKILL');
  killed = true;
  await Promise.all(workers);
  await d.stop();

  const audited = new Set(
    readFileSync(d.demo.auditLog, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { kmsRequestId?: string }).kmsRequestId),
  );
  const missing = answered.filter((id) => !audited.has(id));
  t.ok(answered.length >= 300, `${answered.length} requests answered 200 before the kill (${failed} cut off)`);
  t.same(missing, [], 'every answered kmsRequestId is in the audit file');
});

const xks = (...args: string[]) => {
  const r = spawnSync(...xksCommand(args), { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

t.test('restart, logrotate and admin actions keep one verifiable chain; tampering is named', async (t) => {
  const dir = d!.dir;
  d = await startDemo([], { dir });
  const client = new XksClient(d.demo);
  t.teardown(() => client.close());
  const encrypt = async (id: string) =>
    (await client.call(`/keys/${d!.demo.keys.encryptDecrypt}/encrypt`, { ...meta({ kmsRequestId: id }), plaintext: b64('rotation'), encryptionAlgorithm: 'AES_GCM' })).status;
  const cfg = d.demo.configFile;
  const log = d.demo.auditLog;

  t.equal(await encrypt('after-restart'), 200);
  renameSync(log, `${log}.1`); // logrotate "create"; postrotate runs xks reload
  writeFileSync(log, '', { mode: 0o600 });
  t.equal(xks('reload', '--config', cfg, '--operator', 'alice', '--reason', 'CHG-1 logrotate').code, 0, 'xks reload');
  t.equal(await encrypt('after-reload'), 200);
  t.ok(readFileSync(log, 'utf8').includes('after-reload'), 'after xks reload, records go to the new file');
  renameSync(log, `${log}.2`);
  process.kill(d.demo.pid, 'SIGHUP');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await encrypt('after-sighup'), 200);
  t.ok(readFileSync(log, 'utf8').includes('after-sighup'), 'after SIGHUP, records go to a new file');
  t.equal(xks('drain', '--config', cfg, '--operator', 'bob', '--reason', 'patching').code, 0, 'xks drain');
  t.equal(xks('undrain', '--config', cfg, '--operator', 'bob').code, 0, 'xks undrain');
  const out = join(dir, 'exported.json');
  t.equal(xks('kms-config', '--config', cfg, '--store', d.demo.store, '--out', out, '--operator', 'carol', '--reason', 'new key store').code, 0, 'xks kms-config');
  t.equal(await d.stop(), 0);

  const files = readdirSync(join(dir, 'logs')).filter((f) => f.startsWith('audit.log')).map((f) => join(dir, 'logs', f));
  const verified = xks('audit', 'verify', ...files);
  t.equal(verified.code, 0, `xks audit verify passes the trail across the crash, restart and rotations:\n${verified.out}${verified.err}`);
  t.match(verified.out, /intact: \d+ records/);

  const records = files.flatMap((f) => readFileSync(f, 'utf8').split('\n')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
    .sort((a, b) => (a['seq'] as number) - (b['seq'] as number));
  const admin = records.filter((r) => r['type'] === 'admin');
  t.match(admin, [
    { action: 'reload', operator: 'alice', reason: 'CHG-1 logrotate', outcome: 'success' },
    { action: 'reload', operator: 'signal:SIGHUP' },
    { action: 'drain', operator: 'bob', reason: 'patching' },
    { action: 'undrain', operator: 'bob' },
    { action: 'kms-config-export', operator: 'carol', reason: 'new key store', store: d.demo.store, accessKeyId: d.demo.accessKeyId },
  ], 'administrative actions are recorded with operator and reason');
  t.notOk(files.some((f) => readFileSync(f, 'utf8').includes(d!.demo.secretAccessKey)), 'the exported secret is not in the trail');
  const request = records.find((r) => r['kmsRequestId'] === 'after-reload');
  t.match(request, { type: 'request', authenticated: true, kmsOperation: 'Encrypt', keyStore: d.demo.store, externalKeyId: d.demo.keys.encryptDecrypt, principal: /arn:aws:iam/, kmsKeyArn: /arn:aws:kms/, sourceAddress: '127.0.0.1', sourcePort: Number, outcome: 'success', status: 200, hsmNode: /hsm-/, latencyMs: Number });

  // Tampered: one byte of the 'after-reload' record changed.
  const victim = files.find((f) => readFileSync(f, 'utf8').includes('"after-reload"'))!;
  const text = readFileSync(victim, 'utf8');
  writeFileSync(victim, text.replace('"after-reload"', '"after-reloaD"'));
  const broken = xks('audit', 'verify', ...files);
  const line = text.slice(0, text.indexOf('"after-reload"')).split('\n').length;
  t.equal(broken.code, 1, 'a one-byte edit fails verify');
  t.match(broken.err, new RegExp(`${victim.replace(/[.]/g, '\\.')} line ${line} .*edited`), `it names ${victim} line ${line}`);
});
