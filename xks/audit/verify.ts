// `xks audit verify`: walk the hash chain across the current and rotated audit files and name the
// first line where it breaks, and why (edited, deleted, reordered, a torn line). A torn last line
// (a crash mid-write) and a torn line the writer recovered from are reported, not fatal.
// Lines that repeat an earlier record byte for byte (logrotate copytruncate's replay) are skipped.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { GENESIS, lineHash, parseLinked, type Linked } from './chain.js';

export interface Finding {
  file: string;
  /** 1-based line number in that file. */
  line: number;
  seq?: number | undefined;
  reason: string;
}

export interface VerifyReport {
  ok: boolean;
  /** The files in chain order (by their first record), with what each holds. */
  files: Array<{ file: string; records: number; firstSeq?: number | undefined; lastSeq?: number | undefined }>;
  records: number;
  duplicates: number;
  /** The first break in the chain: it makes the trail untrustworthy from there on. */
  error?: Finding | undefined;
  /** Reported, not fatal: torn lines after a crash, a chain that starts after seq 0. */
  warnings: Finding[];
}

interface Line {
  file: string;
  line: number;
  text: string;
  rec: (Linked & Record<string, unknown>) | undefined;
  /** The file's last line, without a newline after it. */
  unterminated: boolean;
}

function readLines(file: string): Line[] {
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  const parts = text.split('\n');
  const unterminatedLast = parts[parts.length - 1] !== '';
  if (!unterminatedLast) parts.pop();
  return parts.map((t, i) => ({ file, line: i + 1, text: t, rec: parseLinked(t), unterminated: unterminatedLast && i === parts.length - 1 }));
}

/** How far ahead to look for a missing seq (to tell "reordered" from "deleted"). */
const LOOKAHEAD = 1000;
/** Records remembered for telling a copytruncate replay from a forgery. */
const REMEMBER = 200_000;

export function verifyAuditFiles(paths: readonly string[]): VerifyReport {
  const perFile = paths.map((file) => ({ file, lines: readLines(file) }));
  // Chain order: by each file's first record, so `audit.log*` in any order works.
  const firstSeq = (ls: Line[]) => ls.find((l) => l.rec)?.rec?.seq ?? Number.MAX_SAFE_INTEGER;
  perFile.sort((a, b) => firstSeq(a.lines) - firstSeq(b.lines));
  const lines = perFile.flatMap((f) => f.lines);
  const report: VerifyReport = { ok: false, files: [], records: 0, duplicates: 0, warnings: [] };
  for (const f of perFile) {
    const recs = f.lines.filter((l) => l.rec);
    report.files.push({ file: f.file, records: recs.length, firstSeq: recs[0]?.rec?.seq, lastSeq: recs[recs.length - 1]?.rec?.seq });
  }
  const at = (l: Line, reason: string): Finding => ({ file: l.file, line: l.line, seq: l.rec?.seq, reason });
  const fail = (l: Line, reason: string) => {
    report.error = at(l, reason);
    return report;
  };

  const seen = new Map<number, string>();
  let last: { seq: number; hash: string; line: Line } | undefined;
  let torn: Line[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const rec = l.rec;
    if (!rec) {
      if (l.text === '' && !l.unterminated) continue;
      torn.push(l);
      continue;
    }
    const hash = lineHash(l.text);
    if (last && rec.seq <= last.seq && seen.get(rec.seq) === hash) {
      report.duplicates++;
      continue;
    }
    if (torn.length) {
      // Only the writer may end a torn line, and it says so in the record right after it.
      const recovered = rec.type === 'chain' && typeof rec['tornBytes'] === 'number';
      if (!recovered) return fail(torn[0]!, 'not a record: edited or corrupted (a torn line would be followed by the writer\'s "recovered" or "start" record)');
      for (const t of torn) report.warnings.push(at(t, 'torn line (a crash or a failed write); the writer recovered after it'));
      torn = [];
    }
    if (!last) {
      if (rec.prev !== GENESIS || rec.seq !== 0) report.warnings.push(at(l, `the chain starts at seq ${rec.seq}: earlier records are not in the files given`));
    } else if (rec.prev === GENESIS && rec.seq === 0) {
      return fail(l, `a new chain begins here: the records before it (up to seq ${last.seq}) are not linked to it`);
    } else if (rec.seq === last.seq + 1 && rec.prev !== last.hash) {
      // Either the previous line or this one changed: the one its successor still vouches for is intact.
      const next = lines.slice(i + 1).find((n) => n.rec)?.rec;
      return next && next.prev !== hash
        ? fail(l, 'edited: this record no longer matches the hash the next record holds of it')
        : fail(last.line, 'edited: this record no longer matches the hash the next record holds of it');
    } else if (rec.seq !== last.seq + 1) {
      const want = last.seq + 1;
      if (rec.prev === last.hash) return fail(l, `edited: its seq ${rec.seq} should be ${want} (it links to seq ${last.seq})`);
      if (rec.seq <= last.seq) return fail(l, `reordered: seq ${rec.seq} comes after seq ${last.seq}`);
      const later = lines.slice(i + 1, i + 1 + LOOKAHEAD).find((n) => n.rec?.seq === want);
      if (later) return fail(l, `reordered: seq ${rec.seq} comes before seq ${want} (${later.file} line ${later.line})`);
      const gap = rec.seq - want === 1 ? `seq ${want} is` : `seq ${want} to ${rec.seq - 1} are`;
      const boundary = last.line.file !== l.file ? ` (between ${last.line.file} and ${l.file}: a rotated file missing?)` : '';
      return fail(l, `deleted: ${gap} missing before this record${boundary}`);
    } else if (rec.prev !== last.hash) {
      return fail(l, 'edited: the previous record no longer matches the hash this one holds');
    }
    last = { seq: rec.seq, hash, line: l };
    seen.set(rec.seq, hash);
    if (seen.size > REMEMBER) seen.delete(seen.keys().next().value!);
    report.records++;
  }
  if (torn.length) {
    const t = torn[torn.length - 1]!;
    // Only the very end may be torn without a record after it: a crash while writing the last line.
    if (torn.length > 1 || t !== lines[lines.length - 1]) return fail(torn[0]!, 'not a record: edited or corrupted');
    report.warnings.push(at(t, 'torn last line (a crash while writing it); the records before it are intact'));
  }
  if (!last) return fail(lines[0] ?? { file: paths[0] ?? '-', line: 0, text: '', rec: undefined, unterminated: false }, 'no audit records found');
  report.ok = true;
  return report;
}
