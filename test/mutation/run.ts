// The mutation check: do the tests that guard the critical claims fail when the claim is broken?
// Copies the source tree to a temporary directory (node_modules linked, not copied), applies one
// named breakage at a time, builds, runs the tests named for it, and reports each breakage as
// caught (a test failed) or MISSED (every test still passed). Not part of `npm test`: run it with
// `npm run mutation` (all breakages) or `npm run mutation -- NAME...` (some; `--list` names them).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packageRoot } from '../../xks/hsm/package-root.js';

interface Breakage {
  name: string;
  /** What the breakage does, in the words of the claim it breaks. */
  claim: string;
  file: string;
  /** Must occur exactly once in `file`: a refactoring that moves it makes the check say so. */
  find: string;
  replace: string;
  tests: string[];
}

export const BREAKAGES: Breakage[] = [
  {
    name: 'sigv4-accept-any-signature',
    claim: 'SigV4: a wrong signature is refused',
    file: 'gateway/sigv4.ts',
    find: "const match = timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'));",
    replace: "const match = timingSafeEqual(expected, Buffer.from(auth.signature, 'hex')) || true;",
    tests: ['test/unit/sigv4.test.ts', 'test/e2e/conformance-sigv4.test.ts'],
  },
  {
    name: 'sigv4-unknown-id-early-exit',
    claim: 'SigV4: an unknown access key id gets the same message after the same work',
    file: 'gateway/sigv4.ts',
    find: 'const secret = known ?? UNKNOWN_ID_SECRET;',
    replace: "const secret = known ?? (UNKNOWN_ID_SECRET && fail('Unknown access key id'));",
    tests: ['test/unit/sigv4.test.ts'],
  },
  {
    name: 'failover-disabled',
    claim: 'HSM failover: a failed or frozen node costs one attempt, then another node answers',
    file: 'xks/hsm/parent/cluster.ts',
    find: 'for (let attempt = 0; attempt <= this.nodes.length; attempt++) {',
    replace: 'for (let attempt = 0; attempt < 1; attempt++) {',
    tests: ['test/failover/demo-failover.test.ts'],
  },
  {
    name: 'reload-drops-connections',
    claim: 'Hot reload keeps live connections',
    file: 'gateway/listener.ts',
    find: '      server.setSecureContext(tlsOptions(next.server.tls));',
    replace: '      server.setSecureContext(tlsOptions(next.server.tls));\n      server.closeAllConnections();',
    tests: ['test/e2e/reload.test.ts'],
  },
  {
    name: 'proxy-header-trusted-from-anyone',
    claim: 'PROXY protocol: a header is believed only from a trusted proxy',
    file: 'gateway/listener.ts',
    find: 'if (!s.proxyProtocol.enabled || !trustedProxies.has(peer)) {',
    replace: 'if (!s.proxyProtocol.enabled || !(trustedProxies.has(peer) || true)) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'proxy-local-anywhere',
    claim: 'PROXY protocol: a LOCAL connection may use the health path only',
    file: 'gateway/pipeline.ts',
    find: "if (conn?.local && route.kind !== 'health-check') {",
    replace: 'if (false) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'proxy-unix-family-accepted',
    claim: 'PROXY protocol: a UNIX-family header is refused',
    file: 'gateway/listener.ts',
    find: "if (info.family === 'UNIX') throw",
    replace: 'if (false) throw',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'mtls-subject-check-off',
    claim: 'mTLS: a client certificate with another subject is refused',
    file: 'gateway/client-cert-gate.ts',
    find: 'if (cn === undefined || !opts.subjects.has(cn)) return',
    replace: 'if (false) return',
    tests: ['test/e2e/mtls-demo.test.ts', 'test/integration/mtls-alert.test.ts'],
  },
  {
    name: 'audit-record-skipped',
    claim: 'Audit: one record per request',
    file: 'appliance/service.ts',
    find: 'if (audit) audit.request(record, release);',
    replace: 'if (audit) release(true);',
    tests: ['test/e2e/conformance-errors-logging.test.ts'],
  },
  {
    name: 'unauthenticated-idle-timeout-off',
    claim: 'Connection slots: an unauthenticated connection gets a short idle timeout',
    file: 'gateway/listener.ts',
    find: 'const unauthIdleMs = Math.min(s.unauthenticatedIdleTimeoutMs, s.keepAliveTimeoutMs);',
    replace: 'const unauthIdleMs = s.keepAliveTimeoutMs;',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'unauthenticated-eviction-off',
    claim: 'Connection slots: unauthenticated connections cannot lock KMS out',
    file: 'gateway/listener.ts',
    find: 'const oldest = unauthenticated.values().next().value;',
    replace: 'const oldest = unauthenticated.size < 0 ? unauthenticated.values().next().value : undefined;',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'host-unchecked',
    claim: 'SigV4: the signed Host must name this proxy',
    file: 'gateway/pipeline.ts',
    find: 'if (!hostNames(req.headers.host, opts.hostname)) {',
    replace: 'if (!hostNames(req.headers.host, opts.hostname) && false) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'vpce-from-request-body',
    claim: 'vpcEndpoints: only the NLB TLV counts, never the body',
    file: 'xks/policy.ts',
    find: 'if (c.vpcEndpoints && !inList(c.vpcEndpoints, input.connectionVpceId))',
    replace: 'if (c.vpcEndpoints && !inList(c.vpcEndpoints, input.connectionVpceId ?? input.metadata.awsSourceVpce))',
    tests: ['test/unit/policy.test.ts'],
  },
  {
    name: 'duplicate-labels-accepted',
    claim: 'Keys: one HSM label, one key',
    file: 'appliance/config/load.ts',
    find: '  checkKeyLabels(config);',
    replace: '  if (config.keyStores.length < 0) checkKeyLabels(config);',
    tests: ['test/unit/config-security.test.ts'],
  },
  {
    name: 'key-id-not-bound',
    claim: 'ciphertextMetadata 2 binds the external key id',
    file: 'xks/aad.ts',
    find: 'return Buffer.concat([frameHsmAad(aad, metadata), Buffer.from([id.length]), id]);',
    replace: 'return id.length >= 0 ? frameHsmAad(aad, metadata) : id;',
    tests: ['test/e2e/conformance-decrypt.test.ts'],
  },
  {
    name: 'pins-shared-with-every-node',
    claim: 'PINs: each node process gets only its own',
    file: 'xks/hsm/parent/pin-env.ts',
    find: '  for (const name of values.keys()) delete process.env[name];\n',
    replace: '',
    tests: ['test/integration/hsm-pin-isolation.test.ts'],
  },
  {
    name: 'refusals-logged-one-by-one',
    claim: 'Logs: refusals are rate-limited per source',
    file: 'appliance/service.ts',
    find: 'if (refusals.admit(`${reason}|${source}`, { reason, source }))',
    replace: 'if (refusals.admit(`${reason}|${source}`, { reason, source }) || true)',
    tests: ['test/e2e/security.test.ts'],
  },
];

function run(cmd: string, args: string[], cwd: string): { code: number; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, NODE_OPTIONS: '' } });
  return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** The repository's files (tracked and new, not ignored) copied to `to`; node_modules linked. */
function copyTree(root: string, to: string): void {
  const files = run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], root).out.split('\0').filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(to, f)), { recursive: true });
    cpSync(join(root, f), join(to, f), { dereference: false });
  }
  symlinkSync(join(root, 'node_modules'), join(to, 'node_modules'));
}

function main(argv: string[]): number {
  if (argv.includes('--list') || argv.includes('--help')) {
    for (const b of BREAKAGES) process.stdout.write(`${b.name.padEnd(34)} ${b.claim}\n${' '.repeat(35)}tests: ${b.tests.join(' ')}\n`);
    return 0;
  }
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((n) => !BREAKAGES.some((b) => b.name === n));
  if (unknown.length) {
    process.stderr.write(`mutation: no breakage named ${unknown.join(', ')} (see --list)\n`);
    return 2;
  }
  const chosen = wanted.length ? BREAKAGES.filter((b) => wanted.includes(b.name)) : BREAKAGES;
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'xks-mutation-'));
  const results: Array<{ name: string; verdict: string }> = [];
  try {
    copyTree(root, dir);
    for (const b of chosen) {
      const file = join(dir, b.file);
      const original = readFileSync(file, 'utf8');
      const count = original.split(b.find).length - 1;
      let verdict: string;
      if (count !== 1) {
        verdict = `NOT APPLIED (the text to break occurs ${count} times in ${b.file}: update test/mutation/run.ts)`;
      } else {
        writeFileSync(file, original.replace(b.find, b.replace));
        const build = run(join(dir, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], dir);
        if (build.code !== 0) {
          verdict = `NOT APPLIED (the broken tree does not build: ${build.out.trim().split('\n')[0]})`;
        } else {
          const started = Date.now();
          const tests = run(join(dir, 'node_modules', '.bin', 'tap'), ['--disable-coverage', '--jobs=1', ...b.tests], dir);
          const failed = tests.out.split('\n').filter((l) => /^\s*not ok \d+ - /.test(l)).map((l) => l.trim().replace(/ # time=.*$/, ''));
          const secs = Math.round((Date.now() - started) / 1000);
          verdict = tests.code !== 0 ? `caught (${secs} s): ${failed.slice(0, 2).join(' | ') || 'tests failed'}` : `MISSED (${secs} s): every named test passed`;
        }
        writeFileSync(file, original);
      }
      results.push({ name: b.name, verdict });
      process.stdout.write(`${b.name}: ${verdict}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const missed = results.filter((r) => !r.verdict.startsWith('caught'));
  process.stdout.write(`\nmutation check: ${results.length - missed.length} of ${results.length} breakages caught${missed.length ? `; not caught: ${missed.map((m) => m.name).join(', ')}` : ''}\n`);
  return missed.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
