// Client side of the control channel, for the operator commands.
import http from 'node:http';
import { CliError } from '../cli/errors.js';
import { controlSocketOf } from './socket-path.js';

/** No instance answers on the configuration's control socket. */
export class NotRunningError extends CliError {}

export function controlCall(configFile: string, command: string, body: object = {}): Promise<Record<string, unknown>> {
  const socketPath = controlSocketOf(configFile);
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: command, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          /* reported below */
        }
        if (res.statusCode === 200) resolve(parsed);
        else reject(new CliError(`${command.slice(1)}: ${String(parsed['error'] ?? `the appliance answered ${res.statusCode}`)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new NotRunningError(`no running appliance for ${configFile} (no control socket at ${socketPath}): is it started?`)
          : new CliError(`cannot reach the appliance at ${socketPath}: ${err.code ?? err.message}`),
      ),
    );
    req.end(JSON.stringify(body));
  });
}
