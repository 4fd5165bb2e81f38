// The child reads its own PIN, so it never crosses IPC, argv or a log line. Messages name the
// file or variable and the fix, never the value.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import type { PinSource } from '../options.js';

export class PinError extends Error {
  override name = 'PinError';
}


export function readPin(source: PinSource): string {
  if (source.env !== undefined) {
    const pin = process.env[source.env];
    if (!pin) throw new PinError(`the PIN variable ${source.env} (pin.env) is not set or empty; export it before starting the appliance`);
    // Nothing this process starts later needs it.
    delete process.env[source.env];
    return pin;
  }
  if (source.file === undefined) throw new PinError('no PIN source: set pin.file (mode 0600) or pin.env');
  return readPinFile(source.file);
}

function readPinFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PinError(`the PIN file ${path} does not exist; create it with mode 0600 or fix pin.file`);
    throw new PinError(`the PIN file ${path} cannot be read (${code ?? 'error'}); let the appliance user read it, mode 0600`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PinError(`the PIN file ${path} is not a regular file; point pin.file at a file with mode 0600`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new PinError(`the PIN file ${path} is open to group or others (mode ${mode}); run chmod 600 ${path}`);
    }
    // One trailing newline is what `echo pin > file` leaves; anything else is part of the PIN.
    const pin = readFileSync(fd, 'utf8').replace(/\r?\n$/, '');
    if (!pin) throw new PinError(`the PIN file ${path} is empty; write the user PIN into it`);
    return pin;
  } finally {
    closeSync(fd);
  }
}
