// The systemd unit must never loop on a mistake a restart cannot fix: the exit codes `xks serve`
// uses for configuration and credential/PIN errors are in RestartPreventExitStatus, there is no
// ExecStartPre (whose failures that setting does not see), and each instance gets its own
// runtime, state and log directories.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../appliance/exit-codes.js';
import { ROOT } from '../helpers/demo.js';

const unitFile = join(ROOT, 'appliance', 'systemd', 'xks@.service');
const text = readFileSync(unitFile, 'utf8');
const setting = (name: string) => text.split('\n').find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);

t.test('no restart on configuration or PIN errors', async (t) => {
  const prevent = (setting('RestartPreventExitStatus') ?? '').split(/\s+/).map(Number);
  t.ok(prevent.includes(EXIT.CONFIG) && prevent.includes(EXIT.CREDENTIALS), `RestartPreventExitStatus=${prevent}`);
  t.notOk(prevent.includes(EXIT.RUNTIME), 'runtime failures are restarted');
  t.equal(setting('Restart'), 'on-failure');
  t.equal(setting('ExecStartPre'), undefined, 'no ExecStartPre');
  t.equal(setting('KillMode'), 'mixed', 'SIGTERM to the service only; it stops its node processes itself');
});

t.test('one set of directories per instance', async (t) => {
  t.equal(setting('RuntimeDirectory'), 'xks/%i');
  t.equal(setting('RuntimeDirectoryMode'), '0700', 'the control socket directory is private');
  t.equal(setting('StateDirectory'), 'xks/%i');
  t.equal(setting('LogsDirectory'), 'xks/%i');
  t.match(setting('ExecStart'), /serve --config \/etc\/xks\/%i\.yaml$/);
});

t.test('systemd-analyze accepts it', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xks-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The unit as installed, with ExecStart pointing at this tree instead of /opt/xks.
  const copy = join(dir, 'xks@.service');
  writeFileSync(copy, text.replaceAll('/opt/xks/bin/xks', join(ROOT, 'bin', 'xks')));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
  const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() && !/Unit xks@i\.service not found|Failed to .*bus|System has not been booted/.test(l));
  t.same(problems, [], 'no findings');
});
