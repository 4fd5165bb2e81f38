// keepalived for an HAProxy pair sharing one virtual IP (the NLB's single target). VRRP over
// unicast, because multicast rarely crosses the networks between data centre hosts; the track
// script asks HAProxy's own monitor, so a node whose HAProxy has no healthy Node server, or no
// HAProxy at all, hands the address to its peer.
import ipaddr from 'ipaddr.js';

export interface KeepalivedPeer {
  /** Short name of the host, e.g. haproxy-a. */
  name: string;
  /** The host's own address on `interface`: VRRP adverts go from and to these. */
  address: string;
}

export interface KeepalivedOptions {
  interface: string;
  /** The shared address with its prefix length, e.g. 10.0.0.10/24. */
  vip: string;
  /** 1-255, unique among VRRP groups on the segment. */
  virtualRouterId: number;
  /** Exactly two: the first is preferred while its HAProxy is healthy. */
  peers: KeepalivedPeer[];
  /** HAProxy's monitor as seen from the host itself, e.g. http://127.0.0.1:8405/healthz. */
  monitorUrl: string;
  /** The monitor expects a PROXY header (rendered with accept-proxy): the probe sends one. */
  monitorAcceptsProxy: boolean;
}

export interface RenderedKeepalived {
  peer: string;
  text: string;
}

/** Priority lost while the monitor fails: more than the gap between the two peers. */
const TRACK_WEIGHT = 20;
const PRIORITIES = [110, 100];

function fail(message: string): never {
  throw new Error(`keepalived options: ${message}`);
}

function validate(o: KeepalivedOptions): void {
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(o.interface)) fail(`"${o.interface}" is not a network interface name`);
  const [vipAddr, prefix] = o.vip.split('/');
  if (!vipAddr || !prefix || !ipaddr.isValidCIDR(o.vip)) fail(`vip "${o.vip}" must be an address with its prefix length, e.g. 10.0.0.10/24`);
  if (!Number.isInteger(o.virtualRouterId) || o.virtualRouterId < 1 || o.virtualRouterId > 255) fail('virtualRouterId must be 1-255');
  if (o.peers.length !== 2) fail(`give exactly two peers, got ${o.peers.length}`);
  for (const p of o.peers) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(p.name)) fail(`peer name "${p.name}" may use only A-Z a-z 0-9 _ . -`);
    if (!ipaddr.isValid(p.address)) fail(`peer ${p.name}: "${p.address}" is not an IP address`);
    if (ipaddr.parse(p.address).kind() !== ipaddr.parse(vipAddr).kind()) fail(`peer ${p.name} and the vip must both be IPv4 or both IPv6`);
    if (p.address === vipAddr) fail(`peer ${p.name} has the vip as its own address`);
  }
  if (o.peers[0]!.address === o.peers[1]!.address) fail('the two peers need different addresses');
  let url: URL;
  try {
    url = new URL(o.monitorUrl);
  } catch {
    fail(`monitorUrl "${o.monitorUrl}" is not a URL`);
  }
  if (url.protocol !== 'http:' || /["\\\s]/.test(o.monitorUrl)) fail('monitorUrl must be a plain http:// URL');
}

function render(o: KeepalivedOptions, self: number): string {
  const me = o.peers[self]!;
  const peer = o.peers[1 - self]!;
  return `# keepalived on ${me.name}, one of the XKS HAProxy pair (${o.peers.map((p) => p.name).join(', ')}).
# Rendered by \`xks haproxy keepalived\`. Check with: keepalived -t -f <this file> (prints nothing when it finds no error)
global_defs {
    router_id xks_${me.name}
    enable_script_security
    script_user nobody nogroup
}

# HAProxy's monitor answers 200 only while HAProxy runs and every XKS backend has a server up.
vrrp_script chk_haproxy_monitor {
    script "/usr/bin/curl -fsS -o /dev/null --max-time 1${o.monitorAcceptsProxy ? ' --haproxy-protocol' : ''} ${o.monitorUrl}"
    interval 2
    timeout 2
    fall 2
    rise 2
    # A failing monitor lowers the priority below the peer's instead of dropping the address:
    # if both fail (every Node instance down) one of them still holds it.
    weight -${TRACK_WEIGHT}
}

vrrp_instance XKS_HAPROXY {
    # Both start as BACKUP; the higher priority wins the election.
    state BACKUP
    interface ${o.interface}
    virtual_router_id ${o.virtualRouterId}
    priority ${PRIORITIES[self]}
    advert_int 1
    # Moving the address cuts the connections KMS holds through it: wait before taking it back.
    preempt_delay 60
    unicast_src_ip ${me.address}
    unicast_peer {
        ${peer.address}
    }
    virtual_ipaddress {
        ${o.vip} dev ${o.interface}
    }
    track_script {
        chk_haproxy_monitor
    }
}
`;
}

/** One keepalived.conf per peer, in the order given. */
export function renderKeepalived(o: KeepalivedOptions): RenderedKeepalived[] {
  validate(o);
  return o.peers.map((p, i) => ({ peer: p.name, text: render(o, i) }));
}
