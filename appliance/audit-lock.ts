// One writer per audit file: a second process appending to it would interleave its own sequence
// numbers with the running instance's and break the hash chain (even one that then fails to start:
// its `start` record is already written). FILE.lock holds the writer's pid, made with O_EXCL; a
// lock whose process is gone is stale and taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from './config/load.js';

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the audit file's lock for this process; returns the release. Throws a ConfigError if another live process has it. */
export function lockAuditFile(file: string): () => void {
  const lock = `${file}.lock`;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 }); // as the audit log itself does
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (Number(readFileSync(lock, 'utf8').trim()) === process.pid) rmSync(lock, { force: true });
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`audit.file: cannot create the lock ${lock} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(lock, 'utf8').trim());
    } catch {
      // Removed meanwhile: try again.
    }
    if (alive(holder)) {
      throw new ConfigError(`audit.file: ${file} is written by another running process (pid ${holder}, see ${lock}): give each instance its own audit.file, or stop that one first`);
    }
    rmSync(lock, { force: true });
  }
  throw new ConfigError(`audit.file: could not take the lock ${lock}: another process keeps taking it`);
}
