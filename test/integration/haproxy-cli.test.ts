// `xks haproxy render | lint | keepalived` through the built CLI (bin/xks runs dist/).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const root = new URL('../..', import.meta.url).pathname;
const vendor = join(root, 'test/fixtures/haproxy/vendor-guide.cfg');

function xks(...args: string[]) {
  // As an operator runs it: tap puts its loaders back into NODE_OPTIONS of every child it
  // spawns, and they cannot load the extension-less ES module bin/xks; env drops them.
  const r = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, join(root, 'bin/xks'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'haproxy-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// A loadable appliance configuration: the loader checks files and their modes.
writeFileSync(join(dir, 'creds.yaml'), 'credentials:\n  - accessKeyId: ABCDEFGHIJKLMNOPQRST\n    secretAccessKey: Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5\n');
writeFileSync(join(dir, 'key.pem'), '');
writeFileSync(join(dir, 'cert.pem'), '');
chmodSync(join(dir, 'creds.yaml'), 0o600);
chmodSync(join(dir, 'key.pem'), 0o600);
const configFile = join(dir, 'xks.yaml');
writeFileSync(
  configFile,
  `proxy: { hostname: xks.example.com }
server:
  port: 8443
  tls: { certFile: cert.pem, keyFile: key.pem }
  proxyProtocol: { enabled: true }
health: { path: /healthz, agentPort: 8444 }
hsm:
  nodes: [{ id: hsm-1, module: /usr/lib/softhsm/libsofthsm2.so, tokenLabel: t, pin: { env: XKS_PIN } }]
keyStores:
  - { name: store1, uriPathPrefix: /store1, credentialsFile: creds.yaml }
`,
);
const servers = ['--server', 'node1=10.0.1.10:8443', '--server', 'node2=10.0.1.11:8443'];

t.test('lint: the vendor-guide configuration fails, with every finding and its fix', async (t) => {
  const human = xks('haproxy', 'lint', vendor);
  t.equal(human.code, 1);
  for (const id of ['timeout-below-nlb-idle', 'admin-socket-exposed', 'stats-page-exposed', 'tcp-check-only', 'no-proxy-protocol', 'tls-terminated', 'single-server']) {
    t.match(human.stdout, new RegExp(`\\[${id}\\]`), id);
  }
  t.match(human.stdout, /^ {4}fix: /m);

  const json = xks('haproxy', 'lint', vendor, '--json');
  t.equal(json.code, 1);
  const report = JSON.parse(json.stdout) as { findings: Array<{ id: string; severity: string; line: number; fix: string }> };
  t.ok(report.findings.length >= 7);
  t.ok(report.findings.every((f) => f.line > 0 && f.fix && ['error', 'warning', 'info'].includes(f.severity)));

  const missing = xks('haproxy', 'lint', join(dir, 'nope.cfg'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nope\.cfg: no such file/);
  t.notMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});

t.test('render --out: writes, checks with haproxy -c, says which variant and why; lint finds nothing', async (t) => {
  const out = join(dir, 'out26');
  const r = xks('haproxy', 'render', '--config', configFile, '--out', out, ...servers, '--sni', 'store2.example.com');
  t.equal(r.code, 0, r.stderr);
  const file = join(out, 'haproxy.cfg');
  t.match(r.stdout, `Rendered ${file} for HAProxy 2.6`);
  t.match(r.stdout, /chosen because the haproxy on PATH is 2\.6\.\d+, older than 2\.9/);
  t.match(r.stdout, /haproxy 2\.6\.\d+ -c: configuration is valid/);
  t.match(readFileSync(file, 'utf8'), /use_backend be_store2_example_com if \{ req\.ssl_sni -i store2\.example\.com \}/);

  const lint = xks('haproxy', 'lint', file);
  t.equal(lint.code, 0);
  t.equal(lint.stdout, `${file}: no findings\n`);
});

t.test('render --out: a configuration haproxy rejects never replaces the current one', async (t) => {
  const out = join(dir, 'rejected');
  t.equal(xks('haproxy', 'render', '--config', configFile, '--out', out, ...servers).code, 0);
  const before = readFileSync(join(out, 'haproxy.cfg'), 'utf8');
  const r = xks('haproxy', 'render', '--config', configFile, '--out', out, ...servers, '--check-ca', join(dir, 'no-such-ca.pem'));
  t.equal(r.code, 1);
  t.match(r.stderr, /rejects the rendered configuration \(left in .*haproxy\.cfg\.new; .*haproxy\.cfg is unchanged\)/);
  t.match(r.stderr, /no-such-ca\.pem/, 'with haproxy\'s reason');
  t.equal(readFileSync(join(out, 'haproxy.cfg'), 'utf8'), before);
  t.match(readFileSync(join(out, 'haproxy.cfg.new'), 'utf8'), /ca-file .*no-such-ca\.pem/);
});

t.test('render --variant 2.9: rendered, and the output says the installed 2.6 cannot check it', async (t) => {
  const out = join(dir, 'out29');
  const r = xks('haproxy', 'render', '--config', configFile, '--out', out, '--variant', '2.9', ...servers);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /for HAProxy 2\.9\+/);
  t.match(r.stdout, /not checked: the haproxy on PATH is 2\.6\.\d+, which cannot load the 2\.9 variant/);
  const cfg = readFileSync(join(out, 'haproxy.cfg'), 'utf8');
  t.match(cfg, /set-proxy-v2-tlv-fmt\(0xEA\) %\[fc_pp_tlv\(0xEA\)\]/);
  // No 2.9 haproxy here to load it: check the text against the 2.6 variant, which haproxy -c did
  // load. The two must differ exactly in forwarding the VPC endpoint TLV.
  const out26 = join(dir, 'out26-compare');
  t.equal(xks('haproxy', 'render', '--config', configFile, '--out', out26, '--variant', '2.6', ...servers).code, 0);
  const cfg26 = readFileSync(join(out26, 'haproxy.cfg'), 'utf8');
  t.notMatch(cfg26, /fc_pp_tlv|set-proxy-v2-tlv-fmt/, 'the 2.6 variant has no TLV forwarding (2.6 cannot parse it)');
  const TLV = ' set-proxy-v2-tlv-fmt(0xEA) %[fc_pp_tlv(0xEA)]';
  t.ok(cfg.includes(TLV), 'the 2.9 variant forwards the NLB’s VPC endpoint TLV');
  const body = (text: string) => text.split('\n').filter((l) => !l.trim().startsWith('#') && !/for HAProxy|variant/i.test(l)).join('\n');
  t.equal(body(cfg.split(TLV).join('')), body(cfg26), 'without the TLV forwarding the 2.9 variant is the 2.6 one, line for line');
  t.match(cfg, /send-proxy-v2/, 'and still sends PROXY v2 to the Node instances');
  t.match(cfg, /^\s*mode tcp$/m, 'TCP passthrough, like 2.6');
});

t.test('render without --out: configuration on stdout, notes on stderr', async (t) => {
  const r = xks('haproxy', 'render', '--config', configFile, '--unprivileged', '--run-dir', dir, '--bind', '127.0.0.1:18443', '--monitor', '127.0.0.1:18405', '--no-accept-proxy');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^global\n {4}log stderr format raw local0\n {4}stats socket .*haproxy-admin\.sock mode 600/m);
  t.match(r.stdout, /bind 127\.0\.0\.1:18443\n/);
  t.match(r.stderr, /^note: HAProxy 2\.6 variant/m);
  t.notMatch(r.stdout, /^note:/m);
});

t.test('render: operator errors are one line, no stack', async (t) => {
  const bind = xks('haproxy', 'render', '--config', configFile, '--bind', '10.0.0.1');
  t.not(bind.code, 0);
  t.match(bind.stderr, /--bind 10\.0\.0\.1: give ADDRESS:PORT/);
  const sni = xks('haproxy', 'render', '--config', configFile, '--sni', 'bad host');
  t.not(sni.code, 0);
  t.match(sni.stderr, /"bad host" .* is not a DNS host name/);
  const noConfig = xks('haproxy', 'render', '--config', join(dir, 'missing.yaml'));
  t.not(noConfig.code, 0);
  t.match(noConfig.stderr, /missing\.yaml: no such file/);
  for (const r of [bind, sni, noConfig]) t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

t.test('keepalived --out: one file per peer', async (t) => {
  const out = join(dir, 'keepalived');
  const r = xks('haproxy', 'keepalived', '--interface', 'eth0', '--vip', '10.0.0.10/24', '--peer', 'haproxy-a=10.0.0.11', '--peer', 'haproxy-b=10.0.0.12', '--out', out);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /both HAProxy addresses as IP targets/);
  const a = readFileSync(join(out, 'keepalived-haproxy-a.conf'), 'utf8');
  const b = readFileSync(join(out, 'keepalived-haproxy-b.conf'), 'utf8');
  t.match(a, /unicast_src_ip 10\.0\.0\.11/);
  t.match(b, /unicast_src_ip 10\.0\.0\.12/);

  const bad = xks('haproxy', 'keepalived', '--interface', 'eth0', '--vip', '10.0.0.10', '--peer', 'a=10.0.0.11', '--peer', 'b=10.0.0.12');
  t.not(bad.code, 0);
  t.match(bad.stderr, /prefix length/);

  // keepalived is part of the toolchain (bin/setup installs it): its own check must pass.
  const keepalived = ['/usr/sbin/keepalived', '/sbin/keepalived'].find((p) => existsSync(p));
  if (!keepalived) {
    t.fail('keepalived is not installed: run bin/setup (apt-get install keepalived); its configuration check cannot be skipped');
    return;
  }
  for (const file of ['keepalived-haproxy-a.conf', 'keepalived-haproxy-b.conf']) {
    const check = spawnSync(keepalived, ['-t', '-f', join(out, file)], { encoding: 'utf8', timeout: 15_000 });
    t.equal(`${check.stdout}${check.stderr}`, '', `keepalived -t reports nothing wrong in ${file}`);
  }
  writeFileSync(join(out, 'broken.conf'), a.replace('virtual_router_id 51', 'virtual_router_id 300'));
  const broken = spawnSync(keepalived, ['-t', '-f', join(out, 'broken.conf')], { encoding: 'utf8', timeout: 15_000 });
  t.match(`${broken.stdout}${broken.stderr}`, /outside range/, 'and the check does catch errors');
});
