// Load and check the appliance configuration: YAML -> schema -> resolved paths -> checks a schema
// cannot make (files exist, secrets are 0600, names unique). Every failure is a ConfigError whose
// message is one line naming the field and saying how to fix it; no stack trace reaches the operator.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { EXIT } from '../exit-codes.js';
import { configSchema, credentialsFileSchema, XKS_PATH_SUFFIX, type Config, type Credential } from './schema.js';

export class ConfigError extends Error {
  readonly exitCode: number = EXIT.CONFIG;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A credentials file or HSM PIN problem: its own exit code, so systemd never retries it. */
export class CredentialError extends ConfigError {
  override readonly exitCode: number = EXIT.CREDENTIALS;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the configuration file. */
  file: string;
  dir: string;
}

/** Render a zod issue path as `keyStores[0].credentialsFile`. */
function fieldName(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(top level)';
}

function issueText(i: z.core.$ZodIssue): string {
  if (i.code === 'unrecognized_keys') return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}: remove it or check its spelling`;
  if (i.code === 'invalid_type' && / received undefined$/.test(i.message)) return `missing: add it (expected ${i.expected}; see the README's configuration reference)`;
  return i.message;
}

export function formatIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  // A misspelt field is usually also why a required one is "missing": name the spelling first.
  const ordered = [...issues.filter((i) => i.code === 'unrecognized_keys'), ...issues.filter((i) => i.code !== 'unrecognized_keys')];
  return ordered
    .slice(0, 5)
    .map((i) => `${source}: ${fieldName(i.path)}: ${issueText(i)}`)
    .join('\n');
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'cannot be read'}`);
  }
}

/** Parse a YAML (or JSON) document; syntax errors name the line, never echo the content. */
export function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    // linePos is only filled in with prettyErrors, which would quote the text (maybe a secret).
    const line = first.linePos?.[0].line ?? text.slice(0, first.pos[0]).split('\n').length;
    throw new ConfigError(`${source}${line ? ` line ${line}` : ''}: not valid YAML (${first.code})`);
  }
  return doc.toJS();
}

/** A secret file must be readable by its owner only: refuse group/other permission bits. */
export function checkSecretFileMode(file: string, field: string, Err: typeof ConfigError = ConfigError): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new Err(`${field}: ${file}: no such file`);
  }
  if ((mode & 0o077) !== 0) {
    throw new Err(`${field}: ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${file}`);
  }
}

export function loadCredentials(file: string, field: string): Credential[] {
  checkSecretFileMode(file, field, CredentialError);
  let raw: unknown;
  try {
    raw = parseYaml(readText(file, `${field}:`), file);
  } catch (err) {
    throw new CredentialError((err as Error).message);
  }
  const parsed = credentialsFileSchema.safeParse(raw);
  if (!parsed.success) {
    // Never echo values from a secrets file: name the field only.
    const i = parsed.error.issues[0]!;
    throw new CredentialError(`${file}: ${fieldName(i.path)}: ${i.message}`);
  }
  return parsed.data.credentials;
}

function resolvePaths(config: Config, dir: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const tls = config.server.tls;
  return {
    ...config,
    server: {
      ...config.server,
      tls: {
        ...tls,
        certFile: abs(tls.certFile),
        keyFile: abs(tls.keyFile),
        ...(tls.stagingRoots ? { stagingRoots: tls.stagingRoots.map(abs) } : {}),
        ...(tls.clientAuth ? { clientAuth: { ...tls.clientAuth, caFile: abs(tls.clientAuth.caFile) } } : {}),
      },
    },
    ...(config.audit
      ? {
          audit: {
            ...config.audit,
            file: abs(config.audit.file),
            ...(config.audit.syslog?.caFile ? { syslog: { ...config.audit.syslog, caFile: abs(config.audit.syslog.caFile) } } : {}),
          },
        }
      : {}),
    hsm: {
      ...config.hsm,
      nodes: config.hsm.nodes.map((n) => ({ ...n, pin: n.pin.file ? { file: abs(n.pin.file) } : n.pin })),
    },
    keyStores: config.keyStores.map((s) => ({ ...s, credentialsFile: abs(s.credentialsFile) })),
  };
}

function unique<T>(items: readonly T[], key: (t: T) => string, what: string): void {
  const seen = new Set<string>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) throw new ConfigError(`${what} "${k}" appears twice: each must be unique`);
    seen.add(k);
  }
}

/**
 * One HSM key, one external key: a label named by two keys (in one store or two) or by a key and
 * the health prober would let one key store, or anyone who can make the prober encrypt, decrypt
 * another's ciphertexts.
 */
function checkKeyLabels(config: Config): void {
  const owner = new Map<string, string>([[config.hsm.healthKeyLabel, 'hsm.healthKeyLabel']]);
  config.keyStores.forEach((s, i) => {
    for (const k of s.keys) {
      const here = `keyStores[${i}] (${s.name}) key "${k.id}"`;
      const first = owner.get(k.label);
      if (first !== undefined) {
        throw new ConfigError(`${here}: label "${k.label}" is already used by ${first}: give each key its own HSM key (label), or one store could decrypt another's ciphertexts`);
      }
      owner.set(k.label, here);
    }
  });
}

export interface LoadOptions {
  /** `xks cert install` writes the certificate and key: they need not exist yet. */
  certificateMayBeMissing?: boolean;
}

/** Checks across fields and on disk, after the schema. */
export function checkConfig(config: Config, opts: LoadOptions = {}): void {
  unique(config.keyStores, (s) => s.name, 'keyStores[].name');
  unique(config.keyStores, (s) => s.uriPathPrefix + XKS_PATH_SUFFIX, 'keyStores[].uriPathPrefix');
  unique(config.hsm.nodes, (n) => n.id, 'hsm.nodes[].id');
  config.keyStores.forEach((s, i) => {
    unique(s.keys, (k) => k.id, `keyStores[${i}].keys[].id`);
    for (const k of s.keys) {
      // Spec T8: the whole URI must fit 256 characters; host name + prefix + key id compete for it.
      const uri = `https://${config.proxy.hostname}${s.uriPathPrefix}${XKS_PATH_SUFFIX}/keys/${k.id}/decrypt`;
      if (uri.length > 256) throw new ConfigError(`keyStores[${i}].keys: key "${k.id}" makes the URI ${uri.length} characters long; KMS allows 256: shorten the key id or the prefix`);
    }
    loadCredentials(s.credentialsFile, `keyStores[${i}].credentialsFile`);
  });
  checkKeyLabels(config);
  config.hsm.nodes.forEach((n, i) => {
    if (n.pin.file) checkSecretFileMode(n.pin.file, `hsm.nodes[${i}].pin.file`, CredentialError);
  });
  const keyFile = config.server.tls.keyFile;
  if (!existsSync(keyFile)) {
    if (!opts.certificateMayBeMissing) throw new ConfigError(`server.tls.keyFile: ${keyFile}: no such file: make a key and CSR with xks cert csr, then put the certificate in place with xks cert install`);
  } else checkSecretFileMode(keyFile, 'server.tls.keyFile');
  const syslog = config.audit?.syslog;
  if (config.mode === 'production' && syslog && !syslog.tls && !['127.0.0.1', '::1', 'localhost'].includes(syslog.host)) {
    throw new ConfigError(`audit.syslog.tls: audit records would cross the network to ${syslog.host} in clear text; set tls: true (with caFile for a private CA), or forward to a local relay on 127.0.0.1`);
  }
  const ka = config.server.keepAliveTimeoutMs;
  if (config.mode === 'production' && ka <= 350_000) {
    throw new ConfigError(`server.keepAliveTimeoutMs (${ka}) must be above the AWS NLB idle timeout of 350000 ms, or idle connections cost KMS a new TLS handshake`);
  }
}

/**
 * xksProxyFleetSize is the number of instances configured to serve: with a fleet list it is the
 * list's length, and a proxy.fleetSize that says otherwise is refused rather than reported to KMS.
 */
function resolveFleet(config: Config, raw: unknown): Config {
  const fleet = config.fleet;
  if (!fleet) return config;
  unique(fleet.instances, (i) => i.id, 'fleet.instances[].id');
  unique(fleet.instances, (i) => `${i.host}:${i.port ?? config.server.port}`, 'fleet.instances[] address');
  const given = (raw as { proxy?: { fleetSize?: unknown } } | null)?.proxy?.fleetSize;
  if (given !== undefined && given !== fleet.instances.length) {
    throw new ConfigError(`proxy.fleetSize (${String(given)}) disagrees with the ${fleet.instances.length} instance(s) in fleet.instances: remove proxy.fleetSize, the fleet list sets it`);
  }
  return { ...config, proxy: { ...config.proxy, fleetSize: fleet.instances.length } };
}

/** Validate a parsed document against the schema; returns the typed config. */
export function parseConfig(raw: unknown, source: string): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatIssues(source, parsed.error.issues));
  return resolveFleet(parsed.data, raw);
}

export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  const abs = resolve(file);
  const dir = dirname(abs);
  const config = resolvePaths(parseConfig(parseYaml(readText(abs, 'config file'), abs), abs), dir);
  checkConfig(config, opts);
  return { config, file: abs, dir };
}
