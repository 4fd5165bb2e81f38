// Write a file so that readers see either the old content or the new, never a torn one, and so
// that a secret is never readable by others, not even for a moment: the temp file is created
// with its final mode, then renamed over the target.
import { randomBytes } from 'node:crypto';
import { closeSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** `owner`: give the new file this owner before it appears (root installing for the service user). */
export function writeFileAtomic(path: string, data: string, mode: number, owner?: { uid: number; gid: number }): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
