// Bookkeeping of a run: counts by reply label and outcome, and problems grouped by label with
// the first few examples of each: what rebuilds the case (seed and index) and a look at its bytes.
import type { FuzzCase } from './draft.js';
import { classifyReply } from './rules.js';
import type { Exchange, Outcome } from './runner.js';

export interface Problem {
  index: number;
  mutators: string[];
  problem: string;
  request: string;
}

/** The operation a request line names by its path's last segment, when it names one. */
export function operationOf(bytes: Buffer): string | undefined {
  const line = bytes.subarray(0, Math.max(0, bytes.indexOf('\r\n'))).toString('latin1');
  const target = line.split(' ')[1] ?? '';
  if (target === '/healthz') return 'healthz';
  return /\/(health|metadata|encrypt|decrypt)$/.exec(target)?.[1];
}

/** Answers only an authenticated request can get (spec §7: after SigV4 come the key, policy,
 *  usage and crypto); a 200 of an XKS API too. The load-balancer check needs no signature. */
const PAST_AUTHENTICATION = /^(200 (?!healthz)|\d+ (KeyNotFoundException|InvalidStateException|InvalidKeyUsageException|AccessDeniedException|InvalidCiphertextException)$)/;

export class FuzzTally {
  readonly labels = new Map<string, number>();
  readonly outcomes: Record<Outcome, number> = { reply: 0, closed: 0, hang: 0 };
  /** label -> how many replies broke a rule that way, and the first examples. */
  readonly problems = new Map<string, { count: number; examples: Problem[] }>();
  cases = 0;
  /** Cases the client believed complete that drew no reply until it half-closed. */
  stalls = 0;
  /** Cases whose bytes drew more than one final response (a second request in the payload). */
  multiResponse = 0;
  replies = 0;
  /** Cases that cannot authenticate (FuzzCase.authBroken). */
  authBroken = 0;

  constructor(private readonly examplesPerLabel = 3) {}

  record(ex: Exchange): void {
    this.cases++;
    this.outcomes[ex.outcome]++;
    if (ex.fuzzCase.authBroken) this.authBroken++;
    if (ex.stalled) {
      this.stalls++;
      this.problem(ex.fuzzCase, 'stalled', 'no reply until the client half-closed, though it had sent the whole request');
    }
    const head = ex.fuzzCase.method === 'HEAD';
    let finals = 0;
    // Every reply is checked: those after the first answer the extra bytes of the same case.
    for (const res of ex.responses) {
      if (res.status >= 200 || res.status === 0) finals++;
      this.replies++;
      const { label, problem } = classifyReply(res, head);
      this.labels.set(label, (this.labels.get(label) ?? 0) + 1);
      if (problem) this.problem(ex.fuzzCase, label, problem);
      // A success must answer the operation its request line names.
      if (finals === 1 && ex.fuzzCase.authBroken && PAST_AUTHENTICATION.test(label)) {
        this.problem(ex.fuzzCase, 'authenticated', `${label} for a request that cannot authenticate (SigV4 bypass)`);
      }
      const named = finals === 1 && label.startsWith('200 ') && !head ? operationOf(ex.fuzzCase.bytes) : undefined;
      if (named && label !== `200 ${named}`) this.problem(ex.fuzzCase, label, `a 200 of another operation than the request line's ${named}`);
      if (named === 'decrypt' && label === '200 decrypt' && ex.fuzzCase.plaintext !== undefined) {
        const got = (JSON.parse(res.body.toString('utf8')) as { plaintext?: unknown }).plaintext;
        if (got !== ex.fuzzCase.plaintext) this.problem(ex.fuzzCase, label, 'a 200 Decrypt with another plaintext than the one sealed');
      }
    }
    if (finals > 1) this.multiResponse++;
    // A close without a word is allowed only where the bytes may not frame one request (the
    // client half-closed mid-request); anything else the server could parse gets a JSON answer.
    if (ex.outcome === 'closed' && !ex.fuzzCase.last && !ex.stalled) {
      this.problem(ex.fuzzCase, 'closed', 'connection closed without a reply to a request that was whole');
    }
    if (ex.outcome === 'hang') this.problem(ex.fuzzCase, 'hang', 'no reply and no close after the half-close');
  }

  private problem(c: FuzzCase, label: string, problem: string): void {
    let entry = this.problems.get(label);
    if (!entry) this.problems.set(label, (entry = { count: 0, examples: [] }));
    entry.count++;
    if (entry.examples.length < this.examplesPerLabel) {
      entry.examples.push({ index: c.index, mutators: c.mutators, problem, request: JSON.stringify(c.bytes.subarray(0, 400).toString('latin1')) });
    }
  }

  get problemCount(): number {
    let n = 0;
    for (const { count } of this.problems.values()) n += count;
    return n;
  }

  /** Labels sorted by count, most frequent first. */
  byLabel(): Record<string, number> {
    return Object.fromEntries([...this.labels].sort((a, b) => b[1] - a[1]));
  }
}
