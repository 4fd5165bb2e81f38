// `xks haproxy lint`: read an existing haproxy.cfg and report what breaks or weakens XKS traffic,
// each with the fix. The XKS path is found from the configuration itself: frontends that route
// to backends (not stats pages or monitors), and the backends they route to.
import {
  directives,
  effective,
  optionOn,
  parseHaproxyConfig,
  proxyMode,
  serverHas,
  servers,
  serverValue,
  type Directive,
  type Section,
} from './cfg-parse.js';
import { formatDuration, parseDuration } from './duration.js';
import { NLB_DEFAULT_IDLE_TIMEOUT_MS } from './options.js';

export type Severity = 'error' | 'warning' | 'info';

export interface LintFinding {
  id: string;
  severity: Severity;
  line: number;
  /** "frontend xks", "global", ... */
  section: string;
  message: string;
  fix: string;
}

export interface LintOptions {
  /** The NLB's idle timeout; HAProxy's must be above it. Default 350 s. */
  nlbIdleTimeoutMs?: number;
}

const label = (s: Section) => (s.name ? `${s.kind} ${s.name}` : s.kind);

class Findings {
  readonly list: LintFinding[] = [];
  private readonly seen = new Set<string>();

  add(id: string, severity: Severity, where: Section, line: number, message: string, fix: string): void {
    const key = `${id}:${line}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push({ id, severity, line, section: label(where), message, fix });
  }
}

/** The section a directive is written in: the proxy itself or one of its defaults. */
function owner(s: Section, d: Directive): Section {
  return s.directives.includes(d) || !s.defaults ? s : owner(s.defaults, d);
}

/** Each address of a bind line, without the ipv4@ / tcp@ style prefix; undefined for unix sockets. */
function bindHosts(d: Directive): Array<string | undefined> {
  return (d.words[1] ?? '').split(',').map((a) => {
    if (a.startsWith('/') || /^(unix|abns|fd|sockpair)@/.test(a)) return undefined;
    const bare = a.replace(/^[a-z0-9]+@/, '');
    const at = bare.lastIndexOf(':');
    return (at >= 0 ? bare.slice(0, at) : bare).replace(/^\[(.*)\]$/, '$1');
  });
}

const WILDCARD_HOSTS = new Set(['', '*', '0.0.0.0', '::']);

function isStatsPage(s: Section): boolean {
  return directives(s, 'stats', 'enable').length > 0 || directives(s, 'stats', 'uri').length > 0;
}

function routesOf(s: Section): string[] {
  return s.directives.filter((d) => d.words[0] === 'default_backend' || d.words[0] === 'use_backend').map((d) => d.words[1] ?? '');
}

/** The frontends (and listen sections) carrying XKS traffic, and the proxies holding its servers. */
function xksPath(sections: Section[]): { frontends: Section[]; backends: Map<Section, Section[]> } {
  const byName = new Map(sections.filter((s) => s.kind === 'backend' || s.kind === 'listen').map((s) => [s.name, s]));
  const frontends = sections.filter(
    (s) =>
      (s.kind === 'frontend' || s.kind === 'listen') &&
      directives(s, 'bind').length > 0 &&
      !isStatsPage(s) &&
      (routesOf(s).length > 0 || servers(s).length > 0),
  );
  // Each backend with the frontends that reach it (their timeout client applies to its traffic).
  const backends = new Map<Section, Section[]>();
  const reach = (b: Section | undefined, f: Section) => {
    if (b) backends.set(b, [...(backends.get(b) ?? []), f]);
  };
  for (const f of frontends) {
    if (f.kind === 'listen' && servers(f).length > 0) reach(f, f);
    for (const name of new Set(routesOf(f))) reach(byName.get(name), f);
  }
  return { frontends, backends };
}

function lintFrontend(f: Section, out: Findings): void {
  const binds = directives(f, 'bind');
  const tls = binds.find((d) => d.words.includes('ssl') || d.words.includes('crt'));
  if (tls) {
    out.add(
      'tls-terminated',
      'error',
      f,
      tls.line,
      'TLS is terminated in HAProxy: KMS must complete its handshake with the XKS proxy itself, which holds the certificate for the proxy host name, checks KMS\'s client certificate (mTLS) and reads the PROXY header.',
      'Pass TLS through: remove ssl/crt from the bind line, use mode tcp, and route on req.ssl_sni after tcp-request inspect-delay 5s and tcp-request content accept if { req.ssl_hello_type 1 }.',
    );
  } else if (proxyMode(f) === 'http') {
    out.add(
      'http-mode',
      'error',
      f,
      (effective(f, 'mode') ?? binds[0]!).line,
      'This frontend parses HTTP, but KMS sends TLS: every connection fails.',
      'Use mode tcp here and route on req.ssl_sni.',
    );
  }
  const usesSni = f.directives.some((d) => d.words.some((w) => /req[._]ssl_sni/.test(w)));
  if (usesSni && !effective(f, 'tcp-request', 'inspect-delay')) {
    const at = f.directives.find((d) => d.words.some((w) => /req[._]ssl_sni/.test(w)))!;
    out.add(
      'sni-without-inspect-delay',
      'error',
      f,
      at.line,
      'Routing on req.ssl_sni without tcp-request inspect-delay: the rules run before the ClientHello arrives, so every connection goes to the default backend.',
      'Add tcp-request inspect-delay 5s and tcp-request content accept if { req.ssl_hello_type 1 } before the use_backend rules.',
    );
  }
  const noAccept = binds.find((d) => !d.words.includes('accept-proxy') && bindHosts(d).some((h) => h !== undefined));
  if (noAccept) {
    out.add(
      'no-accept-proxy',
      'info',
      f,
      noAccept.line,
      'The bind line reads no PROXY header: behind an NLB without proxy protocol v2, the caller\'s address and VPC endpoint id end at the NLB (and with it on, every connection would fail).',
      'Enable proxy protocol v2 on the NLB target group and add accept-proxy to the bind line.',
    );
  }
}

function lintTimeouts(b: Section, frontends: Section[], thresholdMs: number, out: Findings): void {
  const suggest = formatDuration(Math.max(thresholdMs, 360_000) + 30_000);
  const flag = (where: Section, d: Directive | undefined) => {
    const ms = d ? parseDuration(d.words[2] ?? '') : undefined;
    if (!d || ms === undefined || ms > thresholdMs) return;
    out.add(
      'timeout-below-nlb-idle',
      'warning',
      owner(where, d),
      d.line,
      `timeout ${d.words[1]} ${d.words[2]} is below the NLB idle timeout (${formatDuration(thresholdMs)}): HAProxy cuts idle KMS connections, and each new one costs KMS a TCP and TLS handshake inside its 250 ms budget.`,
      `Set timeout client, timeout server and timeout tunnel above the NLB idle timeout and the Node keep-alive, e.g. ${suggest}.`,
    );
  };
  // In TCP mode the tunnel timeout replaces client and server once the connection is established.
  const tunnel = effective(b, 'timeout', 'tunnel');
  if (tunnel && frontends.every((f) => proxyMode(f) === 'tcp')) return flag(b, tunnel);
  for (const f of frontends) flag(f, effective(f, 'timeout', 'client'));
  flag(b, effective(b, 'timeout', 'server'));
}

function lintBackend(b: Section, out: Findings): void {
  const list = servers(b);
  if (list.length === 0) return;
  const first = list[0]!;
  const total = list.reduce((n, s) => n + s.count, 0);
  if (total === 1) {
    out.add(
      'single-server',
      'warning',
      b,
      first.line,
      `One server behind ${label(b)}: restarting that Node instance takes the key store offline for KMS.`,
      'Add a server line for every Node instance, at least two on different hosts.',
    );
  }
  const unchecked = list.find((s) => !serverHas(s, 'check'));
  if (unchecked) {
    out.add(
      'no-health-check',
      'error',
      b,
      unchecked.line,
      `Server ${unchecked.name} has no health check: HAProxy keeps sending KMS to it after it stops serving.`,
      'Add check check-ssl verify none check-sni <host name> to the servers, with option httpchk on the health path.',
    );
  }
  const checked = list.filter((s) => serverHas(s, 'check'));
  const httpchk = optionOn(b, 'httpchk');
  if (checked.length > 0 && !httpchk) {
    out.add(
      'tcp-check-only',
      'warning',
      b,
      checked[0]!.line,
      'The health check is a plain TCP connect: a listening port passes even when the XKS service cannot serve (no HSM node, certificate not loaded, process wedged).',
      'option httpchk; http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host <host name>; http-check expect status 200; servers: check check-ssl verify none check-sni <host name>.',
    );
  }
  const clear = checked.find((s) => !serverHas(s, 'check-ssl') && !serverHas(s, 'ssl') && serverValue(s, 'port') === undefined);
  if (httpchk && proxyMode(b) === 'tcp' && clear) {
    out.add(
      'check-without-tls',
      'error',
      b,
      clear.line,
      `The HTTP health check of ${clear.name} is sent in clear text to its TLS port: it fails on every server, and HAProxy marks them all down.`,
      'Add check-ssl verify none check-sni <host name> to the servers (or point the check at a plain HTTP health port with port <n>).',
    );
  }
  const noProxy = list.find((s) => !['send-proxy-v2', 'send-proxy-v2-ssl', 'send-proxy-v2-ssl-cn', 'send-proxy'].some((k) => serverHas(s, k)));
  if (noProxy) {
    out.add(
      'no-proxy-protocol',
      'warning',
      b,
      noProxy.line,
      `Server ${noProxy.name} receives no PROXY header: the Node service sees HAProxy's address, so per-store allowlists and audit records lose the real caller.`,
      'Add send-proxy-v2 to the servers and enable server.proxyProtocol in the appliance, with HAProxy\'s addresses in trustedProxies.',
    );
  } else {
    const v1 = list.find((s) => serverHas(s, 'send-proxy') && !serverHas(s, 'send-proxy-v2'));
    if (v1) {
      out.add('proxy-protocol-v1', 'info', b, v1.line, 'PROXY v1 carries addresses only, no TLVs such as the NLB\'s VPC endpoint id.', 'Use send-proxy-v2.');
    }
  }
  const lingering = checked.find((s) => serverValue(s, 'on-marked-down') !== 'shutdown-sessions');
  if (lingering) {
    out.add(
      'no-shutdown-sessions',
      'info',
      b,
      lingering.line,
      'Connections stay on a server after it is marked down: KMS\'s kept-alive connections time out one by one instead of moving to a healthy server.',
      'Add on-marked-down shutdown-sessions to the servers (or default-server).',
    );
  }
}

function lintSocket(global: Section, out: Findings): void {
  for (const d of directives(global, 'stats', 'socket')) {
    const addr = d.words[2] ?? '';
    const network = /^(ipv4|ipv6|tcp|tcp4|tcp6|udp)@/.test(addr) || (!addr.startsWith('/') && !/^(unix|abns)@/.test(addr) && addr.includes(':'));
    const modeAt = d.words.indexOf('mode');
    const mode = modeAt > 0 ? parseInt(d.words[modeAt + 1] ?? '', 8) : NaN;
    if (network) {
      out.add(
        'admin-socket-exposed',
        'error',
        global,
        d.line,
        `The runtime API listens on the network (${addr}): whoever reaches it can drain, disable or re-address every XKS server.`,
        'Use a unix socket: stats socket /run/haproxy/admin.sock mode 660 level admin.',
      );
    } else if (!Number.isNaN(mode) && (mode & 0o006) !== 0) {
      out.add(
        'admin-socket-exposed',
        'error',
        global,
        d.line,
        `The runtime API socket has mode ${d.words[modeAt + 1]}: every local user can drain, disable or re-address the XKS servers through it.`,
        'Use mode 660 (group haproxy) or 600: stats socket /run/haproxy/admin.sock mode 660 level admin.',
      );
    }
  }
}

function lintStatsPage(s: Section, out: Findings): void {
  const open = directives(s, 'bind').find((d) => bindHosts(d).some((h) => h !== undefined && WILDCARD_HOSTS.has(h)));
  const auth =
    directives(s, 'stats', 'auth').length > 0 || directives(s, 'http-request', 'auth').length > 0 || directives(s, 'stats', 'http-request', 'auth').length > 0;
  if (!open || auth) return;
  const admin = directives(s, 'stats', 'admin').length > 0;
  out.add(
    'stats-page-exposed',
    admin ? 'error' : 'warning',
    s,
    open.line,
    `The stats page listens on all interfaces without authentication: anyone who reaches it sees every XKS server${admin ? ' and, with stats admin, can disable them' : ''}.`,
    'Bind it to 127.0.0.1 or a management address, and add stats auth <user>:<password> (or use the admin socket instead).',
  );
}

export function lintHaproxy(text: string, options: LintOptions = {}): LintFinding[] {
  const threshold = options.nlbIdleTimeoutMs ?? NLB_DEFAULT_IDLE_TIMEOUT_MS;
  const sections = parseHaproxyConfig(text);
  const out = new Findings();
  for (const g of sections.filter((s) => s.kind === 'global')) lintSocket(g, out);
  for (const s of sections.filter((x) => x.kind === 'frontend' || x.kind === 'listen')) if (isStatsPage(s)) lintStatsPage(s, out);
  const { frontends, backends } = xksPath(sections);
  for (const f of frontends) lintFrontend(f, out);
  for (const [b, fronts] of backends) {
    lintTimeouts(b, fronts, threshold, out);
    lintBackend(b, out);
  }
  const monitors = sections.filter((s) => directives(s, 'monitor-uri').length > 0);
  const nlbSendsProxy = frontends.some((f) => directives(f, 'bind').some((d) => d.words.includes('accept-proxy')));
  for (const m of nlbSendsProxy ? monitors : []) {
    const plain = directives(m, 'bind').find((d) => !d.words.includes('accept-proxy'));
    if (!plain) continue;
    out.add(
      'monitor-without-accept-proxy',
      'warning',
      m,
      plain.line,
      'The XKS frontend accepts PROXY headers, so the NLB has proxy protocol on, and then its health checks start with a PROXY header too: this monitor answers them with an error, every target turns unhealthy and the NLB fails open.',
      'Add accept-proxy to the monitor\'s bind line (probe it locally with curl --haproxy-protocol).',
    );
  }
  if (frontends.length > 0 && monitors.length === 0) {
    const f = frontends[0]!;
    out.add(
      'no-monitor',
      'info',
      f,
      f.line,
      'Nothing gives the NLB HAProxy\'s own view: a TCP check on the XKS port passes while every Node instance is down.',
      'Add an HTTP-mode frontend on its own port with monitor-uri /healthz and monitor fail if { nbsrv(<backend>) lt 1 }, and point the NLB health check at it.',
    );
  }
  return out.list.sort((a, b) => a.line - b.line);
}

/** Non-zero exit when anything of severity error or warning was found. */
export function lintExitCode(findings: LintFinding[]): number {
  return findings.some((f) => f.severity !== 'info') ? 1 : 0;
}

export function formatFindings(file: string, findings: LintFinding[]): string {
  if (findings.length === 0) return `${file}: no findings\n`;
  const lines = findings.map((f) => `${file}:${f.line}: ${f.severity} [${f.id}] (${f.section}) ${f.message}\n    fix: ${f.fix}`);
  const count = (s: Severity) => findings.filter((f) => f.severity === s).length;
  return `${lines.join('\n')}\n${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} note(s)\n`;
}
