// The NLB's health check target. monitor-uri and monitor fail exist only in HTTP mode, hence a
// small frontend of its own: 200 while every XKS backend has a server up, 503 otherwise, so the
// NLB sends KMS to the other HAProxy instead of one that can only refuse. With proxy protocol on
// the target group, the NLB's health checks start with a PROXY v2 header too: accept it here.
import { hostPort, type HaproxyRenderOptions } from '../options.js';
import { section } from './text.js';

export function monitorSection(o: HaproxyRenderOptions): string {
  const down = o.backends.map((b) => `{ nbsrv(${b.name}) lt 1 }`).join(' || ');
  return section('frontend xks_monitor', [
    'mode http',
    `bind ${hostPort(o.monitor)}${o.acceptProxy ? ' accept-proxy' : ''}`,
    'option httplog',
    'option dontlog-normal',
    'timeout client 10s',
    'timeout http-request 5s',
    `monitor-uri ${o.monitor.uri}`,
    `monitor fail if ${down}`,
    'http-request return status 404',
  ]);
}
