// Failure logs on the HSM path are rate-limited per key: a dead node must not flood the log at
// the request rate.
export class LogLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly intervalMs = 5000) {}

  /** The number of messages suppressed since the last one when this one may be logged, else -1. */
  allow(key: string, now = Date.now()): number {
    const entry = this.last.get(key);
    if (!entry || now - entry.at >= this.intervalMs) {
      this.last.set(key, { at: now, suppressed: 0 });
      return entry?.suppressed ?? 0;
    }
    entry.suppressed++;
    return -1;
  }
}
