// `xks init`: a production configuration skeleton (appliance/init.ts) from flags.
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { HOSTNAME } from '../config/schema.js';
import { initAppliance, nextSteps, type InitNode, type InitOptions } from '../init.js';
import { EXIT } from '../exit-codes.js';
import { portArg } from './demo.js';
import { CliError } from './errors.js';

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function hostArg(value: string): string {
  if (!HOSTNAME.test(value)) throw new InvalidArgumentError('a DNS name: letters, digits, dots and hyphens (the name KMS connects to)');
  return value;
}

function nameArg(value: string): string {
  if (!NAME.test(value)) throw new InvalidArgumentError('1-64 characters of A-Z a-z 0-9 _ -');
  return value;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive whole number');
  return n;
}

/** "hsm-1" or "hsm-1,token=xks-a,SOFTHSM2_CONF=/var/lib/xks/hsm-1/softhsm2.conf" */
function nodeArg(value: string, previous: InitNode[] = []): InitNode[] {
  const [id, ...pairs] = value.split(',');
  if (!id || !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new InvalidArgumentError('ID[,token=LABEL][,slot=N][,model=TEXT][,ENV_VAR=VALUE...], ID of A-Z a-z 0-9 . _ -');
  const node: InitNode = { id, env: {} };
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`"${pair}": give NAME=VALUE`);
    const [k, v] = [pair.slice(0, at), pair.slice(at + 1)];
    if (k === 'token') node.tokenLabel = v;
    else if (k === 'slot') node.slot = Number(v);
    else if (k === 'model') node.model = v;
    else if (/^[A-Z_][A-Z0-9_]*$/.test(k)) node.env[k] = v;
    else throw new InvalidArgumentError(`"${k}": use token, slot, model or an environment variable name in capitals`);
  }
  return [...previous, node];
}

const collect = (value: string, previous: string[] = []) => [...previous, resolve(value)];

interface Flags {
  name: string;
  dir: string;
  host: string;
  module: string;
  token?: string;
  slot?: number;
  pinFile: string;
  node?: InitNode[];
  store: string;
  port: number;
  fleetSize: number;
  runDir?: string;
  logDir?: string;
  stagingRoot?: string[];
  owner?: string;
  force?: boolean;
}

export function register(program: Command): void {
  program
    .command('init')
    .description(
      'Write a production configuration skeleton (DIR/NAME.yaml), the first SigV4 credentials (0600) and the directories\n' +
        'with safe modes, then print the next steps: CSR, CA, cert install, keys, kms-config, the key store in AWS.',
    )
    .requiredOption('--host <NAME>', 'the DNS name KMS connects to (proxy.hostname)', hostArg)
    .requiredOption('--module <PATH>', 'the HSM vendor PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so')
    .option('--token <LABEL>', 'token label on every node (or --slot)')
    .option('--slot <N>', 'slot number on every node, instead of --token', (v) => Number(v))
    .requiredOption('--pin-file <FILE>', 'file holding the token user PIN (mode 0600; never put the PIN itself on a command line)')
    .option('--node <SPEC>', 'an HSM node: ID[,token=LABEL][,slot=N][,model=TEXT][,ENV=VALUE...] (repeatable; default one node hsm-1)', nodeArg)
    .option('--name <NAME>', 'instance name: DIR/NAME.yaml, systemd unit xks@NAME', nameArg, 'xks')
    .option('--dir <DIR>', 'configuration directory', '/etc/xks')
    .option('--store <NAME>', 'the first key store (URI path /NAME/kms/xks/v1)', nameArg, 'store1')
    .option('--port <PORT>', 'XKS API port', portArg, 443)
    .option('--fleet-size <N>', 'proxy instances serving this key store (xksProxyFleetSize)', positive, 1)
    .option('--run-dir <DIR>', 'control socket directory (default /run/xks/NAME, the unit\'s RuntimeDirectory)')
    .option('--log-dir <DIR>', 'audit log directory (default /var/log/xks/NAME, the unit\'s LogsDirectory)')
    .option('--staging-root <FILE>', 'PEM root of an internal CA to accept before the public certificate arrives (repeatable; KMS will not accept it)', collect)
    .option('--owner <USER>', 'when run as root: the service user that owns the secret files (e.g. xks)')
    .option('--force', 'replace an existing configuration and credentials file')
    .action((f: Flags) => {
      if (!f.token && f.slot === undefined && !(f.node ?? []).every((n) => n.tokenLabel || n.slot !== undefined)) {
        throw new CliError('give --token LABEL or --slot N (or token=/slot= in every --node)', EXIT.CONFIG);
      }
      const opts: InitOptions = {
        name: f.name,
        dir: f.dir,
        host: f.host,
        module: f.module,
        ...(f.token ? { tokenLabel: f.token } : {}),
        ...(f.slot !== undefined ? { slot: f.slot } : {}),
        pinFile: resolve(f.pinFile),
        nodes: f.node?.length ? f.node : [{ id: 'hsm-1', env: {} }],
        store: f.store,
        port: f.port,
        fleetSize: f.fleetSize,
        runDir: resolve(f.runDir ?? `/run/xks/${f.name}`),
        logDir: resolve(f.logDir ?? `/var/log/xks/${f.name}`),
        stagingRoots: f.stagingRoot ?? [],
        ...(f.owner ? { owner: f.owner } : {}),
        force: !!f.force,
      };
      const result = initAppliance(opts);
      process.stdout.write(nextSteps(opts, result) + '\n');
    });
}
