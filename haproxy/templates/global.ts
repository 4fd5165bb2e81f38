// global: process, logging, runtime API.
import { formatDuration } from '../duration.js';
import type { HaproxyRenderOptions } from '../options.js';
import { section } from './text.js';

export function globalSection(o: HaproxyRenderOptions): string {
  const privileged = !o.unprivileged;
  const log = o.log.target === 'stderr' || o.log.target === 'stdout' ? `log ${o.log.target} format raw ${o.log.facility}` : `log ${o.log.target} ${o.log.facility}`;
  return section('global', [
    log,
    privileged && 'chroot /var/lib/haproxy',
    privileged && 'user haproxy',
    privileged && 'group haproxy',
    // Runtime API, e.g. `set server <backend>/<server> state drain` before maintenance. Never
    // world-accessible: whoever reaches it can take every XKS server out of service.
    `stats socket ${o.statsSocket} mode ${privileged ? '660' : '600'} level admin${privileged ? ' expose-fd listeners' : ''}`,
    'stats timeout 30s',
    // KMS keeps its connections alive: without a limit an old worker would outlive every reload.
    `hard-stop-after ${formatDuration(o.timeouts.hardStopAfterMs)}`,
    o.maxconn !== undefined && `maxconn ${o.maxconn}`,
    'ssl-default-server-options ssl-min-ver TLSv1.2',
  ]);
}
