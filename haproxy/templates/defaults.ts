// defaults: TCP passthrough, timeouts that never make HAProxy the hop that cuts an idle KMS connection.
import { formatDuration } from '../duration.js';
import type { HaproxyRenderOptions } from '../options.js';
import { section } from './text.js';

export function defaultsSection(o: HaproxyRenderOptions): string {
  const idle = formatDuration(o.timeouts.idleMs);
  return section('defaults', [
    'mode tcp',
    'log global',
    'option dontlognull',
    // A Node instance on the same LAN answers a SYN in well under a millisecond; a dead one should
    // cost one short wait, then the connection goes to another server (redispatch).
    `timeout connect ${formatDuration(o.timeouts.connectMs)}`,
    `# Above the NLB idle timeout and the Node keep-alive, or KMS pays a new TLS handshake per idle gap.`,
    `timeout client ${idle}`,
    `timeout server ${idle}`,
    `timeout tunnel ${idle}`,
    'timeout client-fin 30s',
    'timeout server-fin 30s',
    `timeout check ${formatDuration(o.check.timeoutMs)}`,
    // A refused or failed connect (an instance stopping, restarting or killed) is retried at once
    // on another server: redispatch on every retry skips the 1 s turn-around on the same server.
    'retries 3',
    'option redispatch 1',
  ]);
}
