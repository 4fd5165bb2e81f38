// Operator mistakes in command arguments end in one line saying what to fix, before any work.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { xksCommand } from '../helpers/demo.js';

t.test('a host name with a space or "!" is refused as a flag, and nothing is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xks-init-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pin = join(dir, 'hsm.pin');
  writeFileSync(pin, '12345678\n', { mode: 0o600 });
  const [cmd, args] = xksCommand(['init', '--host', 'bad host!', '--module', '/usr/lib/softhsm/libsofthsm2.so', '--token', 't', '--pin-file', pin, '--dir', join(dir, 'etc')]);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  t.not(r.status, 0);
  t.match(r.stderr, /--host <NAME>' argument 'bad host!' is invalid\. a DNS name/);
  t.notOk(existsSync(join(dir, 'etc', 'xks.yaml')), 'no configuration written');
});

t.test('doctor with a --haproxy-cfg that does not exist: one line naming it, not a failed check with an errno', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xks-doctor-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pin = join(dir, 'hsm.pin');
  writeFileSync(pin, '12345678\n', { mode: 0o600 });
  const init = xksCommand(['init', '--host', 'localhost', '--module', '/usr/lib/softhsm/libsofthsm2.so', '--token', 't', '--pin-file', pin, '--dir', join(dir, 'etc'), '--run-dir', join(dir, 'run'), '--log-dir', join(dir, 'log')]);
  t.equal(spawnSync(init[0], init[1], { encoding: 'utf8' }).status, 0, 'init');
  const [cmd, args] = xksCommand(['doctor', '--config', join(dir, 'etc', 'xks.yaml'), '--haproxy-cfg', join(dir, 'nope.cfg')]);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.equal(r.stderr, `xks: --haproxy-cfg ${join(dir, 'nope.cfg')}: no such file; give the haproxy.cfg in front of this appliance (or a copy of it)\n`);
});
