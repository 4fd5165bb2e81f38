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

/** For commands an operator reads (check, cert): each log line as `warning: message`, not JSON. */
export function createCliLogger(out: NodeJS.WritableStream = process.stderr): Logger {
  return createLogger('warn', {
    write(line: string) {
      const { level, msg } = JSON.parse(line) as { level: number; msg: string };
      out.write(`${level >= 50 ? 'error' : 'warning'}: ${msg}\n`);
    },
  });
}

export type { Logger };
