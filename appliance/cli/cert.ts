// `xks cert csr | check | install | roots`: the server certificate from request to hot swap, each
// step checked the way production start checks it (certs/check.ts).
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { checkServerCertificate, type CertReport } from '../certs/check.js';
import { certificateState, checkConfiguredCertificate, STAGING_WARNING } from '../certs/configured.js';
import { createCsr, type CsrKeyType } from '../certs/csr.js';
import { installCertificate } from '../certs/install.js';
import { kmsRootExpiry, kmsTrustedRoots } from '../certs/kms-roots.js';
import { writeFileAtomic } from '../certs/atomic-write.js';
import { loadConfig } from '../config/load.js';
import { EXIT } from '../exit-codes.js';
import { CliError } from './errors.js';
import { operatorOptions, type OperatorOptions } from './operator.js';

function readInput(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'cannot be read'}`, EXIT.CONFIG);
  }
}

/** The report as lines an operator reads: what the certificate is, then each problem with its fix. */
export function formatReport(file: string, report: CertReport, hostname: string | undefined, staging: boolean): string {
  const lines = [`${file}: ${report.subject || '(no certificate)'}${report.sans.length ? `, SAN ${report.sans.join(', ')}` : ''}`];
  if (!Number.isNaN(report.daysToExpire)) lines.push(`  expires ${report.notAfter.toISOString().slice(0, 10)} (in ${report.daysToExpire} days)`);
  if (report.chainEndsAt) {
    const who = report.kmsRoot ? `a root KMS trusts (${report.kmsRoot})` : report.anchoredBy === 'extra' ? 'a staging root you named, NOT one KMS trusts' : 'a root KMS does not trust';
    lines.push(`  chain ends at "${report.chainEndsAt}": ${who}`);
  }
  for (const p of report.problems) lines.push(`  ${p.severity === 'error' ? 'FAIL' : 'WARN'} [${p.code}] ${p.message}`);
  if (hostname === undefined) lines.push('  note: host name not checked: give --host NAME (or --config FILE)');
  if (report.ok && staging) lines.push(`  WARN ${STAGING_WARNING}`);
  const errors = report.problems.filter((p) => p.severity === 'error').length;
  lines.push(report.ok ? (staging ? 'OK for staging only: KMS will not accept it' : `OK${hostname ? `: KMS can accept it for ${hostname}` : ''}`) : `FAIL: ${errors} error(s)`);
  return lines.join('\n') + '\n';
}

function csr(o: { host: string; keyType: CsrKeyType; out: string; force?: boolean }): void {
  if (!/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(o.host) || /^[0-9.]+$/.test(o.host)) {
    throw new CliError(`--host ${o.host}: give the DNS name KMS connects to (e.g. xks.example.com); KMS does not accept IP addresses`, EXIT.CONFIG);
  }
  if (!o.host.includes('.')) process.stderr.write(`note: ${o.host} is not fully qualified: fine for a local staging run, but KMS needs a full DNS name\n`);
  const dir = resolve(o.out);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, `${o.host}.key`);
  const csrFile = join(dir, `${o.host}.csr`);
  // A key that already went into a CSR may be waiting for its certificate: never overwrite it silently.
  if (existsSync(keyFile) && !o.force) throw new CliError(`${keyFile} exists (perhaps waiting for its certificate): move it away, or give --force to replace it`, EXIT.CONFIG);
  const made = createCsr(o.host, o.keyType);
  writeFileAtomic(keyFile, made.keyPem, 0o600);
  writeFileAtomic(csrFile, made.csrPem, 0o644);
  process.stdout.write(
    [
      `${keyFile}: private key (${o.keyType === 'ec' ? 'EC P-256' : 'RSA 2048'}), mode 0600: keep it on this host`,
      `${csrFile}: CSR with CN=${o.host} and SAN DNS:${o.host}`,
      'Next: submit the CSR to a CA that KMS trusts (xks cert roots lists them); then',
      `  xks cert install --config FILE --chain CHAIN.pem --key ${keyFile}`,
      'with CHAIN.pem = the certificate, then the intermediates the CA sent.',
    ].join('\n') + '\n',
  );
}

async function check(file: string, o: { key?: string; host?: string; config?: string; json?: boolean }): Promise<void> {
  const chainPem = readInput(resolve(file), 'chain file');
  const keyPem = o.key ? readInput(resolve(o.key), 'key file') : undefined;
  let report: CertReport;
  let hostname = o.host;
  let staging = false;
  if (o.config) {
    const { config } = await loadConfig(resolve(o.config), { certificateMayBeMissing: true });
    hostname ??= config.proxy.hostname;
    report = checkConfiguredCertificate({ ...config, proxy: { ...config.proxy, hostname } }, { chainPem, keyPem: keyPem ?? '' });
    if (!keyPem) report = { ...report, problems: report.problems.filter((p) => p.code !== 'KEY_INVALID') };
    staging = certificateState(config, report).staging !== undefined;
  } else {
    report = checkServerCertificate({ chainPem, ...(keyPem !== undefined ? { keyPem } : {}), ...(hostname ? { hostname } : {}) });
  }
  process.stdout.write(o.json ? JSON.stringify({ file: resolve(file), hostname, staging, ...report }, null, 2) + '\n' : formatReport(resolve(file), report, hostname, staging));
  if (!report.ok) process.exitCode = EXIT.RUNTIME;
}

function roots(o: { json?: boolean }): void {
  const now = Date.now();
  const list = [...kmsTrustedRoots().values()].sort((a, b) => a.alias.localeCompare(b.alias));
  if (o.json) {
    process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    return;
  }
  const lines = list.map((r) => `${r.alias.padEnd(44)} ${r.notAfter}${kmsRootExpiry(r).getTime() < now ? ' (expired)' : ''}  ${r.subject}`);
  process.stdout.write(
    [
      `KMS trusts server certificates issued under these ${list.length} roots (TrustedCertificateAuthorities of the XKS proxy API spec),`,
      'matched by SHA-256 fingerprint. Common public CAs among them: DigiCert, Sectigo, GlobalSign, Amazon, ISRG Root X1 (Let\'s Encrypt), Google Trust Services.',
      '',
      ...lines,
    ].join('\n') + '\n',
  );
}

async function install(o: { config: string; chain: string; key: string } & OperatorOptions): Promise<void> {
  const loaded = await loadConfig(resolve(o.config), { certificateMayBeMissing: true });
  const chainPem = readInput(resolve(o.chain), 'chain file');
  const keyPem = readInput(resolve(o.key), 'key file');
  if ((statSync(resolve(o.key)).mode & 0o077) !== 0) process.stderr.write(`note: ${resolve(o.key)} is readable by others: it is installed with mode 0600; remove the original\n`);
  const r = await installCertificate(loaded, chainPem, keyPem, { operator: o.operator, reason: o.reason });
  const lines = [formatReport(resolve(o.chain), r.report, loaded.config.proxy.hostname, r.state.staging !== undefined).trimEnd()];
  lines.push(`installed ${loaded.config.server.tls.certFile} and ${loaded.config.server.tls.keyFile} (mode 0600)`);
  lines.push(r.reloaded ? 'the running appliance reloaded them: new connections get the new certificate, live ones stay' : 'no running appliance: they take effect at the next start');
  process.stdout.write(lines.join('\n') + '\n');
}

export function register(program: Command): void {
  const cert = program.command('cert').description('The server certificate: request (csr), check, install with a hot swap, and the roots KMS trusts');
  cert
    .command('csr')
    .description('Make a private key (mode 0600) and a CSR with CN and SAN = the host name, for a CA that KMS trusts')
    .requiredOption('--host <NAME>', 'the DNS name KMS connects to (proxy.hostname)')
    .addOption(new Option('--key-type <TYPE>', 'key algorithm').choices(['ec', 'rsa']).default('ec'))
    .option('--out <DIR>', 'where to write NAME.key and NAME.csr', '.')
    .option('--force', 'replace an existing NAME.key')
    .action((o: { host: string; keyType: CsrKeyType; out: string; force?: boolean }) => csr(o));
  cert
    .command('check')
    .description('Check a chain file as production start does: order, key match, SAN/CN, expiry, ends at a root KMS trusts; exit 1 on errors')
    .argument('<FILE>', 'PEM chain: the server certificate first, then intermediates')
    .option('--key <FILE>', 'the private key: check that it belongs to the certificate')
    .option('--host <NAME>', 'the host name the SAN must hold (default with --config: proxy.hostname)')
    .option('--config <FILE>', 'take the host name and the staging roots (server.tls.stagingRoots) from this configuration')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { key?: string; host?: string; config?: string; json?: boolean }) => check(file, o));
  operatorOptions(
    cert
      .command('install')
      .description('Check a new chain and key, write them where the configuration points (atomically, mode 0600) and hot-swap them in the running appliance; recorded in the audit trail')
      .requiredOption('--config <FILE>', 'the appliance configuration')
      .requiredOption('--chain <FILE>', 'PEM chain: the server certificate first, then intermediates')
      .requiredOption('--key <FILE>', 'its private key'),
  ).action((o: { config: string; chain: string; key: string } & OperatorOptions) => install(o));
  cert
    .command('roots')
    .description('List the root CAs KMS trusts for the proxy\'s server certificate')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => roots(o));
}
