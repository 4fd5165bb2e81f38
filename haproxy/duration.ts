// HAProxy time values: rendered from milliseconds, parsed back for lint. HAProxy reads a bare
// number as milliseconds and accepts the units us, ms, s, m, h, d.

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The shortest exact spelling: 390000 -> "390s", 1500 -> "1500ms", 3600000 -> "1h". */
export function formatDuration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`a duration must be a whole number of milliseconds, got ${ms}`);
  if (ms === 0) return '0';
  for (const unit of ['h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Milliseconds for "10s", "5m", "350000", "1500ms"; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!;
}
