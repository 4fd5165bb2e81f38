// The audit file writer. No answer without its record: a request's reply is held until its
// record reached the operating system (a write(2), not an fsync). The records of one event-loop
// turn go out in one write, so the cost is one syscall per turn, not one per request.
// The chain continues across restarts (from the last complete record), reopen after logrotate
// (SIGHUP / xks reload), size-based rotation, and logrotate's copytruncate.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { RequestRecord } from '../context.js';
import { link, tailOf, type ChainHead } from './chain.js';
import { adminEntry, requestEntry, type AdminAction } from './entry.js';

export interface AuditOptions {
  file: string;
  /** Rotate (rename to FILE.<UTC time>) once the file reaches this size; unset: logrotate's job. */
  maxBytes?: number | undefined;
  /** A write failed: its requests are answered 500 and the error is counted and logged by the caller. */
  onWriteError?(err: Error): void;
  /** Lines that reached the file, in order (for forwarding; the file stays the source of truth). */
  onWritten?(lines: readonly string[]): void;
}

export interface AuditLog {
  /** Queue a request's record; `release(recorded)` runs once it reached the OS, or failed to. */
  request(record: RequestRecord, release: (recorded: boolean) => void): void;
  /** Record an administrative action now (synchronously); throws when it cannot be written. */
  admin(action: AdminAction): void;
  /** Follow a rotation: reopen FILE when it is no longer the file being written (SIGHUP, xks reload). */
  reopen(): void;
  /** The chain's head, for status and tests. */
  head(): ChainHead | undefined;
  close(): Promise<void>;
}

/** copytruncate copies, then truncates: lines written in between exist only here, and are written again. */
const REPLAY_BYTES = 4 << 20;
const TAIL_BYTES = 64 << 10;

function readTail(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    // Grow the window until it holds a whole record (lines are far shorter than this).
    for (let want = Math.min(size, TAIL_BYTES); ; want = Math.min(size, want * 4)) {
      const buf = Buffer.alloc(want);
      readSync(fd, buf, 0, want, size - want);
      const text = buf.toString('utf8');
      if (want === size || tailOf(text).head) return text;
    }
  } finally {
    closeSync(fd);
  }
}

/** After logrotate's `create`, FILE is empty and the chain's head is in the newest rotated file. */
function newestRotated(file: string): string | undefined {
  const dir = dirname(file);
  const base = basename(file) + '.';
  let best: { path: string; mtime: number } | undefined;
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    if (!name.startsWith(base) || name.endsWith('.gz')) continue;
    const path = join(dir, name);
    const mtime = statSync(path).mtimeMs;
    if (!best || mtime > best.mtime) best = { path, mtime };
  }
  return best?.path;
}

function writeAll(fd: number, buf: Buffer, from = 0): void {
  for (let off = from; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      (err as { written?: number }).written = off;
      throw err;
    }
  }
}

/** Writes text whole; returns its length in bytes. One write(2) in the usual case, with no Buffer
 *  made in JavaScript; a short write goes on from where it stopped. */
function writeText(fd: number, text: string): number {
  let written: number;
  try {
    written = writeSync(fd, text);
  } catch (err) {
    (err as { written?: number }).written = 0;
    throw err;
  }
  const bytes = Buffer.byteLength(text);
  if (written < bytes) writeAll(fd, Buffer.from(text), written);
  return bytes;
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '');
}

type Fields = Parameters<typeof link>[1];

export function openAuditLog(opts: AuditOptions): AuditLog {
  const { file } = opts;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  /** The last record that reached the file. */
  let head: ChainHead | undefined;
  let fd = -1;
  let size = 0;
  // A torn line (a crash or a failed write): the next write ends it with a newline and begins
  // with a record that says so, which tells it apart from an edit.
  let torn = 0;
  const recent: Array<{ text: string; bytes: number }> = [];
  let recentBytes = 0;
  let queue: Array<{ fields: Fields; release: (ok: boolean) => void }> = [];
  let scheduled = false;

  // Audit records name principals and keys: readable by the service's user only.
  const open = () => {
    fd = openSync(file, 'a', 0o600);
    size = fstatSync(fd).size;
  };
  const remember = (text: string, bytes: number) => {
    recent.push({ text, bytes });
    recentBytes += bytes;
    while (recentBytes > REPLAY_BYTES && recent.length > 1) recentBytes -= recent.shift()!.bytes;
  };

  // copytruncate emptied the file under us: write again what it may have lost. Checked before
  // every write (one fstat per event-loop turn), so the replay comes before any newer record.
  const replayAfterTruncate = () => {
    const now = fstatSync(fd).size;
    if (now >= size) return;
    const replay = Buffer.from(recent.map((r) => r.text).join(''));
    size = now;
    writeAll(fd, replay);
    size += replay.length;
  };

  // The records are linked here, at write time, so a failed write never leaves a gap in the chain.
  const flush = (): Error | undefined => {
    scheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return undefined;
    const lines: Array<{ line: string; head: ChainHead }> = [];
    let h = head;
    const add = (fields: Fields) => {
      const next = link(h, fields);
      h = next.head;
      lines.push(next);
    };
    if (torn) add({ type: 'chain', event: 'recovered', tornBytes: torn });
    for (const b of batch) add(b.fields);
    const prefix = torn ? 1 : 0;
    let text = torn ? '\n' : '';
    for (const l of lines) text += l.line + '\n';
    let bytes: number;
    try {
      replayAfterTruncate();
      bytes = writeText(fd, text);
    } catch (err) {
      const written = (err as { written?: number }).written ?? 0;
      size += written;
      // Records wholly written stand; the chain goes on from the last of them.
      let offset = prefix;
      let kept = 0;
      for (const l of lines) {
        const end = offset + Buffer.byteLength(l.line) + 1;
        if (end > written) break;
        offset = end;
        kept++;
      }
      if (kept > 0) head = lines[kept - 1]!.head;
      if (written >= prefix && written - offset > 0) torn = written - offset;
      else if (kept > 0) torn = 0;
      const requests = kept - (prefix ? 1 : 0);
      batch.forEach((b, i) => b.release(i < requests));
      opts.onWriteError?.(err as Error);
      return err as Error;
    }
    head = h;
    torn = 0;
    size += bytes;
    remember(text, bytes);
    for (const b of batch) b.release(true);
    opts.onWritten?.(lines.map((l) => l.line));
    if (opts.maxBytes && size >= opts.maxBytes) rotateBySize();
    return undefined;
  };

  /** Write one record at once; throws when it cannot be written. */
  const writeNow = (fields: Fields) => {
    let ok = false;
    queue.push({ fields, release: (r) => (ok = r) });
    const failure = flush() as NodeJS.ErrnoException | undefined;
    if (!ok) throw new Error(`audit: cannot write to ${file} (${failure?.code ?? failure?.message ?? 'unknown error'})`);
  };
  const chainRecord = (event: string, extra: Record<string, unknown> = {}) => writeNow({ type: 'chain', event, pid: process.pid, ...extra });

  const rotateBySize = () => {
    try {
      closeSync(fd);
      const to = `${file}.${stamp()}`;
      renameSync(file, to);
      open();
      chainRecord('rotate', { previousFile: basename(to) });
    } catch (err) {
      if (fd < 0 || !existsSync(file)) open();
      opts.onWriteError?.(err as Error);
    }
  };

  // Continue the chain from the last complete record: this file's, or the newest rotated one's.
  const existing = existsSync(file) && statSync(file).size > 0 ? file : newestRotated(file);
  if (existing) {
    const tail = tailOf(readTail(existing));
    head = tail.head;
    if (existing === file) torn = tail.tornBytes;
  }
  open();
  chainRecord(head ? 'start' : 'genesis');

  return {
    request(record, release) {
      queue.push({ fields: requestEntry(record), release });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    admin: (action) => writeNow(adminEntry(action)),
    reopen() {
      flush();
      let current: number | undefined;
      try {
        current = statSync(file).ino;
      } catch {
        /* moved away and not re-created: create it */
      }
      if (current === fstatSync(fd).ino) return;
      closeSync(fd);
      open();
      chainRecord('reopen');
    },
    head: () => head,
    close: async () => {
      flush();
      if (fd >= 0) {
        replayAfterTruncate();
        closeSync(fd);
      }
      fd = -1;
    },
  };
}
