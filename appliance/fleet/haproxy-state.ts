// HAProxy's view of the fleet, from its runtime API (`show stat` on the admin socket): whether a
// server is UP in every backend that lists it, so a rolling restart moves on only once HAProxy
// sends it traffic again (its `rise` checks passed and the agent no longer says drain).
import net from 'node:net';

export interface ServerState {
  backend: string;
  server: string;
  /** UP, DOWN, DRAIN, MAINT, "UP 1/2" (rising) … as HAProxy writes it. */
  status: string;
  weight: number;
  /** Sessions open to it now (scur). */
  sessions: number;
}

export function haproxyServers(socketPath: string): Promise<ServerState[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = net.connect(socketPath, () => s.write('show stat\n'));
    s.setEncoding('utf8');
    s.setTimeout(3000, () => s.destroy(new Error('timed out')));
    s.on('data', (c: string) => (text += c));
    s.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`HAProxy admin socket ${socketPath}: ${err.code ?? err.message}`)));
    s.on('end', () => {
      const [header, ...rows] = text.split('\n').filter(Boolean);
      const cols = (header ?? '').replace(/^# /, '').split(',');
      const at = (name: string) => cols.indexOf(name);
      const out = rows
        .map((r) => r.split(','))
        .filter((f) => f[at('svname')] !== 'FRONTEND' && f[at('svname')] !== 'BACKEND')
        .map((f) => ({ backend: f[at('pxname')]!, server: f[at('svname')]!, status: f[at('status')]!, weight: Number(f[at('weight')]), sessions: Number(f[at('scur')]) }));
      resolve(out);
    });
  });
}

/** UP with a weight in every backend that lists this server (and listed at all). */
export function serverUp(states: ServerState[], server: string): boolean {
  const mine = states.filter((s) => s.server === server);
  return mine.length > 0 && mine.every((s) => s.status === 'UP' && s.weight > 0);
}
