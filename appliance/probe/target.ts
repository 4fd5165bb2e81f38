// What the probe talks to: the endpoint, the key store's URI path, the credential, the keys and
// the TLS material, from flags or from a demo's demo.json. Secrets come from files, never argv.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CliError } from '../cli/errors.js';

export interface ProbeKeys {
  /** Allows ENCRYPT and DECRYPT: every crypto check runs on it. */
  encryptDecrypt: string;
  encryptOnly?: string;
  decryptOnly?: string;
  noUsage?: string;
  disabled?: string;
}

export interface ClientCert {
  certPem: string;
  keyPem: string;
}

export interface ProbeTarget {
  /** https://host[:port], no path. */
  endpoint: URL;
  /** `[/prefix]/kms/xks/v1` (T7). */
  uriPath: string;
  region: string;
  accessKeyId: string;
  secret: string;
  keys: ProbeKeys;
  /** PEM roots to trust besides the system's (a private or development CA). */
  caPem?: string;
  clientCert?: ClientCert;
  /** A client certificate the endpoint must refuse (S9). */
  wrongClientCert?: ClientCert;
}

export interface ProbeFlags {
  demo?: string;
  viaHaproxy?: boolean;
  endpoint?: string;
  uriPath?: string;
  region?: string;
  accessKeyId?: string;
  secretFile?: string;
  key?: string;
  encryptOnlyKey?: string;
  decryptOnlyKey?: string;
  noUsageKey?: string;
  disabledKey?: string;
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  wrongClientCert?: string;
  wrongClientKey?: string;
}

/** demo.json as the demo contract fixes it; only the fields the probe uses. */
interface DemoJson {
  endpoint: string;
  uriPath: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  caFile: string;
  clientCert?: string;
  clientKey?: string;
  wrongClientCert?: string;
  wrongClientKey?: string;
  keys: ProbeKeys;
  haproxy?: { endpoint: string };
}

const READ_ERRORS: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory' };
const readError = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return READ_ERRORS[code] ?? code;
};

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${file}: ${readError(err)}`);
  }
}

/** A file holding a secret must be readable by its owner only. */
function readSecretFile(file: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new CliError(`cannot read ${what} ${file}: ${readError(err)}`);
  }
  if (mode & 0o077) throw new CliError(`${what} ${file} is readable by others: run chmod 600 ${file}`);
  return readText(file, what);
}

/**
 * The secret file holds the raw secret on one line, or the KMS console configuration file
 * ({"XksProxyUriPath", "XksProxyAuthenticationCredential": {"AccessKeyId", "RawSecretAccessKey"}}),
 * which then also gives the URI path and access key id.
 */
function parseSecretFile(text: string): { secret: string; accessKeyId?: string; uriPath?: string } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const doc = JSON.parse(trimmed) as { XksProxyUriPath?: string; XksProxyAuthenticationCredential?: { AccessKeyId?: string; RawSecretAccessKey?: string } };
      const cred = doc.XksProxyAuthenticationCredential;
      if (typeof cred?.RawSecretAccessKey === 'string') {
        return { secret: cred.RawSecretAccessKey, accessKeyId: cred.AccessKeyId, uriPath: doc.XksProxyUriPath };
      }
    } catch {
      // not JSON after all: a secret may start with '{'? It cannot (S7 alphabet); fall through
    }
    throw new CliError('the secret file is JSON but not a KMS console configuration file: give the raw secret on one line, or that file');
  }
  const secret = trimmed.split('\n')[0]!.trim();
  if (!secret) throw new CliError('the secret file is empty: put the raw secret access key on its first line');
  return { secret };
}

function loadDemo(file: string): DemoJson {
  const doc = JSON.parse(readSecretFile(file, 'demo file')) as DemoJson;
  if (typeof doc.endpoint !== 'string' || typeof doc.uriPath !== 'string' || !doc.keys?.encryptDecrypt) {
    throw new CliError(`${file} is not a demo.json (no endpoint, uriPath or keys): give DIR/demo.json of a running demo`);
  }
  return doc;
}

function clientCert(certFile: string | undefined, keyFile: string | undefined, what: string): ClientCert | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new CliError(`give both the ${what} certificate and its key`);
  return { certPem: readText(certFile, `${what} certificate`), keyPem: readSecretFile(keyFile, `${what} key`) };
}

/** Flags win over demo.json, so `--demo F --endpoint URL` probes the same appliance another way. */
export function resolveTarget(flags: ProbeFlags): ProbeTarget {
  const demo = flags.demo ? loadDemo(flags.demo) : undefined;
  const demoDir = flags.demo ? dirname(resolve(flags.demo)) : '.';
  const demoPath = (p: string | undefined) => (p ? resolve(demoDir, p) : undefined);

  let endpointText = flags.endpoint ?? demo?.endpoint;
  if (flags.viaHaproxy) {
    if (!demo?.haproxy) throw new CliError('--via-haproxy needs a demo started with --haproxy-port');
    endpointText = demo.haproxy.endpoint;
  }
  if (!endpointText) throw new CliError('give --endpoint https://host[:port] (or --demo DIR/demo.json)');
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    throw new CliError(`--endpoint ${endpointText} is not a URL: give https://host[:port]`);
  }
  if (endpoint.protocol !== 'https:' || (endpoint.pathname !== '/' && endpoint.pathname !== '')) {
    throw new CliError('--endpoint must be https://host[:port] without a path: put the path in --uri-path');
  }

  const fromFile = flags.secretFile ? parseSecretFile(readSecretFile(flags.secretFile, 'secret file')) : undefined;
  const secret = fromFile?.secret ?? demo?.secretAccessKey;
  const accessKeyId = flags.accessKeyId ?? fromFile?.accessKeyId ?? demo?.accessKeyId;
  const uriPath = flags.uriPath ?? fromFile?.uriPath ?? demo?.uriPath;
  if (!uriPath || !/^(\/[A-Za-z0-9_-]+)*\/kms\/xks\/v1$/.test(uriPath)) {
    throw new CliError('give --uri-path /prefix/kms/xks/v1 (the XksProxyUriPath of the key store)');
  }
  if (!accessKeyId) throw new CliError('give --access-key-id ID');
  if (!secret) throw new CliError('give --secret-file FILE (the raw secret, or the KMS console configuration file)');
  const key = flags.key ?? demo?.keys.encryptDecrypt;
  if (!key) throw new CliError('give --key ID: an external key that allows ENCRYPT and DECRYPT');

  const keys: ProbeKeys = { encryptDecrypt: key };
  const pick = (flag: string | undefined, fromDemo: string | undefined) => flag ?? (flags.key ? undefined : fromDemo);
  const more = {
    encryptOnly: pick(flags.encryptOnlyKey, demo?.keys.encryptOnly),
    decryptOnly: pick(flags.decryptOnlyKey, demo?.keys.decryptOnly),
    noUsage: pick(flags.noUsageKey, demo?.keys.noUsage),
    disabled: pick(flags.disabledKey, demo?.keys.disabled),
  };
  for (const [name, id] of Object.entries(more)) if (id) keys[name as keyof typeof more] = id;

  const caFile = flags.ca ?? demoPath(demo?.caFile);
  return {
    endpoint,
    uriPath,
    region: flags.region ?? demo?.region ?? 'us-east-1',
    accessKeyId,
    secret,
    keys,
    ...(caFile ? { caPem: readText(caFile, 'CA file') } : {}),
    ...optional('clientCert', clientCert(flags.clientCert ?? demoPath(demo?.clientCert), flags.clientKey ?? demoPath(demo?.clientKey), 'client')),
    ...optional('wrongClientCert', clientCert(flags.wrongClientCert ?? demoPath(demo?.wrongClientCert), flags.wrongClientKey ?? demoPath(demo?.wrongClientKey), 'wrong client')),
  };
}

const optional = <K extends string, V>(name: K, value: V | undefined): Partial<Record<K, V>> => (value === undefined ? {} : ({ [name]: value } as Record<K, V>));
