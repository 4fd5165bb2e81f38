// Audit forwarding to a syslog collector (a real TCP server on 127.0.0.1): every record written
// to the file arrives as an RFC 5424 message with RFC 6587 octet counting, the record byte for
// byte; when the collector goes away and comes back, the records written meanwhile still arrive.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openAuditLog } from '../../xks/audit/log.js';
import { createSyslogForwarder } from '../../xks/audit/syslog.js';

const dir = mkdtempSync(join(tmpdir(), 'xks-syslog-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A collector that parses octet-counted frames. */
interface Collector {
  port: number;
  messages: string[];
  stop(): Promise<void>;
}

function collector(port = 0): Promise<Collector> {
  const messages: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) break;
        const len = Number(buf.subarray(0, sp).toString());
        if (buf.length < sp + 1 + len) break;
        messages.push(buf.subarray(sp + 1, sp + 1 + len).toString());
        buf = buf.subarray(sp + 1 + len);
      }
    });
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ port: (server.address() as net.AddressInfo).port, messages, stop })));
}

const until = async (cond: () => boolean) => {
  for (const end = Date.now() + 10_000; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
};
const write = (log: ReturnType<typeof openAuditLog>, ids: string[]) =>
  Promise.all(ids.map((id) => new Promise((r) => log.request({ kmsRequestId: id, kmsOperation: 'Encrypt', status: 200 }, r))));

t.test('records are forwarded as RFC 5424 messages, and survive a collector outage', async (t) => {
  const c1 = await collector();
  const fwd = createSyslogForwarder({ host: '127.0.0.1', port: c1.port, tls: undefined, appName: 'xks-test' });
  const file = join(dir, 'audit.log');
  const log = openAuditLog({ file, onWritten: (lines) => fwd.send(lines) });
  await write(log, ['s-1', 's-2', 's-3']);
  await until(() => c1.messages.length >= 4);
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  t.equal(c1.messages.length, lines.length, 'one message per line of the file (the chain start included)');
  for (const [i, m] of c1.messages.entries()) {
    t.match(m, /^<110>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ xks-test \d+ audit - /, 'PRI (log audit, informational), version, time, host, app, procid, msgid');
    t.ok(m.endsWith(' ' + lines[i]), 'MSG is the record, byte for byte');
  }

  // The collector goes away: records are written to the file regardless, and forwarded later.
  await c1.stop();
  await new Promise((r) => setTimeout(r, 100));
  await write(log, ['s-4', 's-5']);
  t.ok(readFileSync(file, 'utf8').includes('s-5'), 'the file has them at once');
  const c2 = await collector(c1.port);
  await until(() => c2.messages.some((m) => m.includes('"s-5"')));
  t.ok(c2.messages.some((m) => m.includes('"s-4"')) && c2.messages.some((m) => m.includes('"s-5"')), 'records written during the outage arrive after it');
  await log.close();
  await fwd.close();
  await c2.stop();
});
