// Render haproxy.cfg for the XKS appliance from HaproxyRenderOptions, with notes that say which
// variant was rendered, why, and what the operator still has to set up around it.
import { formatDuration } from './duration.js';
import { forwardsVpceTlv, hostPort, NLB_DEFAULT_IDLE_TIMEOUT_MS, validateOptions, type HaproxyRenderOptions } from './options.js';
import { lintHaproxy } from './lint.js';
import { backendSection } from './templates/backend.js';
import { defaultsSection } from './templates/defaults.js';
import { frontendSection } from './templates/frontend.js';
import { globalSection } from './templates/global.js';
import { monitorSection } from './templates/monitor.js';

export interface RenderedHaproxy {
  text: string;
  variant: string;
  notes: string[];
}

function variantNote(o: HaproxyRenderOptions): string {
  const what =
    o.variant === '2.6'
      ? 'HAProxy 2.6 variant (Debian 12): the NLB\'s VPC endpoint TLV (0xEA) is not forwarded'
      : forwardsVpceTlv(o)
        ? 'HAProxy 2.9+ variant: forwards the NLB\'s VPC endpoint TLV (0xEA) to the Node instances'
        : 'HAProxy 2.9+ variant, but without PROXY v2 on both sides there is no VPC endpoint TLV (0xEA) to forward';
  return `${what}; chosen because ${o.variantReason}`;
}

function notesFor(o: HaproxyRenderOptions): string[] {
  const notes = [variantNote(o)];
  if (forwardsVpceTlv(o)) {
    // HAProxy writes "-" for an absent sample: the Node's parser sees a TLV without the 0x01 subtype.
    notes.push('Connections that reach HAProxy without the TLV (public endpoint) reach the Node instances with TLV 0xEA = "-", which names no VPC endpoint.');
  }
  if (o.vpceAllowlist && !forwardsVpceTlv(o)) {
    notes.push(
      'WARNING: a key store allows callers by VPC endpoint id, but this configuration does not pass the endpoint id on, ' +
        'so no connection through it can match that allowlist. Use HAProxy 2.9+ (--variant 2.9) with PROXY v2 on the NLB and the Node service, or let the NLB reach the Node service directly.',
    );
  }
  notes.push(
    o.acceptProxy
      ? `${hostPort(o.bind)} and the monitor expect a PROXY v2 header first: enable "proxy protocol v2" on the NLB target group (attribute proxy_protocol_v2.enabled); local probes of the monitor need one too (curl --haproxy-protocol).`
      : `${hostPort(o.bind)} takes plain TLS: the Node service sees HAProxy pass on the NLB's address, not the caller's. Enable PROXY v2 on the target group and render with accept-proxy to keep it.`,
  );
  notes.push(
    o.sendProxy
      ? 'The Node instances receive PROXY v2: list this HAProxy\'s addresses in server.proxyProtocol.trustedProxies.'
      : 'The Node instances receive no PROXY header (server.proxyProtocol.enabled is off): their allowlists and audit records see HAProxy\'s address.',
  );
  if (o.drainNoticeMs !== undefined && o.drainNoticeMs < 2 * o.check.agentInterMs) {
    notes.push(
      `WARNING: the Node instances keep their port open ${formatDuration(o.drainNoticeMs)} after SIGTERM (server.drain.noticeMs), less than two agent-check intervals (${formatDuration(o.check.agentInterMs)}): HAProxy may still send new connections when the port closes. Raise noticeMs or lower agent-inter.`,
    );
  }
  for (const b of o.backends) {
    if (b.servers.length === 1) notes.push(`Backend ${b.name} has one server: restarting it is an outage for KMS. List every Node instance.`);
  }
  if (o.timeouts.idleMs <= NLB_DEFAULT_IDLE_TIMEOUT_MS) {
    notes.push(`WARNING: idle timeout ${formatDuration(o.timeouts.idleMs)} is not above the NLB's default 350 s: idle KMS connections will be cut by HAProxy.`);
  }
  notes.push(`NLB health check: HTTP, port ${o.monitor.port}, path ${o.monitor.uri}, success code 200 (see docs/network-guide.md).`);
  notes.push(o.unprivileged ? 'Run in the foreground with: haproxy -f <file> -db' : 'Before every reload: haproxy -c -f <file>, then systemctl reload haproxy.');
  return notes;
}

function header(o: HaproxyRenderOptions): string {
  return [
    '# HAProxy in front of the XKS appliance, rendered by `xks haproxy render`.',
    '# Change the appliance configuration or the render flags and render again instead of editing here.',
    `# Variant: HAProxy ${o.variant}${o.variant === '2.9' ? ' or later' : ''}: ${o.variantReason}.`,
    '# Check before every reload: haproxy -c -f <this file>',
    '',
  ].join('\n');
}

/**
 * What `xks haproxy lint` will say about the rendered file, so render and lint never disagree: a
 * rendered file has no lint errors or warnings unless it was rendered with a known weakness
 * (one Node instance, or PROXY v2 off towards the Node service), and then this note names it.
 */
function lintNote(text: string, nlbIdleTimeoutMs: number): string {
  const findings = lintHaproxy(text, { nlbIdleTimeoutMs }).filter((f) => f.severity !== 'info');
  if (findings.length === 0) return 'xks haproxy lint on this file: no errors or warnings.';
  return `xks haproxy lint on this file reports ${findings.length} finding(s), the weaknesses noted above: ${findings.map((f) => `${f.severity} [${f.id}]`).join(', ')}.`;
}

export function renderHaproxy(opts: HaproxyRenderOptions, nlbIdleTimeoutMs = NLB_DEFAULT_IDLE_TIMEOUT_MS): RenderedHaproxy {
  validateOptions(opts);
  const text = [
    header(opts),
    globalSection(opts),
    defaultsSection(opts),
    frontendSection(opts),
    monitorSection(opts),
    ...opts.backends.map((b) => backendSection(opts, b)),
  ].join('\n');
  return { text, variant: opts.variant, notes: [...notesFor(opts), lintNote(text, nlbIdleTimeoutMs)] };
}
