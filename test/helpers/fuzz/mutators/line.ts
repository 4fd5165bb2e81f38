// Mutators of one layer: Request line. Signed afterwards: routing and method checks are what is tested.
import { type Mutator, randomToken, sizeOf } from './util.js';

export const LINE_MUTATORS: Mutator[] = [
  {
    name: 'line.method', layer: 'line', weight: 4,
    apply(d, r) {
      d.method = r.pick(['GET', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'post', 'Post', 'P0ST', 'PROPFIND', 'M-SEARCH', 'X'.repeat(sizeOf(r, [1, 64], [2000])), randomToken(r), 'GET ', '', 'PO ST', 'POST\u0000', 'PÖST', 'CONNECT', 'PRI']);
    },
  },
  {
    name: 'line.path', layer: 'line', weight: 6,
    apply(d, r, t) {
      const p = d.target;
      const key = t.keyIds[0]!;
      d.target = r.pick([
        () => { const at = r.int(p.length + 1); return p.slice(0, at) + r.pick(['/', '.', '..', '%', '%00', '%2F', '%2e', '?', '?a=b', '#', ';', '\\', '//', '\u00e9', '\u00ff', '*', '~']) + p.slice(at); },
        () => { const at = r.int(p.length); return p.slice(0, at) + p.slice(at + 1); },
        () => p + '/',
        () => p.replace('/kms/', '/KMS/'),
        () => p.replace(t.uriPath, '/nope' + t.uriPath),
        () => p.replace(t.uriPath, t.uriPath.replace('/v1', '/v2')),
        () => p.replace(/\/keys\/[^/]+/, `/keys/${r.pick(['x'.repeat(128), 'x'.repeat(129), key + '.', '..', '.', 'no-such-key', '%2e%2e', key.toUpperCase(), ''])}`),
        () => p.replace(/\/(metadata|encrypt|decrypt|health)$/, `/${r.pick(['Encrypt', 'encrypt/', 'sign', 'health', 'metadata', 'decrypt', 'encrypt', ''])}`),
        () => `https://${t.host}${p}`,
        () => '*',
        () => '/',
        () => '/healthz',
        () => p + '/' + 'a'.repeat(sizeOf(r, [200], [9000])),
        () => p.replace(/\//g, '//'),
        () => p + '?' + 'q'.repeat(r.range(1, 100)),
      ])();
    },
  },
  {
    name: 'line.version', layer: 'line', weight: 1.5,
    apply(d, r) {
      d.version = r.pick(['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/3', 'http/1.1', 'HTTP/1.1 ', 'HTTP/11', 'HTTP/1', '', 'HTTP/9.9', 'HTTP/1.01', 'HTTPS/1.1', 'HTTP/1.1\u0000']);
    },
  },

];
