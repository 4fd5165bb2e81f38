// The audit trail's hash chain, written by the real writer into real files: intact across a
// restart, a torn tail, logrotate (create + reopen, copytruncate) and size rotation; broken, with
// the first bad line named, by a one-byte edit, a deleted line, two swapped lines, a cut middle.
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openAuditLog, type AuditLog } from '../../xks/audit/log.js';
import { verifyAuditFiles } from '../../xks/audit/verify.js';

const dir = mkdtempSync(join(tmpdir(), 'xks-audit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** Requests through the real batching path; resolves once all were released. */
function requests(log: AuditLog, count: number): Promise<boolean[]> {
  return Promise.all(
    Array.from({ length: count }, () => new Promise<boolean>((resolve) => log.request({ kmsRequestId: `req-${++n}`, kmsOperation: 'Encrypt', status: 200, store: 'demo', keyId: 'k1', accessKeyId: 'AKIA', latencyMs: 1.5 }, resolve))),
  );
}
const files = (sub: string) => readdirSync(join(dir, sub)).map((f) => join(dir, sub, f));
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').slice(0, -1);

t.test('intact across a restart, a torn tail, logrotate create + reopen, copytruncate and size rotation', async (t) => {
  const file = join(dir, 'ok', 'audit.log');
  let log = openAuditLog({ file });
  t.same(await requests(log, 20), Array(20).fill(true), 'every record released as written');
  t.ok(readFileSync(file, 'utf8').includes('req-20'), 'in the file when released (no buffering)');
  await log.close();

  // A crash mid-line, then a restart: the chain continues from the last complete record.
  appendFileSync(file, '{"seq":21,"prev":"ab');
  log = openAuditLog({ file });
  await requests(log, 5);
  // logrotate create: rename, a new empty file, then SIGHUP / xks reload.
  renameSync(file, `${file}.1`);
  writeFileSync(file, '', { mode: 0o600 });
  await requests(log, 3); // still into the renamed file until the reopen
  log.reopen();
  await requests(log, 4);
  // copytruncate: copy, (records written in between), truncate.
  copyFileSync(file, `${file}.2`);
  await requests(log, 2);
  truncateSync(file, 0);
  await requests(log, 3);
  await log.close();
  // A restart after create but before the reopen: FILE is empty, the head is in the rotated file.
  renameSync(file, `${file}.3`);
  writeFileSync(file, '');
  log = openAuditLog({ file, maxBytes: 65_536 });
  for (let i = 0; i < 40; i++) await requests(log, 10); // crosses maxBytes: FILE.<time>
  await log.close();

  const all = files('ok');
  t.ok(all.some((f) => /audit\.log\.\d{8}T/.test(f)), 'size rotation made a timestamped file');
  const report = verifyAuditFiles(all);
  t.ok(report.ok, `intact: ${JSON.stringify(report.error)}`);
  t.equal(report.records >= n, true, 'every request record counted');
  t.ok(report.duplicates > 0, 'the copytruncate replay is recognised as repeats');
  t.match(report.warnings.map((w) => w.reason).join('\n'), /torn line/, 'the torn line is reported');
  const requestIds = new Set(all.flatMap(lines).filter((l) => l.includes('"type":"request"')).map((l) => JSON.parse(l).kmsRequestId));
  t.equal(requestIds.size, n, 'no request record lost, even across copytruncate');
});

t.test('a torn last line is reported, not fatal', async (t) => {
  const file = join(dir, 'torn', 'audit.log');
  const log = openAuditLog({ file });
  await requests(log, 3);
  await log.close();
  appendFileSync(file, '{"seq":4,"prev":"00');
  const report = verifyAuditFiles([file]);
  t.ok(report.ok, 'still intact');
  t.match(report.warnings[0], { line: 5, reason: /torn last line/ });
});

t.test('tampering is found at the first bad line, with the reason', async (t) => {
  const file = join(dir, 'base', 'audit.log');
  const log = openAuditLog({ file });
  await requests(log, 10);
  await log.close();
  const base = lines(file);
  const check = (name: string, text: string, line: number, reason: RegExp) => {
    const copy = join(dir, 'base', name);
    writeFileSync(copy, text);
    const report = verifyAuditFiles([copy]);
    t.notOk(report.ok, `${name}: broken`);
    t.match(report.error, { line, reason }, `${name}: line ${line}, ${reason}`);
  };
  const edited = base.map((l, i) => (i === 4 ? l.replace('"latencyMs":1.5', '"latencyMs":1.6') : l));
  check('one-byte-edit', edited.join('\n') + '\n', 5, /edited/);
  const prevEdited = base.map((l, i) => (i === 4 ? l.replace(/"prev":"(.)/, (_m, c: string) => `"prev":"${c === 'a' ? 'b' : 'a'}`) : l));
  check('prev-edit', prevEdited.join('\n') + '\n', 5, /edited/);
  check('deleted-line', base.filter((_l, i) => i !== 6).join('\n') + '\n', 7, /deleted: seq 6 is missing/);
  const swapped = [...base];
  [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
  check('swapped-lines', swapped.join('\n') + '\n', 4, /reordered/);
  const text = base.join('\n') + '\n';
  // From the middle of line 4 to the middle of line 7: one joined line, three records gone.
  const mid = (i: number) => base.slice(0, i).join('\n').length + 1 + Math.floor(base[i]!.length / 2);
  const cut = text.slice(0, mid(3)) + text.slice(mid(6));
  check('truncated-middle', cut, 5, /deleted: seq 4 to 6 are missing/);
  const lineStart = (i: number) => base.slice(0, i).join('\n').length + 1;
  check('cut-line', text.slice(0, mid(3)) + '\n' + text.slice(lineStart(6)), 4, /not a record/);
  check('two-deleted-lines', base.slice(0, 3).join('\n') + '\n' + base.slice(5).join('\n') + '\n', 4, /deleted: seq 3 to 4 are missing/);
});
