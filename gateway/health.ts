// Load balancer health, kept apart from KMS's GetHealthStatus: the NLB's unauthenticated GET (on
// the API port, and optionally plain HTTP on its own port) and HAProxy's agent-check, which
// answers up / drain / down with a weight.
import http from 'node:http';
import net from 'node:net';

export interface InstanceHealth {
  /** At least one HSM node can serve. */
  canServe: boolean;
  /** Fraction of HSM nodes ACTIVE, 0..1: HAProxy weights traffic by it. */
  capacity: number;
  /** Maintenance: finish what is in flight, take no new connections from the balancer. */
  draining: boolean;
}

export function healthCheckBody(h: InstanceHealth): { ok: boolean; body: object } {
  const ok = h.canServe && !h.draining;
  return { ok, body: { status: ok ? 'ok' : h.draining ? 'draining' : 'unavailable' } };
}

/**
 * HAProxy agent-check reply (one line): drain and down override the weight. "ready" must come
 * with "up": HAProxy leaves a drained server in DRAIN until the agent says ready.
 */
export function agentReply(h: InstanceHealth): string {
  if (!h.canServe) return 'down\n';
  if (h.draining) return 'drain\n';
  return `ready up ${Math.max(1, Math.round(h.capacity * 100))}%\n`;
}

export interface SideServer {
  close(): Promise<void>;
}

const closer = (server: net.Server): SideServer => ({
  close: () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      if (server instanceof http.Server) server.closeAllConnections();
    }),
});

/** Who may connect to a side port: they reveal capacity and drain state, so not everyone. */
export interface SideAllow {
  has(address: string): boolean;
  onReject(source: string): void;
}

/** Refuse a connection from outside `allow` before anything is read or written. */
function guard(server: net.Server, allow: SideAllow): void {
  server.on('connection', (socket: net.Socket) => {
    const source = socket.remoteAddress ?? '';
    if (!allow.has(source)) {
      allow.onReject(source);
      socket.destroy();
    }
  });
}

function listen(server: net.Server, host: string, port: number): Promise<SideServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve(closer(server));
    });
  });
}

/** Plain-HTTP health endpoint for an NLB target group that checks over HTTP on its own port. */
export function startHealthHttp(host: string, port: number, path: string, state: () => InstanceHealth, allow: SideAllow): Promise<SideServer> {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const url = (req.url ?? '/').split('?', 1)[0];
    const { ok, body } = url === path && (req.method === 'GET' || req.method === 'HEAD') ? healthCheckBody(state()) : { ok: false, body: { status: 'not found' } };
    const text = JSON.stringify(body);
    res.writeHead(url === path ? (ok ? 200 : 503) : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  guard(server, allow);
  return listen(server, host, port);
}

export function startAgentCheck(host: string, port: number, state: () => InstanceHealth, allow: SideAllow): Promise<SideServer> {
  const server = net.createServer();
  guard(server, allow); // first: 'connection' listeners run in order
  server.on('connection', (socket: net.Socket) => {
    if (socket.destroyed) return;
    socket.on('error', () => socket.destroy());
    socket.end(agentReply(state()));
  });
  return listen(server, host, port);
}

/** Prometheus scrape endpoint: bind it to loopback or a management network only. */
export function startMetricsHttp(host: string, port: number, render: () => Promise<string>, contentType: string): Promise<SideServer> {
  const server = http.createServer((req, res) => {
    if ((req.url ?? '').split('?', 1)[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    render().then(
      (text) => res.writeHead(200, { 'content-type': contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return listen(server, host, port);
}
