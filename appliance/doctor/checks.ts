// The checks `xks doctor` runs, in order. Each is small and says what to fix. To add one (e.g. the
// key consistency check of `xks keys verify`), append it to DOCTOR_CHECKS.
import { execFileSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { certificateState, checkConfiguredCertificate, stagingRootPems, STAGING_WARNING } from '../certs/configured.js';
import { optionsFromConfig } from '../haproxy-options.js';
import { parseHaproxyConfig, servers } from '../../haproxy/cfg-parse.js';
import { lintHaproxy } from '../../haproxy/lint.js';
import { NLB_DEFAULT_IDLE_TIMEOUT_MS } from '../../haproxy/options.js';
import { fail, ok, warn, type CheckResult, type DoctorCheck } from './check.js';
import { loginAllNodes } from './hsm-login.js';
import { keysCheck } from './keys-check.js';

const configuration: DoctorCheck = {
  name: 'configuration',
  run: ({ loaded }) => {
    const c = loaded.config;
    const out = [ok('configuration', `${loaded.file}: valid; mode ${c.mode}, ${c.keyStores.length} key store(s), ${c.hsm.nodes.length} HSM node(s)`)];
    if (c.mode !== 'production') out.push(warn('configuration', 'mode demo: certificate errors are only warnings and fault injection is allowed', 'set mode: production for a real appliance'));
    const keys = c.keyStores.reduce((n, s) => n + s.keys.length, 0);
    if (keys === 0) out.push(warn('configuration', 'no key store has keys yet: KMS cannot create a key', 'add keys with xks keys create'));
    return out;
  },
};

/** Secrets 0600 (the loader insists), and the directories holding them closed to others. */
const fileModes: DoctorCheck = {
  name: 'file modes',
  run: ({ loaded }) => {
    const c = loaded.config;
    const secrets = [
      c.server.tls.keyFile,
      ...c.keyStores.map((s) => s.credentialsFile),
      ...c.hsm.nodes.flatMap((n) => (n.pin.file ? [n.pin.file] : [])),
    ].filter((f, i, all) => all.indexOf(f) === i && existsSync(f));
    const out: CheckResult[] = [];
    const uid = process.getuid?.();
    for (const f of secrets) {
      const st = statSync(f);
      if ((st.mode & 0o077) !== 0) out.push(fail('file modes', `${f} has mode ${(st.mode & 0o777).toString(8)}`, `chmod 600 ${f}`));
      const dir = dirname(f);
      const d = statSync(dir);
      if ((d.mode & 0o022) !== 0) out.push(fail('file modes', `${dir} (holds ${f}) is writable by others (mode ${(d.mode & 0o777).toString(8)})`, `chmod go-w ${dir}`));
      if (uid !== undefined && uid !== 0 && st.uid !== uid) out.push(warn('file modes', `${f} belongs to uid ${st.uid}, not to this user (${uid})`, `chown it to the service user`));
    }
    const cfg = statSync(loaded.file);
    if ((cfg.mode & 0o022) !== 0) out.push(fail('file modes', `${loaded.file} is writable by others (mode ${(cfg.mode & 0o777).toString(8)})`, `chmod 640 ${loaded.file}`));
    return out.length ? out : [ok('file modes', `${secrets.length} secret file(s) mode 0600 in closed directories; configuration not writable by others`)];
  },
};

const certificate: DoctorCheck = {
  name: 'certificate',
  run: ({ loaded, now }) => {
    const c = loaded.config;
    if (!existsSync(c.server.tls.certFile)) return [fail('certificate', `${c.server.tls.certFile}: no such file`, 'xks cert csr, have it signed, then xks cert install')];
    const report = checkConfiguredCertificate(c, { now });
    const state = certificateState(c, report);
    // As the service treats them: errors refuse in production and only warn in the demo.
    const error = c.mode === 'production' ? fail : warn;
    const out: CheckResult[] = report.problems.map((p) => (p.severity === 'error' ? error : warn)('certificate', `[${p.code}] ${p.message}`, 'xks cert check shows the chain; a new one: xks cert csr → your CA → xks cert install'));
    if (state.staging) out.push(warn('certificate', STAGING_WARNING, 'install a certificate from a CA that KMS trusts (xks cert roots)'));
    if (report.ok) out.unshift(ok('certificate', `${report.subject}, ${report.daysToExpire} days left, chain ends at ${state.anchor}`));
    return out;
  },
};

const dns: DoctorCheck = {
  name: 'dns',
  run: async ({ loaded }) => {
    const host = loaded.config.proxy.hostname;
    try {
      const addrs = await lookup(host, { all: true });
      return [ok('dns', `${host} resolves to ${addrs.map((a) => a.address).join(', ')}`)];
    } catch (err) {
      return [fail('dns', `${host} does not resolve (${(err as NodeJS.ErrnoException).code})`, 'create the DNS record (the endpoint service\'s private DNS name, or the public name) pointing at the NLB or this host')];
    }
  },
};

// The spec's T3 list: the handshake offers only these, as KMS would need one of them.
const KMS_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384';
/** PROXY v2 LOCAL with no addresses: what a health checker sends; accepted from trusted proxies. */
const PROXY_V2_LOCAL = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00]);

interface Handshake {
  cipher: string;
  authorized: boolean;
  error?: string;
}

/** One TLS handshake at exactly `version`, after a PROXY v2 LOCAL header when the listener wants one. */
function handshake(host: string, port: number, servername: string, version: tls.SecureVersion, ca: string[] | undefined, proxyHeader: boolean): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const raw = net.connect(port, host);
    raw.setTimeout(5000, () => raw.destroy(new Error('timed out')));
    raw.once('error', reject);
    raw.once('connect', () => {
      if (proxyHeader) raw.write(PROXY_V2_LOCAL);
      const s = tls.connect({ socket: raw, servername, minVersion: version, maxVersion: version, ciphers: KMS_CIPHERS, ...(ca ? { ca } : {}), rejectUnauthorized: false });
      s.once('secureConnect', () => {
        resolve({ cipher: s.getCipher().standardName, authorized: s.authorized, ...(s.authorizationError ? { error: String(s.authorizationError) } : {}) });
        s.end();
      });
      s.once('error', reject);
    });
  });
}

const tlsHandshakes: DoctorCheck = {
  name: 'tls',
  run: async ({ loaded }) => {
    const c = loaded.config;
    const host = ['0.0.0.0', '::', ''].includes(c.server.host) ? '127.0.0.1' : c.server.host;
    if (c.server.tls.clientAuth) {
      return [warn('tls', 'not checked: mTLS is on and this host has no KMS client certificate', `check from outside: openssl s_client -connect ${c.proxy.hostname}:${c.server.port} -tls1_2`)];
    }
    // Verified against what KMS trusts (Node's root store holds most of KMS's list) plus staging roots.
    const staging = stagingRootPems(c);
    const ca = staging.length ? [...tls.rootCertificates, ...staging] : undefined;
    const out: CheckResult[] = [];
    const versions: tls.SecureVersion[] = c.server.tls.minVersion === 'TLSv1.3' ? ['TLSv1.3'] : ['TLSv1.2', 'TLSv1.3'];
    if (c.server.tls.minVersion === 'TLSv1.3') out.push(warn('tls', 'TLS 1.2 is off (minVersion TLSv1.3): AWS NLB HTTPS health checks need TLS 1.2', 'set server.tls.minVersion: TLSv1.2'));
    for (const v of versions) {
      try {
        const r = await handshake(host, c.server.port, c.proxy.hostname, v, ca, c.server.proxyProtocol.enabled);
        if (!r.authorized) out.push((c.mode === 'production' ? fail : warn)('tls', `${v} handshake on ${host}:${c.server.port}: the served certificate does not verify (${r.error})`, 'serve the full chain (xks cert check)'));
        else out.push(ok('tls', `${v} handshake on ${host}:${c.server.port} for ${c.proxy.hostname}: ${r.cipher}, certificate verifies`));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        const fix = code === 'ECONNREFUSED' ? 'start the service: systemctl start xks@NAME, or xks serve --config FILE' : 'the listener must offer one of the ciphers KMS uses (spec: AES-256-GCM or ChaCha20 with ECDHE)';
        out.push(fail('tls', `${v} handshake on ${host}:${c.server.port} with KMS's ciphers failed (${code})`, fix));
      }
    }
    return out;
  },
};

const hsmNodes: DoctorCheck = {
  name: 'hsm',
  run: async ({ loaded, status }) => {
    const c = loaded.config;
    const running = (await status())?.['nodes'] as Array<{ id: string; health: string }> | undefined;
    const logins = await loginAllNodes(c);
    return logins.flatMap((l) => {
      const name = `hsm ${l.id}`;
      const out: CheckResult[] = [];
      if (l.ok) out.push(ok(name, `logged in; health-key encrypt+decrypt round trip ${l.ms!.toFixed(1)} ms`));
      else out.push(fail(name, l.error ?? 'cannot log in', l.kind === 'pin' ? 'put the right user PIN in the PIN file (each failure brings the token closer to locking)' : 'see the message'));
      if (l.ok && l.ms! > c.hsm.callTimeoutMs / 2) out.push(warn(name, `round trip ${l.ms!.toFixed(1)} ms is over half of hsm.callTimeoutMs (${c.hsm.callTimeoutMs} ms)`, 'bring the HSM closer, or raise hsm.callTimeoutMs within the 250 ms KMS budget'));
      const live = running?.find((n) => n.id === l.id);
      if (live && live.health !== 'ACTIVE') out.push(fail(name, `the running service has it ${live.health}`, 'see the service log for the node; xks status shows its last probe'));
      return out;
    });
  },
};

const idleTimeouts: DoctorCheck = {
  name: 'idle timeouts',
  run: ({ loaded, haproxyCfg }) => {
    const c = loaded.config;
    const nodeMs = c.server.keepAliveTimeoutMs;
    const rendered = optionsFromConfig(c).timeouts.idleMs;
    const out: CheckResult[] = [];
    const s = (ms: number) => `${Math.round(ms / 1000)} s`;
    if (nodeMs <= NLB_DEFAULT_IDLE_TIMEOUT_MS) out.push(fail('idle timeouts', `Node keep-alive ${s(nodeMs)} is not above the NLB's ${s(NLB_DEFAULT_IDLE_TIMEOUT_MS)}`, 'server.keepAliveTimeoutMs: 360000'));
    else out.push(ok('idle timeouts', `Node keep-alive ${s(nodeMs)} > NLB ${s(NLB_DEFAULT_IDLE_TIMEOUT_MS)}; HAProxy as rendered (xks haproxy render) ${s(rendered)}`));
    if (haproxyCfg) {
      const findings = lintHaproxy(readFileSync(haproxyCfg, 'utf8')).filter((f) => f.id === 'timeout-below-nlb-idle');
      for (const f of findings) out.push(fail('idle timeouts', `${haproxyCfg}:${f.line}: ${f.message}`, f.fix));
      if (!findings.length) out.push(ok('idle timeouts', `${haproxyCfg}: timeouts above the NLB's ${s(NLB_DEFAULT_IDLE_TIMEOUT_MS)}`));
    }
    return out;
  },
};

const fleetSize: DoctorCheck = {
  name: 'fleet size',
  run: ({ loaded, haproxyCfg }) => {
    const size = loaded.config.proxy.fleetSize;
    if (!haproxyCfg) return [ok('fleet size', `proxy.fleetSize ${size} (give --haproxy-cfg FILE to compare it with the HAProxy backend)`)];
    const backends = parseHaproxyConfig(readFileSync(haproxyCfg, 'utf8')).filter((s) => s.kind === 'backend' && servers(s).length > 0);
    const out = backends.map((b) => {
      const n = servers(b).reduce((sum, s) => sum + s.count, 0);
      return n === size
        ? ok('fleet size', `proxy.fleetSize ${size} = backend ${b.name}'s ${n} server(s)`)
        : warn('fleet size', `proxy.fleetSize is ${size} but backend ${b.name} lists ${n} server(s)`, 'set proxy.fleetSize to the number of proxy instances serving the key store (KMS sizes its quota hints on it)');
    });
    return out.length ? out : [warn('fleet size', `${haproxyCfg} has no backend with servers`, 'render it with xks haproxy render --server ...')];
  },
};

/** SigV4 allows KMS's and our clocks 5 minutes apart; NTP keeps them far closer. */
const clock: DoctorCheck = {
  name: 'clock',
  run: ({ now }) => {
    const stamp = now.toISOString();
    let synced: string | undefined;
    try {
      synced = execFileSync('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      synced = undefined;
    }
    if (synced === 'yes') return [ok('clock', `${stamp}, synchronized (NTP)`)];
    return [
      warn(
        'clock',
        `${stamp}, ${synced === 'no' ? 'NOT synchronized' : 'synchronization unknown (no timedatectl)'}: KMS refuses requests when the clocks are 5 minutes apart`,
        'run NTP (systemd-timesyncd or chrony) on this host',
      ),
    ];
  },
};

export const DOCTOR_CHECKS: DoctorCheck[] = [configuration, fileModes, certificate, dns, tlsHandshakes, hsmNodes, keysCheck, idleTimeouts, fleetSize, clock];
