// `haproxy -c` (the installed 2.6) accepts every rendered variant it can load, without warnings.
// The 2.9 variant cannot be loaded by 2.6: its TLV forwarding is checked textually in the unit tests.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { haproxyTestConfig, twoServers } from '../helpers/haproxy-config.js';
import { optionsFromConfig, type HaproxyOverrides } from '../../appliance/haproxy-options.js';
import { renderHaproxy } from '../../haproxy/render.js';
import { installedHaproxyVersion } from '../../haproxy/variant.js';

const version = installedHaproxyVersion();
if (!version) {
  t.comment('no haproxy on PATH (bin/setup installs it)');
  t.fail('haproxy is required for this test');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const config = (proxyProtocol: boolean) => haproxyTestConfig({ proxyProtocol, agentPort: 8444 });
  const servers = twoServers;
  const variants: Array<[string, boolean, HaproxyOverrides]> = [
    ['production, accept-proxy', true, { servers }],
    ['production, no accept-proxy', true, { servers, acceptProxy: false }],
    ['no PROXY v2 to the Node instances', false, { servers }],
    ['several SNI routes', true, { servers, sni: [{ hostname: 'store2.example.com' }, { hostname: 'store3.example.com', backend: 'be_store3' }, { hostname: 'alias.example.com', backend: 'be_store3' }] }],
    ['IPv6 listeners and servers', true, { servers: [{ name: 'n6', address: 'fd00::10', port: 8443 }], bind: { address: '::', port: 443 } }],
    ['verified health checks', true, { servers, checkCaFile: '/etc/ssl/certs/ca-certificates.crt' }],
    ['unprivileged demo', true, { unprivileged: true, runDir: dir, acceptProxy: false, bind: { address: '127.0.0.1', port: 18443 }, monitor: { port: 18405 } }],
  ];

  for (const [name, proxyProtocol, overrides] of variants) {
    t.test(name, async (t) => {
      const r = renderHaproxy(optionsFromConfig(config(proxyProtocol), overrides));
      t.equal(r.variant, '2.6');
      const file = join(dir, `${name.replace(/\W+/g, '-')}.cfg`);
      writeFileSync(file, r.text);
      const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 15_000 });
      const output = `${check.stdout}${check.stderr}`;
      t.equal(check.status, 0, `haproxy ${version} -c accepts it`);
      t.match(output, /Configuration file is valid/);
      t.notMatch(output, /\[(WARNING|ALERT)\]/, 'no warnings either');
    });
  }

  t.test('haproxy -c does catch a broken rendering (the check is real)', async (t) => {
    const r = renderHaproxy(optionsFromConfig(config(true), { servers }));
    const file = join(dir, 'broken.cfg');
    writeFileSync(file, r.text.replace('http-check expect rstring', 'http-check expect rstringg'));
    const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 15_000 });
    t.not(check.status, 0);
  });
}
