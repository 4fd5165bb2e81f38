// Refused connections and unauthenticated requests cost the sender nothing, so they must not cost
// us a log (and audit) line each: per reason and source, the first in each interval is written in
// full, the rest are counted and summed up in one line when the interval ends (and on close).
export interface Refusal {
  /** What the summary line repeats: reason, source, status... never request content. */
  fields: Record<string, unknown>;
  suppressed: number;
}

export class RefusalLog {
  private entries = new Map<string, Refusal>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly intervalMs: number,
    private readonly summarize: (refusal: Refusal, intervalMs: number) => void,
    /** Distinct keys per interval; beyond it, sources are counted together under "other". */
    private readonly maxKeys = 1000,
  ) {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  /** True: write this one out in full. False: it was counted into the interval's summary. */
  admit(key: string, fields: Record<string, unknown>): boolean {
    const seen = this.entries.get(key);
    if (seen) {
      seen.suppressed++;
      return false;
    }
    if (this.entries.size >= this.maxKeys) {
      const other = this.entries.get('other') ?? { fields: { source: 'other sources' }, suppressed: 0 };
      other.suppressed++;
      this.entries.set('other', other);
      return false;
    }
    this.entries.set(key, { fields, suppressed: 0 });
    return true;
  }

  flush(): void {
    const entries = this.entries;
    this.entries = new Map();
    for (const e of entries.values()) if (e.suppressed > 0) this.summarize(e, this.intervalMs);
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
