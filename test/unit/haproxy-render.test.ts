// renderHaproxy / optionsFromConfig: what the rendered haproxy.cfg must hold for XKS traffic.
// (haproxy -c on these outputs runs in test/integration/haproxy-check.test.ts.)
import t from 'tap';
import type { Config } from '../../appliance/config/schema.js';
import { haproxyTestConfig, twoServers } from '../helpers/haproxy-config.js';
import { backendNameFor, optionsFromConfig, type HaproxyOverrides } from '../../appliance/haproxy-options.js';
import { lintHaproxy } from '../../haproxy/lint.js';
import { renderHaproxy } from '../../haproxy/render.js';

const config = haproxyTestConfig;

const render = (c: Config, o: HaproxyOverrides = {}) => renderHaproxy(optionsFromConfig(c, { servers: twoServers, ...o }));

/** The lines of one section, without indentation. */
function sectionLines(text: string, header: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(header);
  if (start < 0) throw new Error(`no section "${header}"`);
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith('    ')) break;
    out.push(l.trim());
  }
  return out;
}

t.test('timeouts outlast the NLB idle timeout and the Node keep-alive', async (t) => {
  const d = sectionLines(render(config()).text, 'defaults');
  t.ok(d.includes('mode tcp'));
  for (const k of ['client', 'server', 'tunnel']) t.ok(d.includes(`timeout ${k} 390s`), `timeout ${k} = keep-alive 360 s + 30 s`);
  t.ok(d.includes('timeout connect 1s'));

  const long = sectionLines(render(config({ keepAliveTimeoutMs: 900_000 })).text, 'defaults');
  t.ok(long.includes('timeout client 930s'), 'follows a longer keep-alive');
  const nlb = sectionLines(render(config(), { nlbIdleTimeoutMs: 1_200_000 }).text, 'defaults');
  t.ok(nlb.includes('timeout server 1230s'), 'follows a longer NLB idle timeout');

  const short = render(config({ keepAliveTimeoutMs: 5000 }));
  t.ok(sectionLines(short.text, 'defaults').includes('timeout tunnel 380s'), 'never below the NLB default even with a short keep-alive');
});

t.test('TCP frontend: ClientHello inspection, SNI routing, PROXY from the NLB', async (t) => {
  const r = render(config(), { sni: [{ hostname: 'store2.example.com' }, { hostname: 'alias.example.com', backend: backendNameFor('xks.example.com') }] });
  const f = sectionLines(r.text, 'frontend xks_tls');
  t.ok(f.includes('bind 0.0.0.0:443 accept-proxy'));
  t.ok(f.includes('tcp-request inspect-delay 5s'));
  t.ok(f.includes('tcp-request content accept if { req.ssl_hello_type 1 }'));
  t.ok(f.includes('tcp-request content reject'), 'anything but a ClientHello is dropped');
  t.ok(f.indexOf('tcp-request content accept if { req.ssl_hello_type 1 }') < f.indexOf('tcp-request content reject'));
  t.ok(f.includes('use_backend be_xks_example_com if { req.ssl_sni -i xks.example.com alias.example.com }'));
  t.ok(f.includes('use_backend be_store2_example_com if { req.ssl_sni -i store2.example.com }'));
  t.ok(f.includes('default_backend be_xks_example_com'), 'proxy.hostname\'s backend is the default');
  t.notOk(r.text.includes(' ssl crt'), 'TLS is never terminated');

  const plain = sectionLines(render(config(), { acceptProxy: false }).text, 'frontend xks_tls');
  t.ok(plain.includes('bind 0.0.0.0:443'), 'no accept-proxy when the NLB sends none');
  const v6 = sectionLines(render(config(), { bind: { address: '::', port: 443 } }).text, 'frontend xks_tls');
  t.ok(v6.includes('bind [::]:443 accept-proxy'));
});

t.test('backends: TLS health check on the health path, agent-check, PROXY v2 to the Node instances', async (t) => {
  const r = render(config({ agentPort: 8444 }), { sni: [{ hostname: 'store2.example.com' }] });
  const b = sectionLines(r.text, 'backend be_store2_example_com');
  t.ok(b.includes('option httpchk'));
  t.ok(b.includes('http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host store2.example.com'), 'Host is the backend\'s host name');
  const expect = b.find((l) => l.startsWith('http-check expect rstring '));
  t.ok(expect, 'the check reads the health body');
  // HAProxy's quoting: the argument is one double-quoted word with \" inside.
  const regex = new RegExp(JSON.parse(expect!.slice('http-check expect rstring '.length)) as string);
  t.ok(regex.test('{"status":"ok"}'), 'an instance that can serve passes');
  t.ok(regex.test('{"status":"draining"}'), 'a draining instance passes: the agent drains it, no shutdown-sessions mid-drain');
  t.notOk(regex.test('{"status":"unavailable"}'), 'an instance without an HSM node fails');
  const ds = b.find((l) => l.startsWith('default-server '))!;
  for (const w of ['check', 'check-ssl', 'verify none', 'check-sni store2.example.com', 'inter 2s', 'fall 3', 'rise 2', 'on-marked-down shutdown-sessions', 'send-proxy-v2']) {
    t.ok(ds.includes(` ${w}`), `default-server has ${w}`);
  }
  t.ok(b.includes('server node1 10.0.1.10:8443 agent-check agent-port 8444 agent-inter 2s'));
  t.ok(b.includes('server node2 10.0.1.11:8443 agent-check agent-port 8444 agent-inter 2s'));

  const noAgent = sectionLines(render(config()).text, 'backend be_xks_example_com');
  t.ok(noAgent.includes('server node1 10.0.1.10:8443'), 'no agent-check without health.agentPort');
  const noPp = render(config({ proxyProtocol: false }));
  t.notOk(noPp.text.includes('send-proxy'), 'no PROXY header to a Node listener that does not expect one');
  t.match(noPp.notes.join('\n'), /receive no PROXY header/);

  const verified = sectionLines(render(config(), { checkCaFile: '/etc/haproxy/xks-ca.pem' }).text, 'backend be_xks_example_com');
  t.match(verified.join('\n'), /check-ssl verify required ca-file \/etc\/haproxy\/xks-ca.pem verifyhost xks.example.com check-sni xks.example.com/);
});

t.test('default Node server comes from the configuration', async (t) => {
  const wildcard = renderHaproxy(optionsFromConfig(config()));
  t.ok(sectionLines(wildcard.text, 'backend be_xks_example_com').includes('server node1 127.0.0.1:8443'), '0.0.0.0 becomes loopback');
  t.match(wildcard.notes.join('\n'), /has one server/);
  const fixed = renderHaproxy(optionsFromConfig(config({ host: '10.0.1.10' })));
  t.ok(sectionLines(fixed.text, 'backend be_xks_example_com').includes('server node1 10.0.1.10:8443'));
});

t.test('monitor: HTTP frontend on its own port, 503 when any backend has no server', async (t) => {
  const r = render(config(), { sni: [{ hostname: 'store2.example.com' }], monitor: { port: 9000, uri: '/lb-health' } });
  const m = sectionLines(r.text, 'frontend xks_monitor');
  t.ok(m.includes('mode http'));
  t.ok(m.includes('bind 0.0.0.0:9000 accept-proxy'), 'NLB health checks carry the PROXY header too');
  t.ok(m.includes('monitor-uri /lb-health'));
  t.ok(m.includes('monitor fail if { nbsrv(be_xks_example_com) lt 1 } || { nbsrv(be_store2_example_com) lt 1 }'));
  t.match(r.notes.join('\n'), /NLB health check: HTTP, port 9000, path \/lb-health/);
  const dflt = sectionLines(render(config()).text, 'frontend xks_monitor');
  t.ok(dflt.includes('bind 0.0.0.0:8405 accept-proxy') && dflt.includes('monitor-uri /healthz'), 'default: port 8405, the health path');
  const plain = sectionLines(render(config(), { acceptProxy: false }).text, 'frontend xks_monitor');
  t.ok(plain.includes('bind 0.0.0.0:8405'), 'no PROXY header expected when the NLB sends none');
});

t.test('privileged and unprivileged global sections', async (t) => {
  const g = sectionLines(render(config()).text, 'global');
  for (const l of ['chroot /var/lib/haproxy', 'user haproxy', 'group haproxy', 'log /dev/log local0', 'maxconn 10000']) t.ok(g.includes(l), l);
  t.ok(g.includes('stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners'));

  const u = render(config(), { unprivileged: true, runDir: '/tmp/xks-demo/haproxy' });
  const ug = sectionLines(u.text, 'global');
  t.notOk(ug.some((l) => /^(chroot|user|group|maxconn|daemon)\b/.test(l)), 'nothing that needs root');
  t.ok(ug.includes('stats socket /tmp/xks-demo/haproxy/haproxy-admin.sock mode 600 level admin'));
  t.ok(ug.includes('log stderr format raw local0'));
  t.match(u.notes.join('\n'), /haproxy -f <file> -db/);
  t.throws(() => optionsFromConfig(config(), { unprivileged: true }), /runDir/);
});

t.test('2.6 and 2.9 variants differ only in forwarding the VPC endpoint TLV', async (t) => {
  const v26 = render(config({ vpce: true }));
  const v29 = render(config({ vpce: true }), { variant: '2.9', variantReason: 'the haproxy on PATH is 3.0.5' });
  t.equal(v26.variant, '2.6');
  t.equal(v29.variant, '2.9');
  t.notOk(v26.text.includes('0xEA'));
  const servers = v29.text.split('\n').filter((l) => l.trim().startsWith('server '));
  t.equal(servers.length, 2);
  t.match(sectionLines(v29.text, 'backend be_xks_example_com').join('\n'), /^default-server .* send-proxy-v2$/m, 'PROXY v2 is on');
  for (const s of servers) t.match(s, / set-proxy-v2-tlv-fmt\(0xEA\) %\[fc_pp_tlv\(0xEA\)\]/);
  t.match(v29.text, /# Variant: HAProxy 2\.9 or later: the haproxy on PATH is 3\.0\.5\./);
  t.match(v29.notes[0]!, /2\.9\+ variant: forwards .*0xEA.*chosen because the haproxy on PATH is 3\.0\.5/);
  t.match(v26.notes[0]!, /2\.6 variant .* not forwarded; chosen because Debian 12 ships HAProxy 2\.6/);
  t.match(v26.notes.join('\n'), /WARNING: a key store allows callers by VPC endpoint id/);
  t.notMatch(v29.notes.join('\n'), /WARNING: a key store/);
  t.match(v29.notes.join('\n'), /without the TLV .* 0xEA = "-"/);

  // Without PROXY v2 on both sides there is no TLV to read or to send.
  const noAccept = render(config({ vpce: true }), { variant: '2.9', acceptProxy: false });
  t.notOk(noAccept.text.includes('set-proxy-v2-tlv-fmt'));
  t.match(noAccept.notes.join('\n'), /WARNING: a key store/);
  t.match(noAccept.notes[0]!, /without PROXY v2 on both sides/);
});

t.test('validation refuses values that would break or inject into haproxy.cfg', async (t) => {
  t.throws(() => render(config(), { sni: [{ hostname: 'evil.example.com }\n    server x 1.2.3.4:443' }] }), /not a DNS host name/);
  t.throws(() => render(config(), { sni: [{ hostname: 'XKS.example.com', backend: 'be_other' }] }), /SNI host name "xks.example.com" appears twice/);
  t.equal(render(config(), { sni: [{ hostname: 'XKS.example.com' }] }).text.match(/use_backend/g)?.length, 1, 'the same host name in any case is one route');
  t.throws(() => render(config(), { servers: [{ name: 'a b', address: '10.0.0.1', port: 443 }] }), /server name/);
  t.throws(() => render(config(), { servers: [{ name: 'n', address: '10.0.0.1#x', port: 443 }] }), /not an address/);
  t.throws(() => render(config(), { servers: [{ name: 'n', address: '10.0.0.1', port: 70000 }] }), /port/);
  t.throws(() => render(config(), { servers: [] }), /at least one server/);
  t.throws(() => render(config(), { monitor: { port: 443 } }), /port of its own/);
  t.throws(() => render(config(), { monitor: { uri: '/x y' } }), /monitor.uri/);
  t.throws(() => render(config(), { unprivileged: true, runDir: '/tmp/with space' }), /statsSocket/);
  t.throws(() => render(config(), { check: { fall: 0 } }), /check.fall/);
  const o = optionsFromConfig(config(), { servers: twoServers });
  t.throws(() => renderHaproxy({ ...o, defaultBackend: 'nope' }), /defaultBackend/);
  t.throws(() => renderHaproxy({ ...o, variantReason: 'a\nb' }), /one line/);
});

t.test('render and lint agree: render names what lint will report, and nothing else', async (t) => {
  for (const proxyProtocol of [true, false]) {
    for (const servers of [twoServers, twoServers.slice(0, 1)]) {
      const r = renderHaproxy(optionsFromConfig(config({ proxyProtocol }), { servers }));
      const findings = lintHaproxy(r.text).filter((f) => f.severity !== 'info');
      const note = r.notes.at(-1)!;
      const what = `proxy protocol ${proxyProtocol ? 'on' : 'off'}, ${servers.length} server(s)`;
      if (findings.length === 0) t.equal(note, 'xks haproxy lint on this file: no errors or warnings.', what);
      else t.same(note.match(/\[[a-z-]+\]/g), findings.map((f) => `[${f.id}]`), `${what}: ${note}`);
      // The only findings a rendered file can have are the weaknesses it was asked for.
      const expected = [...(servers.length === 1 ? ['single-server'] : []), ...(proxyProtocol ? [] : ['no-proxy-protocol'])].sort();
      t.same(findings.map((f) => f.id).sort(), expected, what);
    }
  }
});

t.test('mTLS on the Node API: checks go to the plain health port, or rendering says to configure one', async (t) => {
  const c = config();
  const mtls = { ...c, server: { ...c.server, tls: { ...c.server.tls, clientAuth: { caFile: '/etc/xks/kms-ca.pem', subjects: ['cks.kms.us-east-1.amazonaws.com'], alertOnReject: true } } } };
  const withPort = { ...mtls, health: { ...mtls.health, httpPort: 8080 } };
  const backend = sectionLines(render(withPort).text, `backend ${backendNameFor('xks.example.com')}`);
  const def = backend.find((l) => l.startsWith('default-server'))!;
  t.notMatch(def, /check-ssl|check-sni/, 'no TLS check: the API port would refuse it without a client certificate');
  t.match(def, /^default-server check /);
  t.same(backend.filter((l) => l.startsWith('server ')).map((l) => l.split(' ').slice(1, 5).join(' ')), ['node1 10.0.1.10:8443 port 8080', 'node2 10.0.1.11:8443 port 8080']);
  t.throws(() => render(mtls), /node1: the Node API requires client certificates .*set health\.httpPort/);
  t.match(sectionLines(render(c).text, `backend ${backendNameFor('xks.example.com')}`).find((l) => l.startsWith('default-server')), /check check-ssl/, 'without mTLS the check stays TLS');
});
