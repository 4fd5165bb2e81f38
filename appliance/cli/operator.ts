// Who runs an administrative command, and why: both go into the audit trail's record of it.
import { userInfo } from 'node:os';
import type { Command } from 'commander';

export interface OperatorOptions {
  operator: string;
  reason?: string;
}

/** The login behind sudo when there is one: that is the person, not root. */
function defaultOperator(): string {
  const sudo = process.env['SUDO_USER'];
  if (sudo) return sudo;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

export function operatorOptions(command: Command): Command {
  return command
    .option('--operator <NAME>', 'who does this, for the audit trail (default: your login, or SUDO_USER)', defaultOperator())
    .option('--reason <TEXT>', 'why, for the audit trail (e.g. a change ticket)');
}
