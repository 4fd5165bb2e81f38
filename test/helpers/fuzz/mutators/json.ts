// Mutators of one layer: JSON values: the body stays valid JSON text (mostly), its meaning does not.
import { baseBody } from '../bodies.js';
import { APIS } from '../target.js';
import { B64_FIELDS, base64Variant, jsonPaths, type Mutator, randomJsonValue, randomToken, setPath, sizeOf, textOf } from './util.js';

export const JSON_MUTATORS: Mutator[] = [
  {
    name: 'json.type-confusion', layer: 'json', weight: 6,
    apply(d, r) {
      const paths = jsonPaths(d.json);
      if (paths.length) setPath(d.json, r.pick(paths), randomJsonValue(r));
    },
  },
  {
    name: 'json.drop-field', layer: 'json', weight: 3,
    apply(d, r) {
      const paths = jsonPaths(d.json);
      if (paths.length) setPath(d.json, r.pick(paths), undefined, true);
    },
  },
  {
    name: 'json.unknown-field', layer: 'json', weight: 2,
    apply(d, r) {
      const md = d.json['requestMetadata'];
      const where = r.chance(0.5) && typeof md === 'object' && md !== null ? (md as Record<string, unknown>) : d.json;
      where[r.pick(['constructor', 'toString', 'hasOwnProperty', 'valueOf', randomToken(r), 'ciphertextDataIntegrityValue', 'raw'])] = randomJsonValue(r);
    },
  },
  {
    name: 'json.proto-key', layer: 'json', weight: 1,
    apply(d, r) {
      const text = textOf(d);
      const inner = r.chance(0.5) && text.includes('"requestMetadata":{');
      d.jsonText = inner
        ? text.replace('"requestMetadata":{', '"requestMetadata":{"__proto__":{"awsPrincipalArn":"arn:aws:iam::1:root","kmsOperation":"x"},')
        : `{"__proto__":{"plaintext":"AAAA","polluted":true},${text.slice(1)}`;
    },
  },
  {
    name: 'json.huge-number', layer: 'json', weight: 2,
    apply(d, r) {
      const text = textOf(d);
      const lit = r.pick(['1e999999', '-1e400', '123456789012345678901234567890123456789', '0.' + '0'.repeat(5000) + '1', '1' + '0'.repeat(30000), '-0', '1E+2', 'NaN', 'Infinity', '0x10', '01']);
      const field = r.pick(['plaintext', 'kmsRequestId', 'encryptionAlgorithm', 'requestMetadata', 'initializationVector']);
      const re = new RegExp(`("${field}":)("(?:[^"\\\\]|\\\\.)*"|\\{[^}]*\\})`);
      d.jsonText = re.test(text) ? text.replace(re, `$1${lit}`) : `${text.slice(0, -1)},"n":${lit}}`;
    },
  },
  {
    name: 'json.deep-nesting', layer: 'json', weight: 1.5,
    apply(d, r) {
      const depth = sizeOf(r, [64, 500], [10_000, 30_000]);
      const [open, close] = r.pick([['[', ']'], ['{"a":', '}']] as const);
      const nested = open.repeat(depth) + (open === '[' ? '' : '1') + close.repeat(depth);
      const text = textOf(d);
      d.jsonText = r.chance(0.3) ? nested : `${text.slice(0, -1)},"deep":${nested}}`;
    },
  },
  {
    name: 'json.top-level', layer: 'json', weight: 1,
    apply(d, r) {
      d.jsonText = r.pick(['[]', 'null', '"x"', '123', 'true', '', ' ', '{', '}', '[{}]', '{}', `[${textOf(d)}]`, '{"requestMetadata":null}', '\u0000']);
    },
  },
  {
    name: 'json.duplicate-keys', layer: 'json', weight: 1,
    apply(d, r) {
      const text = textOf(d);
      const key = r.pick(['requestMetadata', 'plaintext', 'encryptionAlgorithm', 'ciphertext']);
      d.jsonText = `{"${key}":${JSON.stringify(randomJsonValue(r))},${text.slice(1, -1)},"${key}":${JSON.stringify(randomJsonValue(r))}}`;
    },
  },
  {
    name: 'json.string-escapes', layer: 'json', weight: 2,
    apply(d, r) {
      const text = textOf(d);
      const esc = r.pick(['\\u0000', '\\ud800', '\\udfff\\ud800', '\\u202e', '\\"', '\\\\', '\\/', '\\x41', '\\u00', '\\q', '\u0001', '\t', '\u2028']);
      const at = text.indexOf('":"', r.int(Math.max(1, text.length - 4)));
      d.jsonText = at < 0 ? text : text.slice(0, at + 3) + esc + text.slice(at + 3);
    },
  },
  {
    name: 'json.base64-edge', layer: 'json', weight: 5,
    apply(d, r) {
      const present = B64_FIELDS.filter((f) => typeof d.json[f] === 'string');
      if (!present.length) return;
      const field = r.pick(present);
      d.json[field] = base64Variant(r, d.json[field] as string);
    },
  },
  {
    name: 'json.sizes', layer: 'json', weight: 3,
    apply(d, r) {
      const field = r.pick(B64_FIELDS);
      const n = sizeOf(r, [0, 1, 11, 12, 16, 17, 20, 21, 4300], [8192, 16384, 16385, 20000, 40000]);
      d.json[field] = Buffer.alloc(n, r.int(256)).toString('base64');
    },
  },
  {
    name: 'json.algorithm', layer: 'json', weight: 2,
    apply(d, r) {
      const field = r.pick(['encryptionAlgorithm', 'ciphertextDataIntegrityValueAlgorithm']);
      d.json[field] = r.pick(['aes_gcm', 'AES-GCM', 'AES_GCM ', 'RSAES_OAEP_SHA_256', '', null, 'SHA_256', 'sha_256', 'AES_GCM\u0000', 7]);
    },
  },
  {
    name: 'json.metadata-strings', layer: 'json', weight: 2,
    apply(d, r) {
      const md = d.json['requestMetadata'];
      if (typeof md !== 'object' || md === null) return;
      const field = r.pick(['kmsRequestId', 'kmsOperation', 'awsPrincipalArn', 'kmsKeyArn', 'kmsViaService', 'awsSourceVpce', 'awsSourceVpc']);
      (md as Record<string, unknown>)[field] = r.pick(['', ' ', 'x'.repeat(4096), 'x'.repeat(4097), '\u0000', '${jndi:ldap://x}', '<script>', '\u202eevil', 'a\nb', '../../etc/passwd', 'arn:aws:iam::*:*']);
    },
  },
  {
    name: 'json.other-api-body', layer: 'json', weight: 1,
    apply(d, r, t) {
      d.json = baseBody(r.pick(APIS.filter((a) => a !== d.api)), r, t);
    },
  },

];
