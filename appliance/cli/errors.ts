// An operator-facing failure: printed as one line, exit code non-zero, never a stack trace.
import { EXIT } from '../exit-codes.js';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.RUNTIME,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
