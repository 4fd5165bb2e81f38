// The exit codes of every `xks` command, so systemd (RestartPreventExitStatus=) and scripts can
// tell a mistake a restart cannot fix from a failure a restart may. Documented in the README.
export const EXIT = {
  OK: 0,
  /** A runtime failure (crash, lost resource): a restart may help. */
  RUNTIME: 1,
  /** The configuration (or a file it names) is wrong: fix it first; restarting cannot help. */
  CONFIG: 2,
  /** A credential or HSM PIN is wrong, locked, unreadable or too open: retrying a wrong PIN can
   *  lock the HSM token, so never restart on it. */
  CREDENTIALS: 3,
} as const;
