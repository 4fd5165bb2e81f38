// The audit trail's hash chain (spec L2: logs integrity-protected). Every line is one JSON record
// that begins with its sequence number and the SHA-256 of the previous line's exact bytes, so an
// edited, deleted or reordered line breaks the chain at that point. Pure functions: the writer
// (log.ts) and the verifier (verify.ts) share them.
import { hash } from 'node:crypto';

/** The `prev` of the first record of a new chain. */
export const GENESIS = '0'.repeat(64);

/** Where the chain stands: the last line written (its seq and the hash of its bytes). */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** What every line starts with. */
export interface Linked {
  seq: number;
  prev: string;
  time: string;
  type: 'request' | 'admin' | 'chain';
}

export function lineHash(line: string | Buffer): string {
  return hash('sha256', line, 'hex');
}

/** The next line of the chain (without its newline) and the head after it. The same bytes as
 *  JSON.stringify({ seq, prev, time, ...fields }) (fields never hold seq, prev or time), without
 *  copying the fields into a new object first. */
export function link(head: ChainHead | undefined, fields: { type: Linked['type'] } & Record<string, unknown>): { line: string; head: ChainHead } {
  const seq = head ? head.seq + 1 : 0;
  const rest = JSON.stringify(fields);
  const line = `{"seq":${seq},"prev":"${head ? head.hash : GENESIS}","time":"${new Date().toISOString()}"${rest === '{}' ? '' : ','}${rest.slice(1)}`;
  return { line, head: { seq, hash: lineHash(line) } };
}

/** A line read back: the record when it is one of ours, undefined for anything else. */
export function parseLinked(line: string): (Linked & Record<string, unknown>) | undefined {
  if (!line.startsWith('{"seq":')) return undefined;
  try {
    const v = JSON.parse(line) as Record<string, unknown>;
    if (Number.isSafeInteger(v['seq']) && typeof v['prev'] === 'string' && /^[0-9a-f]{64}$/.test(v['prev'] as string)) return v as Linked & Record<string, unknown>;
  } catch {
    /* not a record */
  }
  return undefined;
}

/** How a file's text ends: the last complete record (the chain's head) and any torn tail after it. */
export interface Tail {
  head: ChainHead | undefined;
  /** Bytes after the last newline that are not a complete record (a crash mid-write). */
  tornBytes: number;
}

/** Read the head from the end of a file's text (the caller passes enough of the tail). */
export function tailOf(text: string): Tail {
  let end = text.length;
  let tornBytes = 0;
  if (end > 0 && !text.endsWith('\n')) {
    const cut = text.lastIndexOf('\n') + 1;
    const last = text.slice(cut);
    const rec = parseLinked(last);
    // A complete record that only lost its newline is kept; anything else is a torn line.
    if (rec) return { head: { seq: rec.seq, hash: lineHash(last) }, tornBytes: 0 };
    tornBytes = Buffer.byteLength(last);
    end = cut;
  }
  for (let stop = end - 1; stop > 0; ) {
    const start = text.lastIndexOf('\n', stop - 1) + 1;
    const line = text.slice(start, stop);
    const rec = parseLinked(line);
    if (rec) return { head: { seq: rec.seq, hash: lineHash(line) }, tornBytes };
    stop = start - 1;
  }
  return { head: undefined, tornBytes };
}
