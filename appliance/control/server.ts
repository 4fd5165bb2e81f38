// The operator's control channel to a running appliance: HTTP over a Unix socket, one per instance
// (socket-path.ts), in a directory only the service's user can enter, created under umask 0077 so
// it is never connectable by others, not even for a moment. Operator commands (`xks drain`,
// `xks fault`, `xks status`, `xks reload`, ...) talk to it; nothing of it is reachable over the network.
import { lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import type { AdminAction, AdminActionName } from '../../xks/audit/entry.js';
import type { Fault } from '../../xks/hsm/types.js';
import { ConfigError } from '../config/load.js';
import type { Operator } from '../service.js';

export interface ControlTarget {
  status(): object;
  reload(by: Operator): Promise<object>;
  /** A credentials file changed (xks creds add/retire): use it now, and record the action. */
  credentials(body: Record<string, unknown>, by: Operator): Promise<object>;
  /** Kill switch: body names the target (key/store/all); see appliance/kill-switch.ts. */
  block(body: Record<string, unknown>, by: Operator, blocked: boolean): Promise<object>;
  setDraining(draining: boolean, by: Operator): void;
  injectFault(nodeId: string, fault: Fault): Promise<void>;
  /** An administrative record for an action done outside the service (e.g. xks kms-config). */
  audit(action: AdminAction): void;
}

type Handler = (body: Record<string, unknown>, target: ControlTarget) => Promise<object> | object;

export class ControlError extends Error {}

const FAULTS = new Set(['none', 'slow', 'fail', 'freeze']);

function parseFault(body: Record<string, unknown>): Fault {
  const kind = body['kind'];
  if (typeof kind !== 'string' || !FAULTS.has(kind)) throw new ControlError('kind must be one of none, slow, fail, freeze');
  if (kind === 'slow') {
    const ms = body['ms'];
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > 600_000) throw new ControlError('slow needs ms from 1 to 600000');
    return { kind, ms };
  }
  if (kind === 'fail') return { kind, ckr: typeof body['ckr'] === 'string' ? body['ckr'] : 'CKR_DEVICE_ERROR' };
  return { kind } as Fault;
}

/** The operator and reason the CLI sends along (--operator, --reason) for the audit trail. */
export function operatorOf(body: Record<string, unknown>): Operator {
  const text = (v: unknown, max: number) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?').slice(0, max) : undefined);
  return { operator: text(body['operator'], 128) || 'unknown', reason: text(body['reason'], 1024) };
}

/** Actions that happen outside the service and are only reported to it. */
const REPORTED: ReadonlySet<AdminActionName> = new Set<AdminActionName>(['kms-config-export', 'cert-install']);

function reportedAction(body: Record<string, unknown>): AdminAction {
  const action = body['action'] as AdminActionName;
  if (!REPORTED.has(action)) throw new ControlError(`action must be one of ${[...REPORTED].join(', ')}`);
  const raw = typeof body['details'] === 'object' && body['details'] !== null ? (body['details'] as Record<string, unknown>) : {};
  const details = Object.fromEntries(Object.entries(raw).filter((e): e is [string, string | number | boolean] => ['string', 'number', 'boolean'].includes(typeof e[1])));
  return { action, ...operatorOf(body), details };
}

const ROUTES: Record<string, Handler> = {
  '/status': (_b, t) => t.status(),
  '/drain': (b, t) => (t.setDraining(true, operatorOf(b)), t.status()),
  '/undrain': (b, t) => (t.setDraining(false, operatorOf(b)), t.status()),
  '/reload': (b, t) => t.reload(operatorOf(b)),
  '/block': (b, t) => t.block(b, operatorOf(b), true),
  '/credentials': (b, t) => t.credentials(b, operatorOf(b)),
  '/unblock': (b, t) => t.block(b, operatorOf(b), false),
  '/audit': (b, t) => (t.audit(reportedAction(b)), { recorded: true }),
  '/fault': async (b, t) => {
    if (typeof b['node'] !== 'string') throw new ControlError('node is required');
    await t.injectFault(b['node'], parseFault(b));
    return t.status();
  },
};

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
      if (text.length > 65536) req.destroy(new ControlError('request too large'));
    });
    req.on('end', () => {
      try {
        const v: unknown = text ? JSON.parse(text) : {};
        resolve(typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
      } catch {
        reject(new ControlError('body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

/** A private directory for the socket: made 0700 here, or refused when others can enter it. */
function prepareDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new ConfigError(`control socket directory ${dir} cannot be created (${(err as NodeJS.ErrnoException).code}): create it with mode 0700, owned by the service user`);
    }
  }
  const st = statSync(dir);
  if (!st.isDirectory()) throw new ConfigError(`control socket directory ${dir} is not a directory: remove it or set control.socket elsewhere`);
  if (process.getuid && st.uid !== process.getuid()) throw new ConfigError(`control socket directory ${dir} belongs to another user: set control.socket in a directory of the service user`);
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(`control socket directory ${dir} is open to others (mode ${(st.mode & 0o777).toString(8)}): run chmod 700 ${dir}, or set control.socket in a private directory`);
  }
}

/** True when a process answers on the socket: another instance runs with this control socket. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Refuses a socket a running instance answers on; removes a stale one left by a crash. Called at
 * the very start of `serve` too, so a second instance stops before it touches an HSM.
 */
export async function claimControlSocket(path: string): Promise<void> {
  prepareDirectory(dirname(path));
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ConfigError(`control socket ${path} exists and is not a socket: remove it or set control.socket elsewhere`);
  if (await socketAnswers(path)) {
    throw new ConfigError(`control socket ${path} is in use by a running xks instance: stop that one first, or give this configuration its own control.socket`);
  }
  rmSync(path, { force: true });
}

/** Listen with umask 0077: the socket is 0600 from the moment it exists. */
async function listenPrivately(server: http.Server, path: string): Promise<void> {
  const previous = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(previous);
  }
}

export async function startControlServer(
  path: string,
  target: ControlTarget,
  onInternalError?: (command: string, err: Error) => void,
): Promise<{ close(): Promise<void> }> {
  await claimControlSocket(path);
  const server = http.createServer((req, res) => {
    const handler = ROUTES[req.url ?? ''];
    const reply = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!handler || req.method !== 'POST') return reply(404, { error: 'unknown control command' });
    readJson(req)
      .then((body) => handler(body, target))
      .then(
        (out) => reply(200, out),
        // Config and control errors are the operator's to fix: say what; anything else stays vague.
        (err: Error) => {
          const operator = err instanceof ControlError || err.name === 'ConfigError';
          // "See the service log" must be true: the log gets what the reply leaves out.
          if (!operator) onInternalError?.(req.url ?? '', err);
          reply(operator ? 400 : 500, { error: operator ? err.message : 'internal error (see the service log)' });
        },
      );
  });
  await listenPrivately(server, path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`control socket ${path}: cannot listen (${err.code ?? err.message})`);
  });
  // Ours is this inode: on close, never remove a socket another instance made after a takeover attempt.
  const ino = lstatSync(path).ino;
  return {
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        try {
          if (lstatSync(path).ino === ino) rmSync(path, { force: true });
        } catch {
          // gone already
        }
      }),
  };
}
