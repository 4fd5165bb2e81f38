// Audit trail: one JSON line per request, keyed by kmsRequestId (spec L1), in its own file.
// Written off the hot path through an asynchronous buffered destination and flushed on close,
// so nothing is lost on a clean stop. Never plaintext, secrets or key material (L2).
import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { RequestRecord } from './context.js';

export interface AuditLog {
  write(record: RequestRecord): void;
  close(): Promise<void>;
}

export function openAuditLog(file: string): AuditLog {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // Audit records name principals and keys: readable by the service's user only. Opened here,
  // synchronously, so the destination is ready at once (and a failed start can close it).
  const fd = openSync(file, 'a', 0o600);
  const dest = pino.destination({ fd, sync: false, minLength: 4096 });
  const log = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'event' }, dest);
  // Buffered for throughput, but never held back for more than a second on a quiet proxy.
  const flusher = setInterval(() => dest.flush(), 1000);
  flusher.unref();
  return {
    write(record) {
      log.info(record, 'xks-request');
    },
    close: () =>
      new Promise((resolve) => {
        clearInterval(flusher);
        dest.flushSync();
        dest.end();
        dest.once('close', () => resolve());
        setTimeout(resolve, 1000).unref();
      }),
  };
}
