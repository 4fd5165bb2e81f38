// Which configuration variant to render. The split is one feature: HAProxy 2.9 added
// fc_pp_tlv() and set-proxy-v2-tlv-fmt, which read and forward the NLB's VPC endpoint TLV; 2.6
// (Debian 12) has neither, so a VPC endpoint allowlist works behind it only without HAProxy.
import { spawnSync } from 'node:child_process';
import type { HaproxyVariant } from './options.js';

export type VariantRequest = HaproxyVariant | 'auto';

/** "2.6.12" from `haproxy -v` output ("HAProxy version 2.6.12-1+deb12u4 2026/10/17 ..."). */
export function parseHaproxyVersion(output: string): string | undefined {
  return /HA-?Proxy version (\d+\.\d+(?:\.\d+)?)/i.exec(output)?.[1];
}

/** Whether HAProxy `version` can load the given variant. */
export function canLoadVariant(version: string, variant: HaproxyVariant): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const [needMajor = 0, needMinor = 0] = variant.split('.').map(Number);
  return major > needMajor || (major === needMajor && minor >= needMinor);
}

/** The version of `haproxy` on PATH, or undefined when there is none. */
export function installedHaproxyVersion(bin = 'haproxy'): string | undefined {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status !== 0) return undefined;
  return parseHaproxyVersion(r.stdout);
}

export function chooseVariant(requested: VariantRequest, installed: string | undefined): { variant: HaproxyVariant; reason: string } {
  if (requested !== 'auto') return { variant: requested, reason: `--variant ${requested} was asked for` };
  if (installed === undefined) {
    return { variant: '2.6', reason: 'no haproxy was found on PATH, so this targets Debian 12\'s HAProxy 2.6 (use --variant 2.9 for 2.9 or later)' };
  }
  return canLoadVariant(installed, '2.9')
    ? { variant: '2.9', reason: `the haproxy on PATH is ${installed}, which can forward PROXY v2 TLVs` }
    : { variant: '2.6', reason: `the haproxy on PATH is ${installed}, older than 2.9, which cannot forward PROXY v2 TLVs` };
}
