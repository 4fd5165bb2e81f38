// `xks doctor`: a list of small checks, each turning one part of a configured appliance into lines
// of OK / WARN / FAIL with the fix. A check is a function of the shared context; add one by
// appending it to DOCTOR_CHECKS (checks.ts), e.g. the key consistency check of `xks keys verify`.
import type { LoadedConfig } from '../config/load.js';

export type Verdict = 'OK' | 'WARN' | 'FAIL';

export interface CheckResult {
  /** Short name of what was checked, e.g. "certificate", "hsm hsm-1". */
  name: string;
  verdict: Verdict;
  /** What was found, one line. */
  detail: string;
  /** What to do about a WARN or FAIL, one line. */
  fix?: string;
}

export interface DoctorContext {
  loaded: LoadedConfig;
  /** An haproxy.cfg to compare with (--haproxy-cfg), when there is one. */
  haproxyCfg?: string;
  /** The running instance's `xks status`, or undefined when none answers (fetched once). */
  status(): Promise<Record<string, any> | undefined>;
  now: Date;
}

export interface DoctorCheck {
  name: string;
  run(ctx: DoctorContext): Promise<CheckResult[]> | CheckResult[];
}

export const ok = (name: string, detail: string): CheckResult => ({ name, verdict: 'OK', detail });
export const warn = (name: string, detail: string, fix: string): CheckResult => ({ name, verdict: 'WARN', detail, fix });
export const fail = (name: string, detail: string, fix: string): CheckResult => ({ name, verdict: 'FAIL', detail, fix });

/** Runs every check; a check that throws is a FAIL of its own, never the end of the run. */
export async function runChecks(checks: readonly DoctorCheck[], ctx: DoctorContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const c of checks) {
    try {
      results.push(...(await c.run(ctx)));
    } catch (err) {
      results.push(fail(c.name, `the check itself failed: ${err instanceof Error ? err.message : String(err)}`, 'see the message; run the command again'));
    }
  }
  return results;
}

export function formatResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => `${r.verdict.padEnd(4)} ${r.name.padEnd(width)}  ${r.detail}${r.fix ? `\n     ${' '.repeat(width)}  fix: ${r.fix}` : ''}`);
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  lines.push(`${count('OK')} OK, ${count('WARN')} WARN, ${count('FAIL')} FAIL`);
  return lines.join('\n') + '\n';
}
