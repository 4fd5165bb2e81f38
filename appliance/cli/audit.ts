// `xks audit verify FILE...`: check the audit trail's hash chain across the current and rotated
// files (any order: they are put in chain order). Exit 0 only if it is intact.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { verifyAuditFiles, type Finding } from '../../xks/audit/verify.js';
import { CliError } from './errors.js';

const where = (f: Finding) => `${f.file} line ${f.line}${f.seq !== undefined ? ` (seq ${f.seq})` : ''}`;

export function register(program: Command): void {
  const audit = program.command('audit').description('The tamper-evident audit trail');
  audit
    .command('verify')
    .description(
      'Check the hash chain of audit files: pass the current file and every rotated one (e.g. logs/audit.log*; .gz is read too),\n' +
        'in any order. Names the first line where the chain breaks and why (edited, deleted, reordered, torn).\n' +
        'A torn last line after a crash is reported but not fatal. Exit 0 only if the chain is intact.',
    )
    .argument('<FILE...>', 'audit files (current and rotated)')
    .option('--json', 'print the report as JSON')
    .action((files: string[], o: { json?: boolean }) => {
      const missing = files.filter((f) => !existsSync(f));
      if (missing.length) throw new CliError(`no such file: ${missing.join(', ')}`, 2);
      const report = verifyAuditFiles(files);
      if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        for (const f of report.files) process.stdout.write(`${f.file}: ${f.records} records${f.firstSeq !== undefined ? `, seq ${f.firstSeq}-${f.lastSeq}` : ''}\n`);
        for (const w of report.warnings) process.stdout.write(`warning: ${where(w)}: ${w.reason}\n`);
        if (report.ok) process.stdout.write(`intact: ${report.records} records${report.duplicates ? ` (${report.duplicates} repeated lines from a copytruncate skipped)` : ''}\n`);
      }
      if (report.error) throw new CliError(`audit chain broken at ${where(report.error)}: ${report.error.reason}`);
    });
}
