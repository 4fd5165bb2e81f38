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
import { BREAKAGES } from './breakages.js';

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
