// A reader for existing haproxy.cfg files, as much as lint needs: sections, their directives as
// words (quotes and escapes resolved, comments dropped), and what a proxy inherits from its
// defaults section. It does not evaluate conditions, environment variables or .if blocks.

export interface Directive {
  /** 1-based line number in the file. */
  line: number;
  words: string[];
}

export type SectionKind = 'global' | 'defaults' | 'frontend' | 'backend' | 'listen' | 'other';

export interface Section {
  kind: SectionKind;
  name: string;
  line: number;
  directives: Directive[];
  /** The defaults section this proxy takes its settings from. */
  defaults?: Section;
}

const KINDS = new Set<SectionKind>(['global', 'defaults', 'frontend', 'backend', 'listen']);
const OTHER_SECTIONS = new Set(['peers', 'resolvers', 'userlist', 'mailers', 'program', 'http-errors', 'ring', 'cache', 'fcgi-app', 'log-forward', 'crt-store', 'traces']);

/** Split one line into words the way HAProxy does: quotes, backslash escapes, `#` comments. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === '#') {
      break;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

export function parseHaproxyConfig(text: string): Section[] {
  const sections: Section[] = [];
  const named = new Map<string, Section>();
  let lastDefaults: Section | undefined;
  let current: Section | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const words = splitWords(raw);
    if (words.length === 0) return;
    const line = index + 1;
    const first = words[0]!;
    if (KINDS.has(first as SectionKind) || OTHER_SECTIONS.has(first)) {
      const kind = KINDS.has(first as SectionKind) ? (first as SectionKind) : 'other';
      const name = kind === 'other' ? `${first} ${words[1] ?? ''}`.trim() : words[1] === 'from' ? '' : (words[1] ?? '');
      current = { kind, name, line, directives: [] };
      // `from <name>` picks a named defaults section; a proxy without it takes the last one above.
      const fromAt = words.indexOf('from');
      const from = fromAt > 0 ? named.get(words[fromAt + 1] ?? '') : kind === 'defaults' ? undefined : lastDefaults;
      if (from && kind !== 'global' && kind !== 'other') current.defaults = from;
      if (kind === 'defaults') {
        lastDefaults = current;
        if (name) named.set(name, current);
      }
      sections.push(current);
      return;
    }
    current?.directives.push({ line, words });
  });
  return sections;
}

/** The words of a directive that start with `prefix` ("timeout client" -> ["timeout", "client"]). */
function startsWith(d: Directive, prefix: string[]): boolean {
  return prefix.every((p, i) => d.words[i] === p);
}

export function directives(s: Section, ...prefix: string[]): Directive[] {
  return s.directives.filter((d) => startsWith(d, prefix));
}

/** The directive in effect for this proxy: its own last one, else its defaults' (recursively). */
export function effective(s: Section, ...prefix: string[]): Directive | undefined {
  const own = directives(s, ...prefix);
  if (own.length > 0) return own[own.length - 1];
  return s.defaults ? effective(s.defaults, ...prefix) : undefined;
}

/** `option <name>` in effect: the last `option x` / `no option x` wins, defaults included. */
export function optionOn(s: Section, name: string): boolean {
  const own = s.directives.filter((d) => startsWith(d, ['option', name]) || startsWith(d, ['no', 'option', name]));
  const last = own[own.length - 1];
  if (last) return last.words[0] === 'option';
  return s.defaults ? optionOn(s.defaults, name) : false;
}

export function proxyMode(s: Section): string {
  return effective(s, 'mode')?.words[1] ?? 'tcp';
}

export interface ServerLine {
  line: number;
  name: string;
  address: string;
  /** Keywords from default-server lines (defaults, then the section) followed by the server's own. */
  params: string[];
  /** Servers this line stands for: server-template makes several. */
  count: number;
}

function defaultServerParams(s: Section): string[] {
  const inherited = s.defaults ? defaultServerParams(s.defaults) : [];
  return [...inherited, ...directives(s, 'default-server').flatMap((d) => d.words.slice(1))];
}

export function servers(s: Section): ServerLine[] {
  const base = defaultServerParams(s);
  const out: ServerLine[] = [];
  for (const d of s.directives) {
    if (d.words[0] === 'server') {
      out.push({ line: d.line, name: d.words[1] ?? '', address: d.words[2] ?? '', params: [...base, ...d.words.slice(3)], count: 1 });
    } else if (d.words[0] === 'server-template') {
      // server-template <prefix> <num | range> <fqdn>[:<port>] [params*]
      const range = (d.words[2] ?? '1').split('-').map(Number);
      const count = range.length === 2 ? range[1]! - range[0]! + 1 : range[0]!;
      out.push({ line: d.line, name: d.words[1] ?? '', address: d.words[3] ?? '', params: [...base, ...d.words.slice(4)], count: Number.isFinite(count) ? count : 1 });
    }
  }
  return out;
}

/** Whether a server keyword is on: the last of `kw` / `no-kw` decides (default-server first). */
export function serverHas(server: ServerLine, kw: string): boolean {
  for (let i = server.params.length - 1; i >= 0; i--) {
    if (server.params[i] === kw) return true;
    if (server.params[i] === `no-${kw}`) return false;
  }
  return false;
}

/** The value after a server keyword ("port 8080" -> "8080"). */
export function serverValue(server: ServerLine, kw: string): string | undefined {
  const at = server.params.lastIndexOf(kw);
  return at >= 0 ? server.params[at + 1] : undefined;
}
