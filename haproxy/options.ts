// What the HAProxy templates take: a plain object, derived from the appliance configuration plus the
// deployment facts it does not hold (where HAProxy listens, which Node instances exist, whether the
// NLB sends PROXY v2). validateOptions() runs before rendering: every value ends up inside
// haproxy.cfg, so anything that could break a line or start a comment is refused here.

export type HaproxyVariant = '2.6' | '2.9';

export interface Endpoint {
  address: string;
  port: number;
}

export interface HaproxyServer {
  name: string;
  address: string;
  port: number;
  /** The Node service's agent-check port: it answers `up`, `drain`, `down` or a weight. */
  agentPort?: number;
  /** The Node service's plain-HTTP health port: where checks go when the API port needs a client certificate. */
  healthPort?: number;
}

export interface HaproxyBackend {
  name: string;
  /** SNI host names routed here; the first one is also the Host header and SNI of health checks. */
  hostnames: string[];
  servers: HaproxyServer[];
}

export interface HealthCheckTiming {
  interMs: number;
  /** Interval while a server is changing state: detects a failure sooner once one check failed. */
  fastInterMs: number;
  downInterMs: number;
  fall: number;
  rise: number;
  timeoutMs: number;
  agentInterMs: number;
}

export interface HaproxyTimeouts {
  connectMs: number;
  /** timeout client / server / tunnel: above the NLB idle timeout and the Node keep-alive. */
  idleMs: number;
  /** How long to wait for the complete TLS ClientHello before routing on its SNI. */
  inspectDelayMs: number;
  /** After a reload, old workers holding kept-alive KMS connections exit at the latest after this. */
  hardStopAfterMs: number;
}

export interface HaproxyRenderOptions {
  variant: HaproxyVariant;
  /** Why this variant was chosen: written into the file header and the notes. */
  variantReason: string;
  bind: Endpoint;
  /** The NLB target group sends PROXY v2: read it on the bind line. */
  acceptProxy: boolean;
  /** The Node listeners expect PROXY v2 (server.proxyProtocol.enabled): send it on server lines. */
  sendProxy: boolean;
  /** The HTTP frontend the NLB health check asks: 200 while every backend has a server up. */
  monitor: Endpoint & { uri: string };
  backends: HaproxyBackend[];
  defaultBackend: string;
  /** The Node service's unauthenticated health path (GET, 200 only when it can serve). */
  healthPath: string;
  /** PEM CA bundle to verify the Node certificates during health checks; unset: `verify none`. */
  checkCaFile?: string;
  /**
   * The Node API port requires a client certificate (mTLS) that HAProxy's health check cannot
   * present: check each server's plain-HTTP healthPort instead of a TLS check on its API port.
   */
  plainHttpCheck?: boolean;
  check: HealthCheckTiming;
  timeouts: HaproxyTimeouts;
  statsSocket: string;
  /** `/dev/log`, `stderr`, `stdout` or `host:port` of a syslog server; facility such as local0. */
  log: { target: string; facility: string };
  /** Runs as an ordinary user (demo, tests): no chroot, user or group, socket mode 600. */
  unprivileged: boolean;
  /** Global maxconn; unset lets HAProxy derive it from the file descriptor limit. */
  maxconn?: number;
  /** Some key store allows callers by VPC endpoint id: that needs the NLB's TLV forwarded (2.9+). */
  vpceAllowlist: boolean;
  /** How long a stopping Node instance keeps its port open for HAProxy to see its drain. */
  drainNoticeMs?: number;
}

export const DEFAULT_MONITOR_PORT = 8405;
export const NLB_DEFAULT_IDLE_TIMEOUT_MS = 350_000;

/** HAProxy identifiers (proxy and server names). */
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** One configuration word: nothing that ends the word, quotes, escapes or starts a comment. */
const WORD = /^[^\s"'\\#{}]+$/;
const URI_PATH = /^\/[A-Za-z0-9/_.~-]*$/;

function fail(message: string): never {
  throw new Error(`HAProxy options: ${message}`);
}

function checkPort(port: number, field: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${field} must be a port number 1-65535, got ${port}`);
}

function checkEndpoint(e: Endpoint, field: string): void {
  if (!WORD.test(e.address) || e.address.includes('/')) fail(`${field}.address "${e.address}" is not an address`);
  checkPort(e.port, `${field}.port`);
}

function checkPositive(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 1) fail(`${field} must be a whole number above 0, got ${value}`);
}

function unique(values: string[], what: string): void {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) fail(`${what} "${v}" appears twice`);
    seen.add(v);
  }
}

export function validateOptions(o: HaproxyRenderOptions): void {
  if (o.variant !== '2.6' && o.variant !== '2.9') fail(`variant must be "2.6" or "2.9", got "${String(o.variant)}"`);
  if (/[\r\n]/.test(o.variantReason)) fail('variantReason must be one line');
  checkEndpoint(o.bind, 'bind');
  checkEndpoint(o.monitor, 'monitor');
  if (o.monitor.address === o.bind.address && o.monitor.port === o.bind.port) fail('the monitor needs a port of its own');
  if (!URI_PATH.test(o.monitor.uri)) fail(`monitor.uri "${o.monitor.uri}" must be a path such as /healthz`);
  if (!URI_PATH.test(o.healthPath)) fail(`healthPath "${o.healthPath}" must be a path such as /healthz`);
  if (o.backends.length === 0) fail('give at least one backend');
  unique(o.backends.map((b) => b.name), 'backend name');
  unique(o.backends.flatMap((b) => b.hostnames.map((h) => h.toLowerCase())), 'SNI host name');
  for (const b of o.backends) {
    if (!NAME.test(b.name)) fail(`backend name "${b.name}" may use only A-Z a-z 0-9 _ . : -`);
    if (b.hostnames.length === 0) fail(`backend ${b.name} needs at least one host name`);
    for (const h of b.hostnames) if (!HOSTNAME.test(h)) fail(`"${h}" (backend ${b.name}) is not a DNS host name`);
    if (b.servers.length === 0) fail(`backend ${b.name} needs at least one server`);
    unique(b.servers.map((s) => s.name), `server name in backend ${b.name}`);
    for (const s of b.servers) {
      if (!NAME.test(s.name)) fail(`server name "${s.name}" may use only A-Z a-z 0-9 _ . : -`);
      checkEndpoint(s, `server ${b.name}/${s.name}`);
      if (s.agentPort !== undefined) checkPort(s.agentPort, `server ${b.name}/${s.name} agentPort`);
      if (s.healthPort !== undefined) checkPort(s.healthPort, `server ${b.name}/${s.name} healthPort`);
      if (o.plainHttpCheck && s.healthPort === undefined) {
        fail(`server ${b.name}/${s.name}: the Node API requires client certificates (server.tls.clientAuth), which HAProxy's TLS health check cannot present: set health.httpPort (or the instance's healthPort) so checks use the plain-HTTP health port`);
      }
    }
  }
  if (!o.backends.some((b) => b.name === o.defaultBackend)) fail(`defaultBackend "${o.defaultBackend}" is not one of the backends`);
  if (o.checkCaFile !== undefined && !WORD.test(o.checkCaFile)) fail(`checkCaFile "${o.checkCaFile}" must be a path without spaces or quotes`);
  for (const [k, v] of Object.entries(o.check)) checkPositive(v, `check.${k}`);
  for (const [k, v] of Object.entries(o.timeouts)) checkPositive(v, `timeouts.${k}`);
  if (!WORD.test(o.statsSocket)) fail(`statsSocket "${o.statsSocket}" must be a path without spaces or quotes`);
  if (!WORD.test(o.log.target) || !/^[a-z0-9]+$/.test(o.log.facility)) fail('log target and facility must be single words');
  if (o.maxconn !== undefined) checkPositive(o.maxconn, 'maxconn');
}

/** Whether the configuration passes the NLB's VPC endpoint TLV on: 2.9+, PROXY v2 on both sides. */
export function forwardsVpceTlv(o: HaproxyRenderOptions): boolean {
  return o.variant === '2.9' && o.acceptProxy && o.sendProxy;
}

/** `addr:port`, with brackets around IPv6 addresses. */
export function hostPort(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
