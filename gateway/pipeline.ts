// The request lifecycle, in the order of spec §7 and named like fastify's hooks:
// route -> method -> body -> authenticate (SigV4) -> content type + JSON -> xks/ (state, key,
// policy, usage, sizes, crypto) -> reply. Unauthenticated requests never reach a key or an HSM;
// every reply is spec JSON; every request leaves exactly one record.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { connectionOf, type ConnectionInfo } from './connection.js';
import { Router, type Route } from './router.js';
import { verifySigV4 } from './sigv4.js';
import { errorBody, toXksError, XksError } from '../xks/errors.js';
import { handleXks } from '../xks/service.js';
import { checkContentType, parseJsonObject } from '../xks/validate.js';
import { newRequestRecord, type RequestRecord, type XksDeps } from '../xks/context.js';
import type { KeyStore } from '../xks/keystore.js';

/**
 * Everything a request is served with that a reload may change. Immutable: a reload builds a new
 * one and swaps it in; each request takes the current one when it arrives and keeps it to the end,
 * so a request in flight finishes on the configuration it started with.
 */
export interface PipelineRuntime {
  readonly router: Router<KeyStore>;
  readonly deps: XksDeps;
  readonly maxBodyBytes: number;
  readonly requestBudgetMs: number;
  /** Allowed SigV4 regions for a store that names none of its own (undefined: any). */
  readonly regions: readonly string[] | undefined;
  /** This proxy's DNS name: a signed Host must name it (any port), or the request was meant for
   *  another server and is replayed here. */
  readonly hostname: string;
}

export interface PipelineOptions {
  /** The runtime snapshot in force now. */
  runtime(): PipelineRuntime;
  /** The load balancer's check: 200 only when this instance can serve. */
  healthCheck(): { ok: boolean; body: object };
  /**
   * One call per request, with its reply held back: log, audit, metrics. `release(true)` sends
   * the reply once its record is safe (no answer without its record); `release(false)` answers
   * 500 InternalException instead, for a record that could not be kept.
   */
  onFinish(record: RequestRecord, release: (recorded: boolean) => void): void;
}

/** A reply decided but not sent yet. */
interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string> | undefined;
}

function send(res: ServerResponse, { status, body, headers }: Reply): void {
  if (res.headersSent) return;
  // A flat name/value list: Node writes it as is, without building and walking a header object.
  const list: Array<string | number> = ['content-type', 'application/json', 'content-length', Buffer.byteLength(body)];
  if (headers) for (const name in headers) list.push(name, headers[name]!);
  res.writeHead(status, list as string[]);
  res.end(body);
}

function errorReply(err: XksError, record: RequestRecord, headers?: Record<string, string>): Reply {
  record.status = err.status;
  record.errorName = err.errorName;
  if (err.detail) record.detail = err.detail;
  return { status: err.status, body: errorBody(err.errorName, err.message), headers };
}

const UNRECORDED: Reply = { status: 500, body: errorBody('InternalException', 'Internal error') };

/** True when the Host header (`name`, `name:port`, `[v6]:port`) names `hostname`, any case. */
export function hostNames(host: string | undefined, hostname: string): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:[0-9]*$/, '');
  return name.replace(/\.$/, '').toLowerCase() === hostname.replace(/\.$/, '').toLowerCase();
}

/** Past the cap the 501 goes out at once, and the rest of a body up to this size is still read
 *  (and dropped) on a connection kept open: closing a socket with unread bytes makes TCP reset it,
 *  and the reset can destroy the reply before the client reads it (T13). Above it: close. */
const DRAIN_MAX_BYTES = 1 << 20;

type Body = Buffer | { tooLarge: true; close: boolean };

/** Read the raw body (SigV4 hashes the exact bytes) up to the limit. */
function readBody(req: IncomingMessage, max: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > DRAIN_MAX_BYTES) return resolve({ tooLarge: true, close: true });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_MAX_BYTES) {
        req.removeAllListeners('data');
        req.socket.destroy();
      } else if (size <= max) chunks.push(chunk);
      else resolve({ tooLarge: true, close: false });
    });
    if (declared > max) resolve({ tooLarge: true, close: false });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

export function createPipeline(opts: PipelineOptions): RequestListener {
  async function serveXks(rt: PipelineRuntime, req: IncomingMessage, route: Extract<Route<KeyStore>, { kind: 'xks' }>, record: RequestRecord, start: number, conn: ConnectionInfo | undefined): Promise<Reply> {
    record.store = route.store.name;
    record.operation = route.operation;
    if (route.keyId) record.keyId = route.keyId;
    if (req.method !== 'POST') {
      return errorReply(new XksError('MethodNotAllowed', 'Only POST is allowed on XKS API paths'), record, { allow: 'POST' });
    }
    const body = await readBody(req, rt.maxBodyBytes);
    if (!Buffer.isBuffer(body)) {
      // T13: above the cap is still a spec answer, sent while the rest is drained (or closed).
      return errorReply(new XksError('UnsupportedOperationException', `Request body above ${rt.maxBodyBytes} bytes is not supported`), record, body.close ? { connection: 'close' } : {});
    }
    const auth = verifySigV4(
      { method: req.method, path: req.url ?? '/', headers: req.headers, rawHeaders: req.rawHeaders, body },
      (id) => route.store.secrets.get(id),
      { regions: route.store.config.regions ?? rt.regions },
    );
    if (!hostNames(req.headers.host, rt.hostname)) {
      throw new XksError('AuthenticationFailedException', 'The Host header does not name this proxy', `host=${String(req.headers.host).slice(0, 100)}`);
    }
    record.accessKeyId = auth.accessKeyId;
    conn?.authenticated?.(req.socket);
    checkContentType(req.headers['content-type']);
    const result = await handleXks(
      {
        store: route.store,
        operation: route.operation,
        keyId: route.keyId,
        body: parseJsonObject(body),
        deadline: start + rt.requestBudgetMs,
        sourceAddress: conn?.sourceAddress,
        connectionVpceId: conn?.vpceId,
        record,
      },
      rt.deps,
    );
    record.status = 200;
    return { status: 200, body: JSON.stringify(result) };
  }

  return (req, res) => {
    // There is no protocol upgrade here, so Node answers such a request like any other; but its
    // parser stays in upgrade mode on that connection and then swallows a later request's parse
    // error (no clientError, no reply, no close until the headers timeout). Close after answering.
    if (req.headers.upgrade !== undefined) res.setHeader('connection', 'close');
    const start = performance.now();
    const rt = opts.runtime();
    const conn = connectionOf(req.socket);
    const record = newRequestRecord();
    if (conn) {
      record.source = conn.sourceAddress;
      if (conn.sourcePort !== undefined) record.sourcePort = conn.sourcePort;
    }
    if (conn?.vpceId) record.sourceVpce = conn.vpceId;
    const finish = (reply: Reply) => {
      record.latencyMs = Math.round((performance.now() - start) * 100) / 100;
      opts.onFinish(record, (recorded) => send(res, recorded ? reply : UNRECORDED));
    };
    const route = rt.router.match(req.url ?? '/');
    if (conn?.local && route.kind !== 'health-check') {
      // The trusted proxy's own health check skipped the client allowlist: it gets nothing else.
      return finish(errorReply(new XksError('AccessDeniedException', 'A PROXY protocol LOCAL connection may only use the health check path'), record, { connection: 'close' }));
    }
    if (route.kind === 'health-check') {
      record.operation = 'health-check';
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return finish(errorReply(new XksError('MethodNotAllowed', 'Use GET for the health check'), record, { allow: 'GET, HEAD' }));
      }
      const { ok, body } = opts.healthCheck();
      record.status = ok ? 200 : 503;
      return finish({ status: record.status, body: JSON.stringify(body) });
    }
    if (route.kind === 'not-found') {
      return finish(errorReply(new XksError('InvalidUriPathException', 'The URI path is not valid'), record));
    }
    serveXks(rt, req, route, record, start, conn)
      .catch((err: unknown) => errorReply(toXksError(err), record))
      .then(finish);
  };
}
