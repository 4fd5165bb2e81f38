// `xks init`: a production configuration skeleton from a few facts (host name, HSM module, token,
// PIN file, nodes), the first SigV4 credential set, and the directories and secret files with safe
// modes (and owner, when run as root for the service user). Nothing is overwritten without --force.
// What it cannot do (the certificate, keys, the AWS side) it prints as the next steps.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { writeFileAtomic } from './certs/atomic-write.js';
import { CliError } from './cli/errors.js';
import { newCredential } from './credentials.js';
import { EXIT } from './exit-codes.js';

export interface InitNode {
  id: string;
  tokenLabel?: string;
  slot?: number;
  model?: string;
  env: Record<string, string>;
}

export interface InitOptions {
  /** Instance name: the configuration is DIR/NAME.yaml, the systemd unit xks@NAME. */
  name: string;
  dir: string;
  host: string;
  module: string;
  tokenLabel?: string;
  slot?: number;
  pinFile: string;
  nodes: InitNode[];
  store: string;
  port: number;
  fleetSize: number;
  runDir: string;
  logDir: string;
  stagingRoots: string[];
  /** Owner of the secret files and directories (a user name), when run as root. */
  owner?: string;
  force: boolean;
}

export interface InitResult {
  configFile: string;
  credentialsFile: string;
  certFile: string;
  keyFile: string;
}

function ownerIds(user: string): { uid: number; gid: number } {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new CliError(`--owner ${user}: no such user; create it first (useradd --system --home /var/lib/xks --shell /usr/sbin/nologin ${user})`, EXIT.CONFIG);
  }
}

function configDocument(o: InitOptions, paths: { credentialsFile: string; certFile: string; keyFile: string }): object {
  return {
    mode: 'production',
    proxy: { hostname: o.host, fleetSize: o.fleetSize, vendor: 'xks-appliance', regions: ['us-east-1'] },
    server: {
      host: '0.0.0.0',
      port: o.port,
      tls: {
        certFile: paths.certFile,
        keyFile: paths.keyFile,
        minVersion: 'TLSv1.2',
        ...(o.stagingRoots.length ? { stagingRoots: o.stagingRoots } : {}),
      },
      keepAliveTimeoutMs: 360_000,
      allow: ['0.0.0.0/0', '::/0'],
    },
    health: { path: '/healthz' },
    metrics: { host: '127.0.0.1', port: 9464 },
    logging: { level: 'info' },
    audit: { file: join(o.logDir, 'audit.log') },
    control: { socket: join(o.runDir, 'control.sock') },
    hsm: {
      vendor: 'PKCS#11',
      healthKeyLabel: 'xks-health-test',
      nodes: o.nodes.map((n) => ({
        id: n.id,
        model: n.model ?? 'PKCS#11 HSM',
        module: o.module,
        ...((n.tokenLabel ?? o.tokenLabel) !== undefined ? { tokenLabel: n.tokenLabel ?? o.tokenLabel } : {}),
        ...(n.tokenLabel === undefined && (n.slot ?? o.slot) !== undefined ? { slot: n.slot ?? o.slot } : {}),
        pin: { file: o.pinFile },
        ...(Object.keys(n.env).length ? { env: n.env } : {}),
      })),
    },
    keyStores: [
      {
        name: o.store,
        uriPathPrefix: `/${o.store}`,
        credentialsFile: paths.credentialsFile,
        quota: { requestsPerSecond: 1800 },
        keys: [],
      },
    ],
  };
}

const HEADER = (o: InitOptions) =>
  [
    `# XKS proxy instance "${o.name}", written by xks init. Reference: README "Configuration reference".`,
    '# keyStores[].keys is empty: add keys with xks keys create (they must exist on every HSM node).',
    '',
  ].join('\n');

export function initAppliance(o: InitOptions): InitResult {
  const dir = resolve(o.dir);
  const configFile = join(dir, `${o.name}.yaml`);
  const rel = { credentialsFile: `secrets/${o.name}-${o.store}-credentials.yaml`, certFile: `tls/${o.name}-chain.pem`, keyFile: `tls/${o.name}-key.pem` };
  const credentialsFile = join(dir, rel.credentialsFile);
  if (!o.force) {
    for (const f of [configFile, credentialsFile]) if (existsSync(f)) throw new CliError(`${f} exists: choose another --name, or give --force to replace it`, EXIT.CONFIG);
  }
  if (!existsSync(o.pinFile)) {
    throw new CliError(`--pin-file ${o.pinFile}: no such file: write the token's user PIN into it first (umask 077; cat > ${o.pinFile}), mode 0600`, EXIT.CREDENTIALS);
  }
  if ((statSync(o.pinFile).mode & 0o077) !== 0) throw new CliError(`--pin-file ${o.pinFile} is readable by others: run chmod 600 ${o.pinFile}`, EXIT.CREDENTIALS);
  for (const r of o.stagingRoots) if (!existsSync(r)) throw new CliError(`--staging-root ${r}: no such file`, EXIT.CONFIG);
  const owner = o.owner ? ownerIds(o.owner) : undefined;

  // The configuration directory is readable by the service; secrets and TLS keys by it alone.
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  // The service user reads its configuration through the directory's group.
  if (owner) chownSync(dir, statSync(dir).uid, owner.gid);
  for (const sub of ['secrets', 'tls']) {
    const d = join(dir, sub);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    if (owner) chownSync(d, owner.uid, owner.gid);
  }
  // Created here for runs without systemd; under systemd the unit makes and owns them.
  for (const d of [o.logDir, o.runDir]) {
    try {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      if (owner) chownSync(d, owner.uid, owner.gid);
    } catch {
      // /run/xks may not be ours to create; systemd's RuntimeDirectory= makes it at start.
    }
  }
  writeFileAtomic(credentialsFile, `# SigV4 credentials of key store "${o.store}": keep mode 0600.\n${stringify({ credentials: [newCredential()] })}`, 0o600, owner);
  writeFileAtomic(configFile, HEADER(o) + stringify(configDocument(o, rel)), 0o640, owner);
  return { configFile, credentialsFile, certFile: join(dir, rel.certFile), keyFile: join(dir, rel.keyFile) };
}

export function nextSteps(o: InitOptions, r: InitResult): string {
  const cfg = r.configFile;
  return [
    `Wrote ${cfg} (production mode) and ${r.credentialsFile} (one SigV4 credential set, mode 0600).`,
    'Next:',
    `  1. xks cert csr --host ${o.host} --out ${dirname(r.certFile)}     # private key (0600) and CSR`,
    `  2. Have the CSR signed by a CA that KMS trusts (xks cert roots); for staging, by your own CA listed in server.tls.stagingRoots`,
    `  3. xks cert install --config ${cfg} --chain CHAIN.pem --key ${dirname(r.certFile)}/${o.host}.key`,
    `  4. xks keys create --config ${cfg} ...   # the health-check key and the keys KMS will use, on every HSM node`,
    `  5. xks check --config ${cfg}            # configuration, certificate, HSM login`,
    `  6. systemctl enable --now xks@${o.name}   (or: xks serve --config ${cfg})`,
    `  7. xks doctor --config ${cfg}           # every check OK`,
    `  8. xks kms-config --config ${cfg} --store ${o.store} --out kms-${o.store}.json`,
    `  9. In AWS KMS: create the external key store (proxy URI https://${o.host}, path /${o.store}/kms/xks/v1) and upload kms-${o.store}.json`,
  ].join('\n');
}
