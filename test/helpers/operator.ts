// Operator commands against a running demo, as a person at the shell runs them, and the timing
// helpers the day-2 tests share (changes begin once the load's connections are open).
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { xksCommand } from './demo.js';
import { summarize, type LoadReport } from './load.js';

const run = promisify(execFile);

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `bin/xks ARGS`; SUDO_USER names the operator the audit trail should show. */
export function xks(args: string[], operator?: string): Promise<CommandResult> {
  return run(...xksCommand(args), { env: { ...process.env, ...(operator ? { SUDO_USER: operator } : {}) } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: CommandResult) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The load's first second opens its connections (TLS handshakes on a busy machine). */
export const WARM_UP_MS = 1500;

/** The samples from when the changes began. */
export const settled = (r: LoadReport) => summarize(r.samples.filter((s) => s.at >= WARM_UP_MS));

/** ms until `check` holds, polling every `everyMs`, up to `limit` (Infinity when it never did). */
export async function within(limit: number, check: () => Promise<boolean>, everyMs = 50): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < limit) {
    if (await check()) return performance.now() - start;
    await sleep(everyMs);
  }
  return Infinity;
}

/**
 * These tests check what the operator commands do, not latency: a wider request budget (a live
 * reload) keeps a busy test machine's stalls from turning into 503s that would hide a real failure.
 */
export async function widenRequestBudget(configFiles: readonly string[], ms = 2000): Promise<void> {
  for (const file of configFiles) {
    const doc = parse(readFileSync(file, 'utf8')) as { hsm: { requestBudgetMs?: number; callTimeoutMs?: number } };
    doc.hsm.requestBudgetMs = ms;
    // Per call too (this restarts the node processes, before any load starts).
    doc.hsm.callTimeoutMs = ms / 2;
    writeFileSync(file, stringify(doc), { mode: 0o600 });
    const r = await xks(['reload', '--config', file]);
    if (r.code !== 0) throw new Error(`reload of ${file} failed: ${r.stderr}`);
  }
}
