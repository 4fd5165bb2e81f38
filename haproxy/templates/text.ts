// The smallest template helper: a section header followed by its indented lines. Lines given as
// false or undefined are left out, so templates can write `cond && 'directive'`.

export type Line = string | false | undefined;

export function section(header: string, lines: Line[]): string {
  const body = lines.filter((l): l is string => typeof l === 'string').map((l) => `    ${l}`);
  return [header, ...body].join('\n') + '\n';
}
