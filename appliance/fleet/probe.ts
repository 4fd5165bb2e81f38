// Ask one fleet member how it is, over the same unauthenticated ports the load balancers use (the
// plain-HTTP health port and the agent-check port) and its metrics port (version, configuration
// digest, start time). Nothing here needs a control socket, so it works across VMs.
import http from 'node:http';
import net from 'node:net';
import { BUILD_INFO_METRIC } from './info.js';
import type { FleetMember } from './members.js';

export interface MemberState {
  id: string;
  address: string;
  /** ok / draining / unavailable from the health port; unreachable; unknown without a health port. */
  health: string;
  /** The agent-check line (`ready up 100%`, `drain`, `down`), when it has an agent port. */
  agent: string | undefined;
  version: string | undefined;
  configDigest: string | undefined;
  /** process_start_time_seconds, to tell a restarted process from the old one. */
  startedAt: number | undefined;
  /** Serving and taking new connections: health ok and the agent (if any) not draining. */
  serving: boolean;
}

const TIMEOUT_MS = 2000;

function httpGet(host: string, port: number, path: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c.length + body.length < 1 << 20 ? c : ''));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

function agentLine(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const s = net.connect({ host, port, timeout: TIMEOUT_MS });
    s.setEncoding('utf8');
    s.on('data', (c: string) => (text += c));
    s.on('end', () => resolve(text.trim() || undefined));
    s.on('timeout', () => s.destroy());
    s.on('error', () => resolve(undefined));
    s.on('close', () => resolve(text.trim() || undefined));
  });
}

async function health(m: FleetMember, path: string): Promise<string> {
  if (m.healthPort === undefined) return 'unknown';
  const r = await httpGet(m.host, m.healthPort, path);
  if (!r) return 'unreachable';
  try {
    return String((JSON.parse(r.body) as { status?: unknown }).status ?? (r.status === 200 ? 'ok' : `HTTP ${r.status}`));
  } catch {
    return r.status === 200 ? 'ok' : `HTTP ${r.status}`;
  }
}

function metric(text: string, name: string): { labels: string; value: string } | undefined {
  const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? { labels: m[1] ?? '', value: m[2]! } : undefined;
}

const label = (labels: string, name: string) => new RegExp(`${name}="([^"]*)"`).exec(labels)?.[1];

/** `healthPath`: health.path of the configuration (every instance serves the same one). */
export async function probeMember(m: FleetMember, healthPath: string): Promise<MemberState> {
  const [h, agent, metrics] = await Promise.all([
    health(m, healthPath),
    m.agentPort !== undefined ? agentLine(m.host, m.agentPort) : Promise.resolve(undefined),
    m.metricsPort !== undefined ? httpGet(m.host, m.metricsPort, '/metrics') : Promise.resolve(undefined),
  ]);
  const info = metrics?.status === 200 ? metric(metrics.body, BUILD_INFO_METRIC) : undefined;
  const started = metrics?.status === 200 ? metric(metrics.body, 'process_start_time_seconds') : undefined;
  const agentOk = agent === undefined ? m.agentPort === undefined : /\bup\b/.test(agent) && !/\b(drain|down|maint|stopped)\b/.test(agent);
  return {
    id: m.id,
    address: `${m.host}:${m.port}`,
    health: h,
    agent,
    version: info ? label(info.labels, 'version') : undefined,
    configDigest: info ? label(info.labels, 'config_digest') : undefined,
    startedAt: started ? Number(started.value) : undefined,
    serving: (h === 'ok' || (h === 'unknown' && agent !== undefined)) && agentOk,
  };
}
