// renderKeepalived: a VRRP pair over unicast that tracks HAProxy's monitor.
import t from 'tap';
import { renderKeepalived, type KeepalivedOptions } from '../../haproxy/keepalived.js';

const options: KeepalivedOptions = {
  interface: 'eth0',
  vip: '10.0.0.10/24',
  virtualRouterId: 51,
  peers: [
    { name: 'haproxy-a', address: '10.0.0.11' },
    { name: 'haproxy-b', address: '10.0.0.12' },
  ],
  monitorUrl: 'http://127.0.0.1:8405/healthz',
  monitorAcceptsProxy: true,
};

/** The value after a keyword on its own line ("priority 110" -> "110"). */
const value = (text: string, key: string) => new RegExp(`^\\s*${key} (.+)$`, 'm').exec(text)?.[1];

/** The lines inside `name { ... }`. */
function block(text: string, name: string): string[] {
  const m = new RegExp(`${name} \\{\\n([\\s\\S]*?)\\n\\s*\\}`).exec(text);
  return (m?.[1] ?? '').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

t.test('one configuration per peer, each pointing at the other', async (t) => {
  const [a, b] = renderKeepalived(options);
  t.equal(a!.peer, 'haproxy-a');
  t.equal(b!.peer, 'haproxy-b');
  t.equal(value(a!.text, 'unicast_src_ip'), '10.0.0.11');
  t.same(block(a!.text, 'unicast_peer'), ['10.0.0.12']);
  t.equal(value(b!.text, 'unicast_src_ip'), '10.0.0.12');
  t.same(block(b!.text, 'unicast_peer'), ['10.0.0.11']);
  for (const r of [a!, b!]) {
    t.same(block(r.text, 'virtual_ipaddress'), ['10.0.0.10/24 dev eth0']);
    t.equal(value(r.text, 'virtual_router_id'), '51');
    t.equal(value(r.text, 'state'), 'BACKUP', 'the election decides, not the start order');
    t.same(block(r.text, 'track_script'), ['chk_haproxy_monitor']);
    t.match(r.text, /script "\/usr\/bin\/curl -fsS -o \/dev\/null --max-time 1 --haproxy-protocol http:\/\/127\.0\.0\.1:8405\/healthz"/, 'the monitor takes PROXY headers like the NLB sends');
    t.match(r.text, /enable_script_security/);
  }
});

t.test('without PROXY v2 on the monitor, the probe sends none', async (t) => {
  const [a] = renderKeepalived({ ...options, monitorAcceptsProxy: false });
  t.match(a!.text, /--max-time 1 http:\/\/127\.0\.0\.1:8405\/healthz"/);
});

t.test('a failing monitor moves the address to the peer, and both failing keeps it somewhere', async (t) => {
  const [a, b] = renderKeepalived(options);
  const pa = Number(value(a!.text, 'priority'));
  const pb = Number(value(b!.text, 'priority'));
  const weight = Number(value(a!.text, 'weight'));
  t.ok(pa > pb, 'the first peer is preferred');
  t.ok(pa + weight < pb, 'a failing monitor on the first drops it below the second');
  t.ok(pa + weight > pb + weight, 'both failing: the first still holds the address');
  t.notMatch(a!.text, /nopreempt/, 'preemption must stay on for the weight to move the address');
  t.ok(Number(value(a!.text, 'preempt_delay')) > 0, 'but not at once');
});

t.test('validation', async (t) => {
  const bad = (patch: Partial<KeepalivedOptions>, re: RegExp) => t.throws(() => renderKeepalived({ ...options, ...patch }), re);
  bad({ vip: '10.0.0.10' }, /prefix length/);
  bad({ vip: '10.0.0.300/24' }, /prefix length/);
  bad({ interface: 'eth0; rm -rf /' }, /interface/);
  bad({ virtualRouterId: 0 }, /1-255/);
  bad({ peers: [options.peers[0]!] }, /exactly two/);
  bad({ peers: [options.peers[0]!, { name: 'x', address: '10.0.0.11' }] }, /different addresses/);
  bad({ peers: [options.peers[0]!, { name: 'x', address: 'fd00::1' }] }, /must both be IPv4 or both IPv6/);
  bad({ peers: [options.peers[0]!, { name: 'x', address: '10.0.0.10' }] }, /vip as its own address/);
  bad({ monitorUrl: 'http://127.0.0.1:8405/x"; reboot; "' }, /plain http/);
  bad({ monitorUrl: 'https://127.0.0.1:8405/healthz' }, /plain http/);
});
