// The baselines: a bare Node HTTPS keep-alive server answering a small JSON POST, with the same
// certificate as the appliance, run as its own process like the appliance. With `relay`, each
// request also makes one round trip to a child process over a pipe (the body there and back, in
// the appliance's frame format) before it is answered: the floor of keeping the HSM in a process
// of its own, with no SigV4, no audit and no HSM work.
import https from 'node:https';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { FrameReader } from '../../xks/hsm/frame-reader.js';

const frame = (body: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32LE(body.length, 0);
  body.copy(out, 4);
  return out;
};

if (process.argv[2] === 'relay-child') {
  // The child: every frame back as it came, on the pipe at fd 3.
  const pipe = new net.Socket({ fd: 3, readable: true, writable: true });
  const reader = new FrameReader((body) => pipe.write(frame(body)));
  pipe.on('data', (chunk: Buffer) => reader.push(chunk));
  pipe.on('close', () => process.exit(0));
} else {
  const [certFile, keyFile, port, mode] = process.argv.slice(2) as [string, string, string, string | undefined];
  let relay: ((body: Buffer, done: (back: Buffer) => void) => void) | undefined;
  if (mode === 'relay') {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'relay-child'], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
    const pipe = child.stdio[3] as net.Socket;
    const waiting: Array<(back: Buffer) => void> = [];
    const reader = new FrameReader((body) => waiting.shift()?.(Buffer.from(body)));
    pipe.on('data', (chunk: Buffer) => reader.push(chunk));
    relay = (body, done) => {
      waiting.push(done);
      pipe.write(frame(body));
    };
  }
  const answer = (res: import('node:http').ServerResponse, bytes: number) => {
    const body = JSON.stringify({ ok: true, bytes });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), keepAliveTimeout: 360_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (relay) relay(body, (back) => answer(res, back.length));
      else answer(res, body.length);
    });
  });
  server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
