// `xks fleet status | restart`: the instances of fleet.instances as one service. status asks every
// instance how it is (health, agent-check, version, configuration digest); restart restarts them
// one at a time, each only while another serves, and moves on only once the restarted one serves
// again (and, given HAProxy's admin socket, once HAProxy sends it traffic again).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { haproxyServers, serverUp } from '../fleet/haproxy-state.js';
import { fleetMembers, type FleetMember } from '../fleet/members.js';
import { probeMember, type MemberState } from '../fleet/probe.js';
import { CliError } from './errors.js';

const POLL_MS = 500;

function secondsArg(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('seconds from 0 to 3600');
  return n * 1000;
}

function table(states: MemberState[]): string {
  const rows = [
    ['INSTANCE', 'ADDRESS', 'HEALTH', 'AGENT', 'VERSION', 'CONFIG', 'STARTED'],
    ...states.map((s) => [
      s.id,
      s.address,
      s.health,
      s.agent ?? '-',
      s.version ?? '-',
      s.configDigest ?? '-',
      s.startedAt ? new Date(s.startedAt * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Problems an operator should act on: instances not serving, or disagreeing with the others. */
export function fleetProblems(states: MemberState[]): string[] {
  const out = states.filter((s) => !s.serving).map((s) => `${s.id} is not serving (health ${s.health}, agent ${s.agent ?? '-'})`);
  for (const [field, name] of [
    ['version', 'versions'],
    ['configDigest', 'shared configuration (key stores, HSM nodes, fleet)'],
  ] as const) {
    const seen = new Set(states.map((s) => s[field]).filter((v) => v !== undefined));
    if (seen.size > 1) out.push(`instances run different ${name}: ${states.map((s) => `${s.id}=${s[field] ?? '?'}`).join(', ')}`);
  }
  return out;
}

/** Run the operator's restart command for one instance: {id}, {host}, {port} filled in, also as env. */
function runRestartCommand(template: string, m: FleetMember): Promise<void> {
  const command = template.replaceAll('{id}', m.id).replaceAll('{host}', m.host).replaceAll('{port}', String(m.port));
  return new Promise((done, fail) => {
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, XKS_INSTANCE_ID: m.id, XKS_INSTANCE_HOST: m.host, XKS_INSTANCE_PORT: String(m.port) },
    });
    child.on('error', (err) => fail(new CliError(`restart command for ${m.id} could not run: ${err.message}`)));
    child.on('exit', (code, signal) =>
      code === 0 ? done() : fail(new CliError(`restart command for ${m.id} failed (${signal ?? `exit ${code}`}): ${command}; nothing else was restarted`)),
    );
  });
}

interface RestartFlags {
  config: string;
  exec: string;
  haproxySocket?: string;
  timeout: number;
  settle: number;
  force: boolean;
}

async function restartFleet(o: RestartFlags): Promise<void> {
  const { config } = await loadConfig(resolve(o.config));
  const members = fleetMembers(config);
  const path = config.health.path;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  if (members.length < 2 && !o.force) throw new CliError('fleet.instances lists one instance: restarting it is an outage for KMS (use --force to do it anyway)');
  for (const m of members) {
    const before = await probeMember(m, path);
    const others = await Promise.all(members.filter((x) => x !== m).map((x) => probeMember(x, path)));
    if (!others.some((s) => s.serving) && !o.force) {
      throw new CliError(`no other instance is serving, so restarting ${m.id} now is an outage: fix ${others.map((s) => s.id).join(', ')} first (xks fleet status), or use --force`);
    }
    say(`${m.id}: restarting (${o.exec.replaceAll('{id}', m.id).replaceAll('{host}', m.host).replaceAll('{port}', String(m.port))})`);
    await runRestartCommand(o.exec, m);
    const deadline = Date.now() + o.timeout;
    // A new process (new start time), or at least one seen stopping, that serves again.
    let wentAway = false;
    for (;;) {
      const now = await probeMember(m, path);
      if (!now.serving || (now.startedAt !== undefined && before.startedAt !== undefined && now.startedAt !== before.startedAt)) wentAway = true;
      if (wentAway && now.serving) break;
      if (Date.now() > deadline) throw new CliError(`${m.id} did not ${wentAway ? 'serve again' : 'stop'} within ${o.timeout / 1000} s (health ${now.health}, agent ${now.agent ?? '-'}); the rest of the fleet was not restarted`);
      await sleep(POLL_MS);
    }
    say(`${m.id}: serving again`);
    if (o.haproxySocket) {
      while (!serverUp(await haproxyServers(o.haproxySocket), m.id)) {
        if (Date.now() > deadline) throw new CliError(`HAProxy did not mark ${m.id} UP within ${o.timeout / 1000} s; the rest of the fleet was not restarted`);
        await sleep(POLL_MS);
      }
      say(`${m.id}: UP in HAProxy`);
    }
    await sleep(o.settle);
  }
  say(`fleet restarted: ${members.map((m) => m.id).join(', ')}`);
}

export function register(program: Command): void {
  const fleet = program.command('fleet').description('The proxy instances of fleet.instances as one service: status, rolling restart');
  fleet
    .command('status')
    .description(
      'Every instance of fleet.instances with its health (health port), agent-check answer (up / drain / down), version,\n' +
        'shared-configuration digest and start time. Exit 1 when an instance is not serving or instances disagree.',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration naming the fleet')
    .option('--json', 'print JSON instead of a table', false)
    .action(async (o: { config: string; json: boolean }) => {
      const { config } = await loadConfig(resolve(o.config));
      const states = await Promise.all(fleetMembers(config).map((m) => probeMember(m, config.health.path)));
      const problems = fleetProblems(states);
      process.stdout.write(o.json ? JSON.stringify({ instances: states, problems }, null, 2) + '\n' : `${table(states)}\n${problems.map((p) => `problem: ${p}\n`).join('')}`);
      if (problems.length > 0) process.exitCode = 1;
    });
  fleet
    .command('restart')
    .description(
      'Rolling restart: for each instance of fleet.instances in turn, run the restart command, wait until the instance\n' +
        'has stopped and serves again (health ok, agent up; with --haproxy-socket also UP in HAProxy), then the next.\n' +
        'An instance is restarted only while another one serves. The command gets {id}, {host} and {port} (and\n' +
        'XKS_INSTANCE_ID/HOST/PORT), e.g. --exec "ssh {host} sudo systemctl restart xks" or "sudo systemctl restart xks@{id}".',
    )
    .requiredOption('--config <FILE>', 'the appliance configuration naming the fleet')
    .requiredOption('--exec <COMMAND>', 'shell command that restarts one instance (systemd sends SIGTERM: it drains first)')
    .option('--haproxy-socket <PATH>', "HAProxy's admin socket: also wait until HAProxy marks the instance UP")
    .option('--timeout <S>', 'seconds one instance may take to stop and serve again', secondsArg, 120_000)
    .option('--settle <S>', 'seconds to wait after an instance is back, before the next', secondsArg, 2000)
    .option('--force', 'restart even when no other instance serves (an outage)', false)
    .action((o: RestartFlags) => restartFleet(o));
}
