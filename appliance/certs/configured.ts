// The server certificate a configuration names, checked the one way start, reload, `xks check`,
// `xks cert install` and `xks doctor` all share. Production refuses any error; the demo warns.
// A chain that ends at a staging root (server.tls.stagingRoots) passes in production, but KMS will
// not accept it, and every report says so.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { checkServerCertificate, type CertReport } from './check.js';

export const STAGING_WARNING =
  'STAGING: the server certificate chains to a root from server.tls.stagingRoots, which KMS does not accept: install a certificate from a CA that KMS trusts (xks cert install) before creating the key store in AWS';

export interface CertificateState {
  subject: string;
  notAfter: string;
  daysToExpire: number;
  /** 'kms' alias of the root, 'staging', 'demo root' or 'none'. */
  anchor: string;
  /** Set while the chain ends at a staging root: the warning, for status and doctor. */
  staging?: string;
}

function readPem(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${field}: ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'cannot be read'}`);
  }
}

/** The staging roots' PEM text, in configuration order. */
export function stagingRootPems(config: Config): string[] {
  return (config.server.tls.stagingRoots ?? []).map((f, i) => readPem(f, `server.tls.stagingRoots[${i}]`));
}

export interface CheckInput {
  /** Roots the caller vouches for (the demo CA), besides the configured staging roots. */
  extraRoots?: string[];
  /** Check these instead of the configured files (`xks cert install` before it writes them). */
  chainPem?: string;
  keyPem?: string;
  now?: Date;
}

export function checkConfiguredCertificate(config: Config, input: CheckInput = {}): CertReport {
  const roots = [...(input.extraRoots ?? []), ...stagingRootPems(config)];
  return checkServerCertificate({
    chainPem: input.chainPem ?? readPem(config.server.tls.certFile, 'server.tls.certFile'),
    keyPem: input.keyPem ?? readPem(config.server.tls.keyFile, 'server.tls.keyFile'),
    hostname: config.proxy.hostname,
    trustedRoots: roots.length ? roots : 'kms',
    ...(input.now ? { now: input.now } : {}),
  });
}

/** The report as status and doctor show it. */
export function certificateState(config: Config, report: CertReport): CertificateState {
  const staging = report.anchoredBy === 'extra' && config.mode === 'production';
  return {
    subject: report.subject,
    notAfter: Number.isNaN(report.notAfter.getTime()) ? '' : report.notAfter.toISOString(),
    daysToExpire: report.daysToExpire,
    anchor: report.kmsRoot ?? (report.anchoredBy === 'extra' ? (staging ? 'staging root' : 'demo root') : 'none'),
    ...(staging ? { staging: STAGING_WARNING } : {}),
  };
}

/** Production: the first error refuses (one line naming the fix). Warnings go to `warn`. */
export function enforceCertificatePolicy(config: Config, report: CertReport, warn: (code: string, message: string) => void): void {
  for (const p of report.problems) {
    if (p.severity === 'error' && config.mode === 'production') throw new ConfigError(`server.tls.certFile: ${p.message}`);
    warn(p.code, `certificate: ${p.message}`);
  }
  if (report.anchoredBy === 'extra' && config.mode === 'production') warn('STAGING_ROOT', STAGING_WARNING);
}
