// One check = one observable rule: PASS, FAIL or SKIP, a reason an operator can act on, and the
// conformance rule id it checks (the ids of docs/conformance.md).
import type { Reply } from './client.js';

export type Status = 'PASS' | 'FAIL' | 'SKIP';

export interface CheckResult {
  group: string;
  rule: string;
  name: string;
  status: Status;
  reason: string;
}

export interface Verdict {
  status: Status;
  reason: string;
}

export const pass = (reason: string): Verdict => ({ status: 'PASS', reason });
export const fail = (reason: string): Verdict => ({ status: 'FAIL', reason });
export const skip = (reason: string): Verdict => ({ status: 'SKIP', reason });

/** Several sub-cases of one rule: FAIL naming every case that failed, else PASS. */
export function allOf(problems: Array<string | null>, okReason: string): Verdict {
  const bad = problems.filter((p): p is string => p !== null);
  return bad.length ? fail(bad.join('; ')) : pass(okReason);
}

export class Results {
  readonly list: CheckResult[] = [];

  constructor(private readonly progress: (done: number, name: string) => void = () => {}) {}

  /** Runs one check; an exception (connection refused, timeout) is that check's FAIL. */
  async check(group: string, rule: string, name: string, fn: () => Promise<Verdict> | Verdict): Promise<CheckResult> {
    this.progress(this.list.length, name);
    let verdict: Verdict;
    try {
      verdict = await fn();
    } catch (err) {
      verdict = fail(describeError(err));
    }
    const result = { group, rule, name, ...verdict };
    this.list.push(result);
    return result;
  }

  get failed(): number {
    return this.list.filter((r) => r.status === 'FAIL').length;
  }
}

export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? `: ${cause.message}` : '';
  return `${code ? `${code} ` : ''}${err.message}${inner}`.slice(0, 300);
}

/** The errorName of a JSON error body, if it has one. */
export function errorNameOf(r: Reply): string | undefined {
  const name = (r.json as { errorName?: unknown } | undefined)?.errorName;
  return typeof name === 'string' ? name : undefined;
}

/** One line for a reply: "401 AuthenticationFailedException", "200", "413 (not JSON)". */
export function describeReply(r: Reply): string {
  const name = errorNameOf(r);
  return name ? `${r.status} ${name}` : r.json === undefined && r.text ? `${r.status} (body not JSON)` : String(r.status);
}

/**
 * null when the reply is `status` with one of `names`. A body that is not JSON is judged by the
 * status alone here: X3 reports it once for every reply, so one broken rule is one FAIL.
 */
export function errorProblem(label: string, r: Reply, status: number, names: readonly string[]): string | null {
  const name = errorNameOf(r);
  const want = `${status} ${names.join(' or ')}`;
  if (r.status !== status) return `${label}: got ${describeReply(r)}, want ${want}`;
  if (name !== undefined && !names.includes(name)) return `${label}: got ${describeReply(r)}, want ${want}`;
  return null;
}

export function okProblem(label: string, r: Reply): string | null {
  return r.status === 200 ? null : `${label}: got ${describeReply(r)}, want 200`;
}
