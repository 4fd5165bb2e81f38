// The control socket belongs to one instance: a per-configuration default path, created 0600 in a
// 0700 directory, refused while another instance answers on it, taken over only when stale, and
// removed on close only if it is still this instance's.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlServer, type ControlTarget } from '../../appliance/control/server.js';
import { controlSocketPath, defaultControlSocket } from '../../appliance/control/socket-path.js';

const target = { status: () => ({ ok: true }) } as unknown as ControlTarget;
const dir = mkdtempSync(join(tmpdir(), 'xks-ctl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('one default path per configuration file', async (t) => {
  t.equal(defaultControlSocket('/etc/xks/prod.yaml'), '/etc/xks/xks-control/prod.sock');
  t.not(defaultControlSocket('/etc/xks/a.yaml'), defaultControlSocket('/etc/xks/b.yaml'), 'two configurations in one directory never share it');
  t.equal(controlSocketPath('/etc/xks/prod.yaml', '/run/xks/prod/control.sock'), '/run/xks/prod/control.sock');
  t.equal(controlSocketPath('/etc/xks/prod.yaml', 'run/c.sock'), '/etc/xks/run/c.sock');
});

t.test('private from the start; a live socket is refused, a stale one replaced', async (t) => {
  const path = join(dir, 'ctl', 'prod.sock');
  const first = await startControlServer(path, target);
  t.equal(statSync(join(dir, 'ctl')).mode & 0o777, 0o700, 'directory 0700');
  t.equal(statSync(path).mode & 0o077, 0, 'socket closed to group and others');
  await t.rejects(startControlServer(path, target), /in use by a running xks instance/, 'a second instance cannot take it over');
  t.ok(existsSync(path), 'and it stays');
  await first.close();
  t.notOk(existsSync(path), 'removed on close');

  // A crash leaves a socket nobody answers on (a SIGKILLed process never unlinks it): replaced.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.ok(statSync(path).isSocket(), 'a stale socket is there');
  const again = await startControlServer(path, target);
  await again.close();
});

t.test('a directory others can enter is refused', async (t) => {
  const open = join(dir, 'open');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  await t.rejects(startControlServer(join(open, 'x.sock'), target), /open to others \(mode 755\): run chmod 700/);
});
