// The probe's output: a table for people, JSON for automation, a progress line while it runs.
import type { LatencySummary } from './latency.js';
import type { CheckResult } from './results.js';

export interface ProbeReport {
  endpoint: string;
  uriPath: string;
  startedAt: string;
  summary: { pass: number; fail: number; skip: number };
  checks: CheckResult[];
  latency: LatencySummary;
  /** Transient replies (429, 503) the probe retried before judging: a busy endpoint, not a broken rule. */
  retried: Array<{ label: string; status: number }>;
}

export function summarize(checks: CheckResult[]): ProbeReport['summary'] {
  const count = (s: CheckResult['status']) => checks.filter((c) => c.status === s).length;
  return { pass: count('PASS'), fail: count('FAIL'), skip: count('SKIP') };
}

export function renderTable(report: ProbeReport, width = 160): string {
  const rows = report.checks;
  const ruleW = Math.max(4, ...rows.map((r) => r.rule.length));
  const nameW = Math.min(60, Math.max(5, ...rows.map((r) => r.name.length)));
  const reasonW = Math.max(30, width - (7 + ruleW + nameW + 4));
  const line = (status: string, rule: string, name: string, reason: string) =>
    `${status.padEnd(7)}${rule.padEnd(ruleW + 2)}${clip(name, nameW).padEnd(nameW + 2)}${clip(reason, reasonW)}`;
  const out = [`xks probe ${report.endpoint}${report.uriPath}`, '', line('STATUS', 'RULE', 'CHECK', 'REASON')];
  let group = '';
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      out.push(`-- ${group}`);
    }
    out.push(line(r.status, r.rule, r.name, r.reason));
  }
  if (report.retried.length) {
    out.push('', `note: ${report.retried.length} transient replies were retried (${report.retried.slice(0, 3).map((r) => `${r.label}: ${r.status}`).join(', ')}): the endpoint was busy or an HSM slow`);
  }
  const s = report.summary;
  out.push('', `${s.pass} passed, ${s.fail} failed, ${s.skip} skipped${s.fail ? ': the endpoint is NOT ready for KMS' : ''}`);
  return out.join('\n') + '\n';
}

const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

/** A progress line on stderr: rewritten in place on a terminal, one line per phase otherwise. */
export function progressWriter(stream: NodeJS.WriteStream): { check(done: number, name: string): void; phase(name: string): void; end(): void } {
  const tty = stream.isTTY === true;
  const cols = tty ? (stream.columns ?? 100) : 100;
  return {
    check(done, name) {
      if (tty) stream.write(`\r\x1b[K[${done + 1}] ${name}`.slice(0, cols + 4));
    },
    phase(name) {
      if (tty) stream.write(`\r\x1b[K${name}…`);
      else stream.write(`xks probe: ${name}…\n`);
    },
    end() {
      if (tty) stream.write('\r\x1b[K');
    },
  };
}
