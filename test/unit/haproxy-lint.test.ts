// lintHaproxy: flags each weakness of a vendor-guide style configuration, nothing in ours.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { haproxyTestConfig, twoServers } from '../helpers/haproxy-config.js';
import { optionsFromConfig, type HaproxyOverrides } from '../../appliance/haproxy-options.js';
import { formatFindings, lintExitCode, lintHaproxy, type LintFinding } from '../../haproxy/lint.js';
import { renderHaproxy } from '../../haproxy/render.js';

const vendor = readFileSync(new URL('../fixtures/haproxy/vendor-guide.cfg', import.meta.url), 'utf8');

const config = haproxyTestConfig({ agentPort: 8444 });
const servers = twoServers;
const rendered = (o: HaproxyOverrides = {}) => renderHaproxy(optionsFromConfig(config, { servers, ...o })).text;

const ids = (f: LintFinding[]) => f.map((x) => x.id);
const only = (f: LintFinding[], id: string) => f.filter((x) => x.id === id);

t.test('the vendor-guide configuration: every listed weakness, at its line', async (t) => {
  const findings = lintHaproxy(vendor);
  const lineOf = (needle: string) => vendor.split('\n').findIndex((l) => l.includes(needle)) + 1;

  const timeouts = only(findings, 'timeout-below-nlb-idle');
  t.same(timeouts.map((f) => f.line).sort(), [lineOf('timeout client 10s'), lineOf('timeout server 10s')], 'timeout client and server 10s');
  t.ok(timeouts.every((f) => f.severity === 'warning' && /350s/.test(f.message) && /390s/.test(f.fix)));

  const socket = only(findings, 'admin-socket-exposed');
  t.equal(socket.length, 1);
  t.equal(socket[0]!.line, lineOf('mode 666'));
  t.equal(socket[0]!.severity, 'error');
  t.match(socket[0]!.fix, /mode 660/);

  const stats = only(findings, 'stats-page-exposed');
  t.equal(stats.length, 1);
  t.equal(stats[0]!.line, lineOf('bind *:8404'));
  t.equal(stats[0]!.section, 'listen stats');

  t.equal(only(findings, 'tcp-check-only')[0]?.line, lineOf('server xks1'), 'plain TCP check');
  t.equal(only(findings, 'no-proxy-protocol')[0]?.line, lineOf('server xks1'), 'no PROXY protocol');
  t.equal(only(findings, 'tls-terminated')[0]?.line, lineOf('ssl crt'), 'TLS terminated in HAProxy');
  t.equal(only(findings, 'tls-terminated')[0]?.severity, 'error');
  t.equal(only(findings, 'single-server')[0]?.line, lineOf('server xks1'), 'one backend server');

  for (const f of findings) {
    t.ok(f.fix.length > 0 && f.message.length > 0, `${f.id} says what is wrong and how to fix it`);
  }
  t.notOk(ids(findings).includes('http-mode'), 'TLS termination is reported once, not again as http mode');
  t.equal(lintExitCode(findings), 1);
});

t.test('our rendered configurations: no findings at all', async (t) => {
  const variants: Array<[string, HaproxyOverrides]> = [
    ['2.6, accept-proxy', {}],
    ['2.9', { variant: '2.9' }],
    ['several SNI routes', { sni: [{ hostname: 'store2.example.com' }, { hostname: 'store3.example.com', backend: 'be_store3' }] }],
    ['unprivileged', { unprivileged: true, runDir: '/tmp/xks/haproxy', bind: { address: '127.0.0.1', port: 18443 }, monitor: { port: 18405 } }],
    ['verified checks', { checkCaFile: '/etc/haproxy/ca.pem' }],
  ];
  for (const [name, o] of variants) t.same(lintHaproxy(rendered(o)), [], name);

  // Without PROXY v2 from the NLB only a note remains: whether the NLB sends it is not in the file.
  const plain = lintHaproxy(rendered({ acceptProxy: false }));
  t.same(ids(plain), ['no-accept-proxy']);
  t.equal(plain[0]!.severity, 'info');
  t.equal(lintExitCode(plain), 0);
});

t.test('timeouts: inheritance, tunnel, and the NLB idle timeout given', async (t) => {
  const tcp = (defaults: string, backend = '') => `
defaults
    mode tcp
${defaults}
frontend f
    bind :443
    default_backend b
backend b
${backend}
    server a 10.0.0.1:443 check
    server b 10.0.0.2:443 check
`;
  t.same(ids(lintHaproxy(tcp('    timeout client 10s\n    timeout server 10s\n    timeout tunnel 1h'))).filter((i) => i.startsWith('timeout')), [], 'a long tunnel timeout covers TCP connections');
  const shortTunnel = only(lintHaproxy(tcp('    timeout client 1h\n    timeout server 1h\n    timeout tunnel 60s')), 'timeout-below-nlb-idle');
  t.same(shortTunnel.map((f) => f.message.slice(0, 18)), ['timeout tunnel 60s']);
  const overridden = only(lintHaproxy(tcp('    timeout client 10s\n    timeout server 10s', '    timeout server 400s')), 'timeout-below-nlb-idle');
  t.same(overridden.map((f) => f.message.slice(0, 18)), ['timeout client 10s'], 'the backend\'s own timeout server wins over defaults');
  t.same(only(lintHaproxy(tcp('    timeout client 400000\n    timeout server 400000')), 'timeout-below-nlb-idle'), [], 'bare numbers are milliseconds');
  t.equal(only(lintHaproxy(tcp('    timeout client 400s\n    timeout server 400s'), { nlbIdleTimeoutMs: 600_000 }), 'timeout-below-nlb-idle').length, 2, 'an NLB idle timeout raised to 600 s');

  const named = `
defaults short
    timeout client 10s
    timeout server 10s
defaults long
    timeout client 400s
    timeout server 400s
frontend f from short
    bind :443
    default_backend b
backend b from long
    server a 10.0.0.1:443
`;
  const byName = only(lintHaproxy(named), 'timeout-below-nlb-idle');
  t.same(byName.map((f) => [f.line, f.section]), [[3, 'defaults short']], '`from` picks the named defaults; the finding points at the line that sets it');
});

t.test('frontend rules', async (t) => {
  const noDelay = lintHaproxy(`
frontend f
    mode tcp
    bind :443 accept-proxy
    use_backend b if { req.ssl_sni -i xks.example.com }
    default_backend b
backend b
    server a 10.0.0.1:443
`);
  t.equal(only(noDelay, 'sni-without-inspect-delay')[0]?.line, 5);
  t.equal(only(noDelay, 'sni-without-inspect-delay')[0]?.severity, 'error');
  t.same(only(noDelay, 'no-accept-proxy'), [], 'accept-proxy present');

  const http = lintHaproxy(`
defaults
    mode http
frontend f
    bind :443
    default_backend b
backend b
    server a 10.0.0.1:443
`);
  t.equal(only(http, 'http-mode')[0]?.line, 3, 'mode http inherited from defaults, reported where it is set');
});

t.test('a monitor must take the PROXY header the NLB sends with its health checks', async (t) => {
  const cfg = (monitorBind: string) => `
frontend f
    bind :443 accept-proxy
    default_backend b
frontend m
    mode http
    bind ${monitorBind}
    monitor-uri /healthz
backend b
    server a 10.0.0.1:443
`;
  const plain = only(lintHaproxy(cfg(':8405')), 'monitor-without-accept-proxy');
  t.equal(plain[0]?.line, 7);
  t.equal(plain[0]?.severity, 'warning');
  t.same(only(lintHaproxy(cfg(':8405 accept-proxy')), 'monitor-without-accept-proxy'), []);
  t.same(only(lintHaproxy(cfg(':8405').replace(' accept-proxy', '')), 'monitor-without-accept-proxy'), [], 'no PROXY from the NLB, none expected');
});

t.test('backend rules', async (t) => {
  const cfg = (servers: string, extra = '') => `
frontend f
    bind :443 accept-proxy
    default_backend b
backend b
    option httpchk
${extra}
${servers}
`;
  const clear = lintHaproxy(cfg('    server a 10.0.0.1:443 check send-proxy-v2\n    server b 10.0.0.2:443 check send-proxy-v2'));
  t.equal(only(clear, 'check-without-tls')[0]?.severity, 'error', 'HTTP check in clear text to the TLS port');
  const otherPort = lintHaproxy(cfg('    server a 10.0.0.1:443 check port 8080 send-proxy-v2\n    server b 10.0.0.2:443 check port 8080 send-proxy-v2'));
  t.same(only(otherPort, 'check-without-tls'), [], 'a plain HTTP health port is fine');

  const none = lintHaproxy(cfg('    server a 10.0.0.1:443\n    server b 10.0.0.2:443'));
  t.equal(only(none, 'no-health-check')[0]?.line, 8);
  const disabled = lintHaproxy(cfg('    server a 10.0.0.1:443 no-check\n    server b 10.0.0.2:443', '    default-server check check-ssl verify none send-proxy-v2'));
  t.equal(only(disabled, 'no-health-check')[0]?.line, 8, 'no-check on the server line beats default-server check');

  const v1 = lintHaproxy(cfg('    server a 10.0.0.1:443 send-proxy\n    server b 10.0.0.2:443 send-proxy'));
  t.same(ids(v1).filter((i) => i.includes('proxy-protocol')), ['proxy-protocol-v1']);

  const template = lintHaproxy(cfg('    server-template node 1-3 xks.internal:443 check check-ssl verify none send-proxy-v2 on-marked-down shutdown-sessions'));
  t.same(only(template, 'single-server'), [], 'server-template stands for three servers');

  const inherited = lintHaproxy(`
defaults
    mode tcp
    option httpchk
    default-server check check-ssl verify none send-proxy-v2 on-marked-down shutdown-sessions
frontend f
    bind :443 accept-proxy
    default_backend b
backend b
    server a 10.0.0.1:443
    server b 10.0.0.2:443
frontend m
    mode http
    bind :8405 accept-proxy
    monitor-uri /healthz
`);
  t.same(inherited, [], 'option httpchk and default-server from defaults count');

  const noOption = lintHaproxy(`
defaults
    option httpchk
frontend f
    bind :443
    default_backend b
backend b
    no option httpchk
    server a 10.0.0.1:443 check
`);
  t.equal(only(noOption, 'tcp-check-only').length, 1, '`no option httpchk` turns it off again');
});

t.test('admin socket and stats page', async (t) => {
  const socket = (line: string) => only(lintHaproxy(`global\n    ${line}\n`), 'admin-socket-exposed');
  t.equal(socket('stats socket ipv4@0.0.0.0:9999 level admin').length, 1, 'TCP runtime API');
  t.equal(socket('stats socket 127.0.0.1:9999 level admin').length, 1);
  t.equal(socket('stats socket /run/haproxy/admin.sock mode 606 level admin').length, 1, 'others may connect');
  t.same(socket('stats socket /run/haproxy/admin.sock mode 660 level admin'), []);
  t.same(socket('stats socket /run/haproxy/admin.sock level admin'), [], 'default mode follows the umask');

  const stats = (bind: string, extra = '') => only(lintHaproxy(`listen stats\n    mode http\n    bind ${bind}\n    stats enable\n${extra}`), 'stats-page-exposed');
  t.equal(stats(':8404').length, 1);
  t.equal(stats('0.0.0.0:8404').length, 1);
  t.equal(stats('[::]:8404').length, 1);
  t.equal(stats('ipv4@*:8404')[0]?.severity, 'warning');
  t.equal(stats('*:8404', '    stats admin if TRUE\n')[0]?.severity, 'error', 'an admin stats page can disable servers');
  t.same(stats('127.0.0.1:8404'), [], 'loopback only');
  t.same(stats('*:8404', '    stats auth ops:secret\n'), [], 'with authentication');
  t.same(stats('*:8404', '    http-request auth unless { http_auth(ops) }\n'), [], 'with http-request auth');
});

t.test('output formats', async (t) => {
  const findings = lintHaproxy(vendor);
  const text = formatFindings('vendor-guide.cfg', findings);
  t.match(text, /^vendor-guide\.cfg:5: error \[admin-socket-exposed\] \(global\) /m);
  t.match(text, /^ {4}fix: /m);
  t.match(text, /2 error\(s\), 6 warning\(s\), 3 note\(s\)\n$/);
  t.equal(formatFindings('ours.cfg', []), 'ours.cfg: no findings\n');
  t.equal(lintExitCode([]), 0);
});

t.test('the parser: quotes, escapes, comments', async (t) => {
  const { splitWords } = await import('../../haproxy/cfg-parse.js');
  t.same(splitWords('  log-format "%ci:%cp sni=%[var(sess.sni)]" # comment'), ['log-format', '%ci:%cp sni=%[var(sess.sni)]']);
  t.same(splitWords("stats auth 'a b':c\\ d"), ['stats', 'auth', 'a b:c d']);
  t.same(splitWords('# only a comment'), []);
  t.same(splitWords('bind :443 ""'), ['bind', ':443', '']);
});
