// `xks haproxy render | lint | keepalived`: the HAProxy pair in front of the appliance.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { optionsFromConfig, type SniRoute } from '../haproxy-options.js';
import { renderKeepalived, type KeepalivedPeer } from '../../haproxy/keepalived.js';
import { formatFindings, lintExitCode, lintHaproxy } from '../../haproxy/lint.js';
import { DEFAULT_MONITOR_PORT, NLB_DEFAULT_IDLE_TIMEOUT_MS, type Endpoint } from '../../haproxy/options.js';
import { renderHaproxy } from '../../haproxy/render.js';
import { canLoadVariant, chooseVariant, installedHaproxyVersion, type VariantRequest } from '../../haproxy/variant.js';
import { CliError } from './errors.js';

const collect = <T>(parse: (v: string) => T) => (value: string, previous: T[] = []) => [...previous, parse(value)];

/** "10.0.0.1:443", "[::1]:443" */
function parseEndpoint(text: string, flag: string): Endpoint {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new CliError(`${flag} ${text}: give ADDRESS:PORT, e.g. 10.0.0.5:443 or [2001:db8::5]:443`);
  return { address: (m[1] ?? m[2])!, port };
}

/** NAME=VALUE for --server, --sni, --peer. */
function splitPair(text: string, flag: string, shape: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) throw new CliError(`${flag} ${text}: give ${shape}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function parseSeconds(text: string, flag: string, min: number, max: number): number {
  const s = Number(text);
  if (!Number.isInteger(s) || s < min || s > max) throw new CliError(`${flag} ${text}: give whole seconds from ${min} to ${max}`);
  return s * 1000;
}

/** Errors from loading or rendering are operator-readable: show the message, never a stack. */
function operatorError(err: unknown): never {
  if (err instanceof CliError) throw err;
  throw new CliError(err instanceof Error ? err.message : String(err));
}

interface RenderFlags {
  config: string;
  out?: string;
  variant: VariantRequest;
  bind?: Endpoint;
  monitor?: Endpoint;
  monitorUri?: string;
  server?: Array<{ name: string } & Endpoint>;
  sni?: SniRoute[];
  acceptProxy: boolean;
  nlbIdleTimeout?: number;
  checkCa?: string;
  unprivileged?: boolean;
  runDir?: string;
  check: boolean;
}

/**
 * haproxy -c on the rendered file, when the haproxy on PATH can load this variant at all.
 * Returns what was checked; throws (leaving `pending` for inspection) when haproxy rejects it.
 */
function checkWithHaproxy(pending: string, file: string, variant: '2.6' | '2.9', installed: string | undefined): string {
  if (installed === undefined) return `not checked: no haproxy on PATH; run haproxy -c -f ${file} where it will run`;
  if (!canLoadVariant(installed, variant)) {
    return `not checked: the haproxy on PATH is ${installed}, which cannot load the ${variant} variant; run haproxy -c -f ${file} on the HAProxy ${variant}+ host`;
  }
  const r = spawnSync('haproxy', ['-c', '-f', pending], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) {
    const alerts = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /ALERT|error/i.test(l)).slice(0, 10);
    throw new CliError(`haproxy ${installed} rejects the rendered configuration (left in ${pending}; ${file} is unchanged):\n${alerts.join('\n')}`);
  }
  return `haproxy ${installed} -c: configuration is valid`;
}

async function render(flags: RenderFlags): Promise<void> {
  const { config } = await loadConfig(flags.config);
  const installed = installedHaproxyVersion();
  const { variant, reason } = chooseVariant(flags.variant, installed);
  const outDir = flags.out ? resolve(flags.out) : undefined;
  const runDir = flags.runDir ? resolve(flags.runDir) : outDir;
  if (flags.unprivileged && !runDir) throw new CliError('--unprivileged needs --run-dir DIR (or --out DIR) for the admin socket');
  let rendered;
  try {
    rendered = renderHaproxy(
      optionsFromConfig(config, {
        variant,
        variantReason: reason,
        acceptProxy: flags.acceptProxy,
        ...(flags.bind ? { bind: flags.bind } : {}),
        monitor: { ...flags.monitor, ...(flags.monitorUri ? { uri: flags.monitorUri } : {}) },
        ...(flags.server ? { servers: flags.server } : {}),
        ...(flags.sni ? { sni: flags.sni } : {}),
        ...(flags.nlbIdleTimeout ? { nlbIdleTimeoutMs: flags.nlbIdleTimeout } : {}),
        ...(flags.checkCa ? { checkCaFile: resolve(flags.checkCa) } : {}),
        ...(flags.unprivileged ? { unprivileged: true, runDir: runDir! } : {}),
      }),
      flags.nlbIdleTimeout,
    );
  } catch (err) {
    operatorError(err);
  }
  if (!outDir) {
    // The configuration on stdout (pipe it anywhere), what to know about it on stderr.
    process.stdout.write(rendered.text);
    for (const n of rendered.notes) process.stderr.write(`note: ${n}\n`);
    return;
  }
  mkdirSync(outDir, { recursive: true });
  // Checked first, then renamed over the old file: a running HAProxy's configuration is never
  // replaced by one that does not load.
  const file = join(outDir, 'haproxy.cfg');
  const pending = `${file}.new`;
  writeFileSync(pending, rendered.text, { mode: 0o644 });
  const checked = flags.check ? checkWithHaproxy(pending, file, variant, installed) : 'not checked (--no-check)';
  renameSync(pending, file);
  const lines = [`Rendered ${file} for HAProxy ${variant}${variant === '2.9' ? '+' : ''}`, ...rendered.notes.map((n) => `  - ${n}`), checked];
  process.stdout.write(lines.join('\n') + '\n');
}

function lint(file: string, flags: { json?: boolean; nlbIdleTimeout?: number }): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : 'cannot be read'}`);
  }
  const nlbIdleTimeoutMs = flags.nlbIdleTimeout ?? NLB_DEFAULT_IDLE_TIMEOUT_MS;
  const findings = lintHaproxy(text, { nlbIdleTimeoutMs });
  process.stdout.write(flags.json ? JSON.stringify({ file, nlbIdleTimeoutMs, findings }, null, 2) + '\n' : formatFindings(file, findings));
  process.exitCode = lintExitCode(findings);
}

interface KeepalivedFlags {
  interface: string;
  vip: string;
  peer?: KeepalivedPeer[];
  routerId: string;
  monitorUrl: string;
  acceptProxy: boolean;
  out?: string;
}

function keepalived(flags: KeepalivedFlags): void {
  let rendered;
  try {
    rendered = renderKeepalived({
      interface: flags.interface,
      vip: flags.vip,
      virtualRouterId: Number(flags.routerId),
      peers: flags.peer ?? [],
      monitorUrl: flags.monitorUrl,
      monitorAcceptsProxy: flags.acceptProxy,
    });
  } catch (err) {
    operatorError(err);
  }
  const alternative =
    'Alternative without VRRP: register both HAProxy addresses as IP targets of the NLB target group; the NLB health check on the monitor then does the failover (docs/network-guide.md).';
  if (!flags.out) {
    for (const r of rendered) process.stdout.write(`# ---- ${r.peer}: /etc/keepalived/keepalived.conf ----\n${r.text}\n`);
    process.stderr.write(`note: ${alternative}\n`);
    return;
  }
  const outDir = resolve(flags.out);
  mkdirSync(outDir, { recursive: true });
  const files = rendered.map((r) => {
    const file = join(outDir, `keepalived-${r.peer}.conf`);
    writeFileSync(file, r.text, { mode: 0o644 });
    return `Rendered ${file} (install on ${r.peer} as /etc/keepalived/keepalived.conf)`;
  });
  process.stdout.write([...files, `  - ${alternative}`].join('\n') + '\n');
}

export function register(program: Command): void {
  const haproxy = program.command('haproxy').description('HAProxy in front of the appliance: render its configuration, lint an existing one, keepalived');

  haproxy
    .command('render')
    .description('render haproxy.cfg (TCP passthrough, SNI routing, NLB monitor) from the appliance configuration')
    .requiredOption('--config <file>', 'the appliance configuration file')
    .option('--out <dir>', 'write <dir>/haproxy.cfg and check it with haproxy -c (default: print to stdout)')
    .addOption(new Option('--variant <version>', 'HAProxy version to render for; auto: the haproxy on PATH').choices(['auto', '2.6', '2.9']).default('auto'))
    .option('--bind <addr:port>', 'where KMS traffic arrives (default 0.0.0.0:443)', (v) => parseEndpoint(v, '--bind'))
    .option('--monitor <addr:port>', `the NLB health check frontend (default: bind address, port ${DEFAULT_MONITOR_PORT})`, (v) => parseEndpoint(v, '--monitor'))
    .option('--monitor-uri <path>', 'monitor path (default: health.path)')
    .option(
      '--server <name=addr:port>',
      'a Node instance, repeatable (default: server.host:server.port)',
      collect((v) => {
        const [name, ep] = splitPair(v, '--server', 'NAME=ADDRESS:PORT, e.g. node1=10.0.1.10:443');
        return { name, ...parseEndpoint(ep, '--server') };
      }),
    )
    .option(
      '--sni <host[=backend]>',
      'another SNI host name, on its own backend or the one named, repeatable',
      collect((v) => {
        if (!v.includes('=')) return { hostname: v };
        const [hostname, backend] = splitPair(v, '--sni', 'HOST or HOST=BACKEND');
        return { hostname, backend };
      }),
    )
    .option('--no-accept-proxy', 'the NLB target group does not send PROXY v2')
    .option('--nlb-idle-timeout <seconds>', 'the NLB TCP idle timeout (default 350)', (v) => parseSeconds(v, '--nlb-idle-timeout', 60, 6000))
    .option('--check-ca <file>', 'verify Node certificates in health checks against this CA bundle')
    .option('--unprivileged', 'for a non-root HAProxy (demo, tests): no chroot/user/group, socket in --run-dir')
    .option('--run-dir <dir>', 'where the unprivileged admin socket goes (default: --out)')
    .option('--no-check', 'do not run haproxy -c on the written file')
    .action((flags: RenderFlags) => render(flags));

  haproxy
    .command('lint')
    .description('report what in an existing haproxy.cfg breaks or weakens XKS traffic, with fixes; exit 1 on errors or warnings')
    .argument('<file>', 'haproxy.cfg to read')
    .option('--json', 'machine-readable output')
    .option('--nlb-idle-timeout <seconds>', 'the NLB TCP idle timeout (default 350)', (v) => parseSeconds(v, '--nlb-idle-timeout', 60, 6000))
    .action((file: string, flags: { json?: boolean; nlbIdleTimeout?: number }) => lint(file, flags));

  haproxy
    .command('keepalived')
    .description('render keepalived.conf for an HAProxy pair sharing a virtual IP (VRRP, unicast, tracks the monitor)')
    .requiredOption('--interface <name>', 'the network interface carrying the virtual IP')
    .requiredOption('--vip <cidr>', 'the virtual IP with prefix length, e.g. 10.0.0.10/24')
    .requiredOption(
      '--peer <name=addr>',
      'a HAProxy host and its own address, twice; the first is preferred',
      collect((v) => {
        const [name, address] = splitPair(v, '--peer', 'NAME=ADDRESS, e.g. haproxy-a=10.0.0.11');
        return { name, address };
      }),
    )
    .option('--router-id <n>', 'VRRP virtual_router_id, 1-255, unique on the segment', '51')
    .option('--monitor-url <url>', 'the HAProxy monitor as seen from each host', `http://127.0.0.1:${DEFAULT_MONITOR_PORT}/healthz`)
    .option('--no-accept-proxy', 'haproxy.cfg was rendered with --no-accept-proxy: probe the monitor without a PROXY header')
    .option('--out <dir>', 'write <dir>/keepalived-<name>.conf (default: print to stdout)')
    .action((flags: KeepalivedFlags) => keepalived(flags));
}
