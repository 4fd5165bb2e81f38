/**
 * A real `curl --aws-sigv4 "aws:amz:us-east-1:kms-xks-proxy"` (the spec's own test tool, P4) against
 * a node:http server on 127.0.0.1 that verifies with verifySigV4. curl signs
 * content-type;host;x-amz-date, unlike KMS's host;x-amz-date: both must work.
 *
 * The credential goes to curl in a config file (-K, mode 0600), never in argv, where any local
 * user could read it from the process list. Operators should call curl the same way.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { request } from 'undici';
import { verifySigV4 } from '../../gateway/sigv4.js';
import { errorBody, toXksError } from '../../xks/errors.js';
import { signXksRequest } from '../helpers/sign.js';

const run = promisify(execFile);

const CRED1 = { accessKeyId: 'AKIAXKSCURLAAAAAAAAA', secretAccessKey: 'Hb3k9Lw2Qx7Vn5Tz1Rc8Md4Pf6Ys0Gj2Ke5Ua7Ni3Ow=' };
const CRED2 = { accessKeyId: 'AKIAXKSCURLBBBBBBBBBBBBB', secretAccessKey: 'Wq2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb4Nm6Qw8Er0T' };
const SECRETS = new Map([CRED1, CRED2].map((c) => [c.accessKeyId, c.secretAccessKey]));
const PATH = '/demo/kms/xks/v1/health';
const BODY = '{"requestMetadata":{"kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8dfae","kmsOperation":"KmsHealthCheck"}}';

const help = await run('curl', ['--help', 'all']).catch(() => ({ stdout: '' }));
const skip = help.stdout.includes('--aws-sigv4') ? false : 'needs curl 7.75+ (--aws-sigv4)';

const dir = mkdtempSync(join(tmpdir(), 'xks-sigv4-curl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// The server the gateway will be: raw body bytes in, verifySigV4, then 200 or the spec's 401 JSON.
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const signed = { method: req.method!, path: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
    try {
      const who = verifySigV4(signed, (id) => SECRETS.get(id), { regions: ['us-east-1'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(who));
    } catch (err) {
      const e = toXksError(err);
      res.writeHead(e.status, { 'content-type': 'application/json' }).end(errorBody(e.errorName, e.message));
    }
  });
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => server.close());
const port = (server.address() as AddressInfo).port;

/** curl's config syntax: a double-quoted value with backslash escapes. */
const quote = (value: string): string => `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

let configs = 0;
async function curl(user: string, region = 'us-east-1'): Promise<{ status: number; body: unknown }> {
  const config = join(dir, `curl-${++configs}.conf`);
  writeFileSync(config, `user = ${quote(user)}\naws-sigv4 = ${quote(`aws:amz:${region}:kms-xks-proxy`)}\n`, { mode: 0o600 });
  const { stdout } = await run('curl', [
    '--silent', '--show-error', '--max-time', '10',
    '-K', config,
    '-H', 'Content-Type: application/json',
    '--data-binary', BODY,
    '--write-out', '\n%{http_code}',
    `http://127.0.0.1:${port}${PATH}`,
  ]);
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: JSON.parse(stdout.slice(0, at)) };
}

t.test('curl --aws-sigv4 with either configured credential set is accepted', { skip }, async (t) => {
  for (const cred of [CRED1, CRED2]) {
    const r = await curl(`${cred.accessKeyId}:${cred.secretAccessKey}`);
    t.equal(r.status, 200, cred.accessKeyId);
    t.match(r.body, { accessKeyId: cred.accessKeyId, region: 'us-east-1', date: /^\d{8}$/ });
  }
});

t.test('curl --aws-sigv4 with a wrong secret is refused with 401, the secret not echoed', { skip }, async (t) => {
  const wrong = `${CRED1.secretAccessKey.slice(0, -2)}x=`;
  const r = await curl(`${CRED1.accessKeyId}:${wrong}`);
  t.equal(r.status, 401);
  t.match(r.body, { errorName: 'AuthenticationFailedException', errorMessage: 'Signature does not match' });
  const text = JSON.stringify(r.body);
  t.notOk(text.includes(wrong) || text.includes(CRED1.secretAccessKey), 'no secret in the reply');
});

t.test('curl --aws-sigv4 with an unknown key id or an unpinned region is refused with 401', { skip }, async (t) => {
  const unknown = await curl(`AKIAXKSCURLUNKNOWNAAA:${CRED1.secretAccessKey}`);
  t.equal(unknown.status, 401);
  t.match(unknown.body, { errorName: 'AuthenticationFailedException', errorMessage: 'Signature does not match' });
  const region = await curl(`${CRED1.accessKeyId}:${CRED1.secretAccessKey}`, 'eu-west-1');
  t.equal(region.status, 401);
  t.match(region.body, { errorName: 'AuthenticationFailedException', errorMessage: 'Credential region is not allowed' });
});

t.test('the test helper signXksRequest gives headers a real HTTP client can send as is', async (t) => {
  const url = `http://127.0.0.1:${port}${PATH}`;
  const headers = await signXksRequest({ url, body: BODY, ...CRED2 });
  t.same(Object.keys(headers).sort(), ['authorization', 'content-type', 'host', 'x-amz-date']);
  const r = await request(url, { method: 'POST', headers, body: BODY });
  t.equal(r.statusCode, 200);
  t.match(await r.body.json(), { accessKeyId: CRED2.accessKeyId });
});
