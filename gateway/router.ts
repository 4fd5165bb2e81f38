// Route a request path to a key store and an XKS operation (spec T6-T11). Routing comes before
// authentication: credentials are per prefix, so an unknown prefix cannot be authenticated and
// gets 404 InvalidUriPathException.
import { XKS_PATH_SUFFIX } from '../xks/options.js';
import type { Operation } from '../xks/validate.js';

export type Route<S> =
  | { kind: 'xks'; store: S; operation: Operation; keyId: string | undefined }
  | { kind: 'health-check' } // the load balancer's unauthenticated GET
  | { kind: 'not-found' };

const KEY_OP = /^\/keys\/([A-Za-z0-9._-]{1,128})\/(metadata|encrypt|decrypt)$/;

export class Router<S> {
  private stores = new Map<string, S>();

  constructor(
    stores: Iterable<{ uriPath: string; store: S }>,
    private readonly healthCheckPath: string,
  ) {
    this.replace(stores);
  }

  /** Swap every store at once (reload): a request sees the old set or the new, never a mix. */
  replace(stores: Iterable<{ uriPath: string; store: S }>): void {
    const next = new Map<string, S>();
    for (const { uriPath, store } of stores) next.set(uriPath, store);
    this.stores = next;
  }

  /** `url` is req.url as received; XKS URIs carry no query string (T6). */
  match(url: string): Route<S> {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === this.healthCheckPath) return { kind: 'health-check' };
    const at = path.lastIndexOf(XKS_PATH_SUFFIX + '/');
    if (at === -1 || q !== -1) return { kind: 'not-found' };
    const store = this.stores.get(path.slice(0, at + XKS_PATH_SUFFIX.length));
    if (store === undefined) return { kind: 'not-found' };
    const rest = path.slice(at + XKS_PATH_SUFFIX.length);
    if (rest === '/health') return { kind: 'xks', store, operation: 'health', keyId: undefined };
    const m = KEY_OP.exec(rest);
    if (!m) return { kind: 'not-found' };
    return { kind: 'xks', store, operation: m[2] as Operation, keyId: m[1] };
  }
}

export const uriPathOf = (prefix: string): string => prefix + XKS_PATH_SUFFIX;
