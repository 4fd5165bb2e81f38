// CPU time and memory of a server's whole process tree, read from /proc (Linux): utime+stime of
// the root and of every descendant alive at the time (the HSM node processes). CPU time per
// request at a fixed rate moves far less on a shared machine than requests/s or tail latency.
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux build we ship on. */
const TICK_US = 1_000_000 / 100;

function stat(pid: number): { ppid: number; cpuUs: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuUs: (Number(f[11]) + Number(f[12])) * TICK_US };
  } catch {
    return undefined; // exited meanwhile
  }
}

/** pid -> CPU µs for `root` and all its descendants. */
export function treeCpu(root: number): Map<number, number> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (!s) continue;
    children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  }
  const out = new Map<number, number>();
  const visit = (pid: number) => {
    const s = stat(pid);
    if (s) out.set(pid, s.cpuUs);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(root);
  return out;
}

/** CPU µs spent between two snapshots, for the root alone and for everything else in the tree. */
export function cpuDelta(root: number, before: Map<number, number>, after: Map<number, number>): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const [pid, us] of after) {
    const d = us - (before.get(pid) ?? 0);
    if (pid === root) main += d;
    else others += d;
  }
  return { main, others };
}

/**
 * Memory in MB: the root's resident set, the tree's resident sets summed (which counts the pages
 * the processes share, the node binary above all, once per process), and the tree's proportional
 * set size (each shared page split between its sharers: what the tree really holds).
 */
export function treeRssMb(root: number): { main: number; tree: number; treePss: number } {
  let main = 0;
  let tree = 0;
  let treePss = 0;
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) / 1024;
  for (const pid of treeCpu(root).keys()) {
    try {
      const mb = kb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      tree += mb;
      treePss += kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      if (pid === root) main = mb;
    } catch {
      /* exited */
    }
  }
  return { main: Math.round(main), tree: Math.round(tree), treePss: Math.round(treePss) };
}
