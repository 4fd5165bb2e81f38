// The operator log: pino JSON lines on stdout. Redaction is a second line of defence; the first is
// that secrets, PINs and plaintext are never put into a log object at all.
import pino, { type Logger } from 'pino';

export const REDACT = [
  'secretAccessKey',
  '*.secretAccessKey',
  'pin',
  '*.pin',
  'authorization',
  '*.authorization',
  'plaintext',
  '*.plaintext',
];

export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ fd: 1, sync: false })): Logger {
  return pino({ level, base: { service: 'xks' }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

export type { Logger };
