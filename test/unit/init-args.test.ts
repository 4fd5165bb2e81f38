// `xks init` refuses a host name the configuration would refuse, before it writes anything.
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
