// The baseline: a bare Node HTTPS keep-alive server answering a small JSON POST, with the same
// certificate as the appliance. Run as its own process, like the appliance.
import https from 'node:https';
import { readFileSync } from 'node:fs';

const [certFile, keyFile, port] = process.argv.slice(2) as [string, string, string];
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), keepAliveTimeout: 360_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ ok: true, bytes: Buffer.concat(chunks).length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
