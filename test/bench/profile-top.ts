// The top functions of V8 CPU profiles (`--cpu-prof`) by self time, with their share of the
// profile's busy (non-idle) time: `node dist/test/bench/profile-top.js [--last SECONDS] [--top N] FILE...`.
// --last keeps only the final SECONDS of each profile (the measured load, not start-up);
// --inclusive ranks by time including callees (where a stage's cost goes), not self time.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  endTime: number;
}

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : Number(args.splice(i, 2)[1]);
};
const lastS = opt('--last');
const top = opt('--top') ?? 25;
const inclusive = args.includes('--inclusive') ? (args.splice(args.indexOf('--inclusive'), 1), true) : false;
const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

for (const file of args) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample i's time is the sum of deltas up to i; its weight is the next delta.
  const times: number[] = [];
  let t = p.endTime - p.timeDeltas.reduce((a, b) => a + b, 0);
  for (const d of p.timeDeltas) times.push((t += d));
  const since = lastS === undefined ? -Infinity : p.endTime - lastS * 1e6;
  const self = new Map<string, number>();
  let busy = 0;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (times[i]! < since) continue;
    const w = p.timeDeltas[i + 1] ?? 0;
    const f = byId.get(p.samples[i]!)!.callFrame;
    total += w;
    if (f.functionName === '(idle)') continue;
    busy += w;
    // Self time: the sampled frame. Inclusive: every distinct frame on its stack, once.
    const keys = new Set<string>();
    for (let id: number | undefined = p.samples[i]!; id !== undefined; id = inclusive ? parent.get(id) : undefined) {
      const c = byId.get(id)!.callFrame;
      const where = c.url ? `${c.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${c.lineNumber + 1}` : '';
      if (c.functionName !== '(root)') keys.add(`${c.functionName || '(anonymous)'} ${where}`);
    }
    for (const key of keys) self.set(key, (self.get(key) ?? 0) + w);
  }
  console.log(`\n${basename(file)}: ${(total / 1e6).toFixed(1)} s profiled, ${((100 * busy) / Math.max(1, total)).toFixed(0)}% busy`);
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, w] of rows) console.log(`${((100 * w) / busy).toFixed(1).padStart(5)}%  ${IDLE.has(key.trim()) ? key.trim() : key}`);
}
