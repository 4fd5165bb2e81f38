// One backend per SNI route: the Node instances, checked the way KMS would find them broken.
import { formatDuration } from '../duration.js';
import { forwardsVpceTlv, hostPort, type HaproxyBackend, type HaproxyRenderOptions, type HaproxyServer } from '../options.js';
import { section } from './text.js';

/** The NLB's VPC endpoint TLV (PP2_TYPE_AWS, subtype 0x01 carries the vpce id). */
const AWS_TLV = '0xEA';

function tlsCheck(o: HaproxyRenderOptions, sni: string): string {
  // With mTLS the API port refuses a client without KMS's certificate, so a TLS check there would
  // mark every server down: the check goes to each server's plain-HTTP health port (`port`), which
  // also means HAProxy sends no PROXY header with it, as that port expects.
  if (o.plainHttpCheck) return 'check';
  // The check runs TLS like KMS does, with the host name KMS uses, so an expired or unloadable
  // certificate fails it too. `verify none` still proves the service answers on its TLS port.
  const verify = o.checkCaFile ? `verify required ca-file ${o.checkCaFile} verifyhost ${sni}` : 'verify none';
  return `check check-ssl ${verify} check-sni ${sni}`;
}

function timing(o: HaproxyRenderOptions): string {
  const c = o.check;
  const d = formatDuration;
  return `inter ${d(c.interMs)} fastinter ${d(c.fastInterMs)} downinter ${d(c.downInterMs)} fall ${c.fall} rise ${c.rise}`;
}

function serverLine(o: HaproxyRenderOptions, s: HaproxyServer): string {
  const words = [`server ${s.name} ${hostPort(s)}`];
  // 2.9+: pass the NLB's VPC endpoint id on to the Node service, whose allowlist needs it.
  if (forwardsVpceTlv(o)) words.push(`set-proxy-v2-tlv-fmt(${AWS_TLV}) %[fc_pp_tlv(${AWS_TLV})]`);
  if (o.plainHttpCheck && s.healthPort !== undefined) words.push(`port ${s.healthPort}`);
  if (s.agentPort !== undefined) words.push(`agent-check agent-port ${s.agentPort} agent-inter ${formatDuration(o.check.agentInterMs)}`);
  return words.join(' ');
}

export function backendSection(o: HaproxyRenderOptions, b: HaproxyBackend): string {
  const host = b.hostnames[0]!;
  return section(`backend ${b.name}`, [
    `# SNI: ${b.hostnames.join(', ')}`,
    // KMS holds few, long-lived connections: spread them by count, not by turns.
    'balance leastconn',
    'option httpchk',
    `http-check send meth GET uri ${o.healthPath} ver HTTP/1.1 hdr Host ${host}`,
    // Passes while the instance can serve ({"status":"ok"}, 200) and while it drains for a graceful
    // stop ({"status":"draining"}, 503, which takes it out of the NLB): HAProxy learns of a drain
    // from the agent-check (weight 0, no new connections), and marking the server down here would
    // cut (shutdown-sessions) the connections the drain is ending one by one between requests.
    // Unavailable (no HSM node), a closed port or a wedged process still fail it.
    'http-check expect rstring "\\"status\\":\\"(ok|draining)\\""',
    // A server marked down drops its connections so KMS reconnects to one that works, instead of
    // waiting for its 250 ms deadline on a connection that goes nowhere.
    [
      'default-server',
      tlsCheck(o, host),
      timing(o),
      'on-marked-down shutdown-sessions',
      // The agent answers a weight in percent of this (fewer HSM nodes ACTIVE: less traffic); on
      // HAProxy's default weight 1 any answer below 100% would round down to 0, a silent drain.
      'weight 100',
      // Health checks then start with a PROXY v2 LOCAL header, as the Node listener expects.
      o.sendProxy && 'send-proxy-v2',
    ]
      .filter(Boolean)
      .join(' '),
    ...b.servers.map((s) => serverLine(o, s)),
  ]);
}
