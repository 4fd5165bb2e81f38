// The operator's control channel to a running appliance: HTTP over a Unix socket next to the
// configuration (mode 0600, so only the service's own user can drive it). Operator commands
// (`xks drain`, `xks fault`, `xks status`, and later block, creds, reload) talk to it; nothing of it
// is reachable over the network.
import { chmodSync, rmSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import type { AdminAction, AdminActionName } from '../../xks/audit/entry.js';
import type { Fault } from '../../xks/hsm/types.js';
import type { Operator } from '../service.js';

export interface ControlTarget {
  status(): object;
  reload(by: Operator): Promise<object>;
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
const REPORTED: ReadonlySet<AdminActionName> = new Set<AdminActionName>(['kms-config-export']);

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
  '/audit': (b, t) => (t.audit(reportedAction(b)), { recorded: true }),
  '/fault': async (b, t) => {
    if (typeof b['node'] !== 'string') throw new ControlError('node is required');
    await t.injectFault(b['node'], parseFault(b));
    return t.status();
  },
};

/** The socket of the appliance run by this configuration file. */
export function controlSocketPath(configFile: string): string {
  return join(dirname(configFile), 'xks-control.sock');
}

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

export async function startControlServer(path: string, target: ControlTarget): Promise<{ close(): Promise<void> }> {
  rmSync(path, { force: true }); // a stale socket from a crashed run
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
          reply(operator ? 400 : 500, { error: operator ? err.message : 'internal error (see the service log)' });
        },
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(path, { force: true });
      }),
  };
}
