// The Debian package (appliance/packaging/deb/build.sh): built from this tree, checked as dpkg sees it
// (fields, file list, conffiles, maintainer scripts), unpacked by dpkg into a temporary root and
// run from there. Maintainer scripts are not run: they create a system user on the host.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig, parseYaml } from '../../appliance/config/load.js';
import { ROOT } from '../helpers/demo.js';

// Building and compressing the package takes a while on a busy machine.
t.setTimeout(300_000);
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'xks-deb-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const deb = execFileSync(join(ROOT, 'appliance', 'packaging', 'deb', 'build.sh'), [join(work, 'out')], { encoding: 'utf8', timeout: 120_000 }).trim();
const field = (name: string) => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 })
  .split('\n')
  .filter(Boolean)
  .map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\.\//, '/'));
const control = mkdtempSync(join(work, 'control-'));
execFileSync('dpkg-deb', ['-e', deb, control]);

t.test('package fields', async (t) => {
  t.match(deb, new RegExp(`xks-appliance_${version.replace(/\./g, '\\.')}_\\w+\\.deb$`));
  t.equal(field('Package'), 'xks-appliance');
  t.equal(field('Version'), version, 'the version of package.json');
  t.match(field('Depends'), /nodejs \(>= 20\.18\)/);
  t.match(field('Depends'), /adduser/);
});

t.test('the tree: /opt/xks with production modules only, the unit, xks on PATH, the example configuration', async (t) => {
  for (const f of [
    '/opt/xks/bin/xks',
    '/opt/xks/package.json',
    '/opt/xks/dist/appliance/cli/main.js',
    '/opt/xks/dist/xks/hsm/child/node-main.js',
    '/opt/xks/appliance/certs/kms-trusted-roots.json',
    '/opt/xks/node_modules/pkcs11js/package.json',
    '/opt/xks/node_modules/pino/package.json',
    '/lib/systemd/system/xks@.service',
    '/etc/xks/xks.yaml.example',
    '/usr/bin/xks -> /opt/xks/bin/xks',
    '/opt/xks/README.md',
  ]) {
    t.ok(files.includes(f), f);
  }
  t.ok(files.some((f) => /^\/opt\/xks\/node_modules\/pkcs11js\/build\/Release\/.*\.node$/.test(f)), 'pkcs11js native module built');
  for (const dev of ['tap', 'typescript', 'autocannon', '@smithy']) t.notOk(files.some((f) => f.startsWith(`/opt/xks/node_modules/${dev}/`)), `no dev dependency ${dev}`);
  t.notOk(files.some((f) => f.startsWith('/opt/xks/dist/test/')), 'no tests');
  t.notOk(files.some((f) => f.startsWith('/opt/xks/dist/') && (f.endsWith('.map') || f.endsWith('.ts'))), 'no sources or source maps');
  t.notOk(files.some((f) => f.startsWith('/etc/xks/') && f !== '/etc/xks/' && f !== '/etc/xks/xks.yaml.example'), 'no configuration or secret of its own in /etc/xks');
});

t.test('conffiles: dpkg keeps an edited example on upgrade; operator files are never in the package', async (t) => {
  t.equal(readFileSync(join(control, 'conffiles'), 'utf8').trim(), '/etc/xks/xks.yaml.example');
  const example = parseYaml(readFileSync(join(ROOT, 'appliance', 'packaging', 'deb', 'xks.yaml.example'), 'utf8'), 'xks.yaml.example');
  t.doesNotThrow(() => parseConfig(example, 'xks.yaml.example'), 'the example passes the schema');
});

t.test('maintainer scripts: valid shell; the service user and the directory modes', async (t) => {
  for (const s of ['postinst', 'prerm', 'postrm']) {
    const file = join(control, s);
    t.equal(statSync(file).mode & 0o111, 0o111, `${s} is executable`);
    t.equal(spawnSync('sh', ['-n', file]).status, 0, `${s} parses`);
  }
  const postinst = readFileSync(join(control, 'postinst'), 'utf8');
  t.match(postinst, /adduser --system --group .*xks/, 'a system user and group xks');
  t.match(postinst, /install -d -m 0750 -o root -g xks \/etc\/xks/, '/etc/xks readable by the service, not writable');
  t.match(postinst, /install -d -m 0700 -o xks -g xks \/etc\/xks\/secrets/, 'secrets for the service alone');
  t.match(postinst, /install -d -m 0750 -o xks -g xks \/var\/log\/xks/);
  const postrm = readFileSync(join(control, 'postrm'), 'utf8');
  t.notMatch(postrm, /rm -rf \/etc\/xks/, 'purge never deletes the configuration');
});

t.test('dpkg --root --unpack into a temporary root: registered, conffile known, xks runs from /opt/xks', async (t) => {
  const root = join(work, 'root');
  mkdirSync(join(root, 'var/lib/dpkg/info'), { recursive: true });
  mkdirSync(join(root, 'var/lib/dpkg/updates'), { recursive: true });
  writeFileSync(join(root, 'var/lib/dpkg/status'), '');
  // Unpack runs no maintainer script of a first install (there is no preinst).
  const unpack = spawnSync('dpkg', ['--root', root, '--force-depends', '--unpack', deb], { encoding: 'utf8' });
  t.equal(unpack.status, 0, unpack.stderr);
  const q = execFileSync('dpkg-query', ['--admindir', join(root, 'var/lib/dpkg'), '-W', '-f', '${Status} ${Version}\n${Conffiles}\n', 'xks-appliance'], { encoding: 'utf8' });
  t.match(q, new RegExp(`install ok unpacked ${version}`));
  t.match(q, /\/etc\/xks\/xks\.yaml\.example/);
  t.equal(readlinkSync(join(root, 'usr/bin/xks')), '/opt/xks/bin/xks');
  // As in test/helpers/demo.ts: tap's loaders must not reach the installed entry.
  const xks = (...args: string[]) => spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, join(root, 'opt/xks/bin/xks'), ...args], { encoding: 'utf8' });
  const run = xks('--version');
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, version, 'the unpacked tree runs on its own modules');
  const help = xks('fleet', '--help');
  t.match(help.stdout, /restart/);
});
