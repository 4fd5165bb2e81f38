// The XKS frontend: TCP passthrough on 443. TLS stays end to end between KMS and the Node service
// (its certificate, its mTLS check); HAProxy only reads the ClientHello to route on SNI.
import { formatDuration } from '../duration.js';
import { hostPort, type HaproxyRenderOptions } from '../options.js';
import { section } from './text.js';

/** The TCP log format plus the SNI KMS asked for. */
const LOG_FORMAT = '"%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq sni=%[var(sess.sni)]"';

export function frontendSection(o: HaproxyRenderOptions): string {
  return section('frontend xks_tls', [
    `bind ${hostPort(o.bind)}${o.acceptProxy ? ' accept-proxy' : ''}`,
    `log-format ${LOG_FORMAT}`,
    // Wait for the whole ClientHello (it may span packets), then route on its SNI; anything that
    // is not TLS is dropped instead of reaching the Node service.
    `tcp-request inspect-delay ${formatDuration(o.timeouts.inspectDelayMs)}`,
    'tcp-request content set-var(sess.sni) req.ssl_sni if { req.ssl_hello_type 1 }',
    'tcp-request content accept if { req.ssl_hello_type 1 }',
    'tcp-request content reject',
    ...o.backends.map((b) => `use_backend ${b.name} if { req.ssl_sni -i ${b.hostnames.join(' ')} }`),
    `default_backend ${o.defaultBackend}`,
  ]);
}
