// The one configuration schema of the appliance. The YAML file is validated into `Config` here and
// its parts are handed down to each layer, which declares the option types it takes (they must fit:
// see ConfigFitsLayers below). The loader (load.ts) resolves paths and checks what a schema
// cannot (files, permissions, cross references). Messages name the field and say how to fix it.
import { z } from 'zod';
import { validateCidr } from '../../xks/cidr-list.js';
import { KEY_USAGES, XKS_PATH_SUFFIX, type Credential, type KeyConfig as XksKeyConfig, type KeyStoreConfig as XksKeyStoreConfig, type PolicyConfig as XksPolicyConfig, type ProxyInfo } from '../../xks/options.js';
import type { HsmNodeOptions, HsmOptions } from '../../xks/hsm/options.js';
import type { GatewayOptions } from '../../gateway/options.js';

/** proxy.hostname: the DNS name KMS connects to (also what `xks init --host` accepts). */
export const HOSTNAME = /^[A-Za-z0-9.-]+$/;

export { KEY_USAGES, XKS_PATH_SUFFIX, type Credential };

const ms = (min: number, max: number) => z.number().int().min(min).max(max);
// Checked here with the allowlist's own parser, so a bad entry fails config validation (naming
// the field) instead of the listener at start-up.
const cidr = z.string().superRefine((value, ctx) => {
  const reason = validateCidr(value);
  if (reason !== null) ctx.addIssue({ code: 'custom', message: reason });
});

/** XKS path prefix: [A-Za-z0-9/_-] only, starts with '/', no trailing '/' (spec T7). */
const uriPathPrefix = z
  .string()
  .regex(/^(\/[A-Za-z0-9_-]+)*$/, 'use "" or segments like "/store1" made of A-Z a-z 0-9 _ - (no trailing slash)')
  .refine((p) => (p + XKS_PATH_SUFFIX).length <= 128, 'the URI path (prefix + /kms/xks/v1) must be at most 128 characters');

/** externalKeyId: [A-Za-z0-9._-], 1-128 characters (spec T9). */
export const externalKeyId = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'use 1-128 characters from A-Z a-z 0-9 . _ -');

const secretSource = z
  .object(
    {
      file: z.string().min(1).optional(),
      env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    },
    { error: 'give { file: PATH } (mode 0600) or { env: NAME }; PINs are never written inline' },
  )
  .strict()
  .refine((s) => (s.file ? 1 : 0) + (s.env ? 1 : 0) === 1, 'give exactly one of "file" (mode 0600) or "env"; PINs are never written inline');

const vpceId = z.string().regex(/^vpce-[0-9a-f]{8,17}$/, 'a VPC endpoint id such as vpce-0123456789abcdef0');

/**
 * Secondary authorization (spec Z1) on requestMetadata. Every list given must match; an absent
 * list allows anything. Patterns are globs where `*` matches any run of characters.
 */
const policy = z
  .object({
    principals: z.array(z.string().min(1)).min(1, 'list at least one awsPrincipalArn pattern, or leave principals out').optional(),
    operations: z.array(z.string().min(1)).min(1).optional(),
    viaServices: z.array(z.string().min(1)).min(1).optional(),
    /** With viaServices: also refuse calls that name no kmsViaService (direct calls). */
    requireViaService: z.boolean().default(false),
    /** The VPC endpoint the connection came through: the NLB's PROXY v2 TLV only. */
    vpcEndpoints: z.array(vpceId).min(1).optional(),
    /** requestMetadata.awsSourceVpce: the caller's own VPC endpoint to KMS, as KMS reports it. */
    awsSourceVpces: z.array(vpceId).min(1).optional(),
  })
  .strict();

const key = z
  .object({
    id: externalKeyId,
    label: z.string().min(1, 'the CKA_LABEL of the AES-256 key on every HSM node'),
    usage: z.array(z.enum(KEY_USAGES)).max(10).default(['ENCRYPT', 'DECRYPT']),
    enabled: z.boolean().default(true),
    policy: policy.optional(),
  })
  .strict();

const keyStore = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 characters from A-Z a-z 0-9 _ -'),
    uriPathPrefix,
    enabled: z.boolean().default(true),
    credentialsFile: z.string().min(1, 'a file (mode 0600) listing {accessKeyId, secretAccessKey} sets'),
    /** Credential sets older than this are warned about (xks creds list, the log): rotate them. */
    credentialMaxAgeDays: z.number().int().min(1).max(3650).default(90),
    regions: z.array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'an AWS region such as us-east-1')).optional(),
    // KMS's default quota per external key store is 1800 requests/s (P3); beyond it: 429.
    quota: z.object({ requestsPerSecond: z.number().int().min(1), burst: z.number().int().min(1).optional() }).strict().optional(),
    /** Source CIDRs for this store, after routing: others get 403 (never GetHealthStatus). */
    allow: z.array(cidr).optional(),
    /** VPC endpoint ids for this store, from the NLB's PROXY v2 TLV only (never the request body). */
    vpcEndpoints: z.array(vpceId).optional(),
    policy: policy.optional(),
    keys: z.array(key).default([]),
  })
  .strict();

const hsmNode = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 characters from A-Z a-z 0-9 . _ -'),
    model: z.string().min(1).max(64).default('PKCS#11 HSM'),
    module: z.string().min(1, 'the path of the vendor PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so'),
    tokenLabel: z.string().min(1).max(32).optional(),
    slot: z.number().int().min(0).optional(),
    pin: secretSource,
    // caller: the proxy draws the 12-byte IV (SoftHSM2, Luna); hsm: pass zeros, the module writes
    // its IV back (CloudHSM, nShield). The proxy refuses an all-zero IV coming back.
    ivMode: z.enum(['caller', 'hsm']).default('caller'),
    sessions: z.number().int().min(1).max(256).default(4),
    // sync: fast local modules (SoftHSM2); async: network HSMs, calls run on libuv's thread pool.
    callMode: z.enum(['sync', 'async']).default('sync'),
    // Encrypt/decrypt on an in-HSM session copy of each token key, refreshed every few seconds:
    // SoftHSM2 re-checks a token object's file on every use. auto: on for SoftHSM2 tokens only.
    sessionKeyCopies: z.union([z.literal('auto'), z.boolean()], { error: 'must be auto, true or false' }).default('auto'),
    env: z.record(z.string(), z.string()).default({}),
  })
  .strict()
  .refine((n) => n.tokenLabel !== undefined || n.slot !== undefined, 'give "tokenLabel" or "slot" to choose the token');

const tls = z
  .object({
    certFile: z.string().min(1, 'the PEM chain: server certificate first, then intermediates'),
    keyFile: z.string().min(1, 'the PEM private key of the server certificate (mode 0600)'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    // Staging before the public certificate arrives: PEM roots (an internal CA) accepted as the end
    // of the chain in production mode too. KMS does NOT accept them: doctor, status and the log say
    // so for as long as the served chain ends at one.
    stagingRoots: z.array(z.string().min(1, 'a PEM file holding the staging root CA certificate')).optional(),
    clientAuth: z
      .object({
        caFile: z.string().min(1),
        // Absent: KMS's cks.kms.<region>.amazonaws.com for each of proxy.regions. Never empty:
        // client auth that accepts any subject of the CA is refused.
        subjects: z.array(z.string().min(1)).min(1, 'list at least one allowed client certificate subject CN, or leave subjects out for KMS\'s').optional(),
        // true: TLS 1.2 only, and a refused client certificate ends the handshake with a
        // handshake_failure alert (KMS and AWS's test client expect one). false: TLS 1.3 stays
        // available, but a refused client only sees the connection closed after the handshake.
        alertOnReject: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((t) => !(t.clientAuth?.alertOnReject && t.minVersion === 'TLSv1.3'), {
    message: 'clientAuth.alertOnReject needs TLS 1.2 (the client certificate is encrypted in TLS 1.3): set minVersion TLSv1.2 or alertOnReject false',
    path: ['clientAuth', 'alertOnReject'],
  });

/**
 * One proxy instance of the fleet behind the load balancers (its own VM, or its own process in the
 * demo). Ports default to this configuration's own: on VMs every instance uses the same ones.
 */
const fleetInstance = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 characters from A-Z a-z 0-9 . _ -'),
    host: z.string().regex(/^[A-Za-z0-9.:-]+$/, 'the address or DNS name HAProxy and the NLB reach this instance at'),
    port: z.number().int().min(1).max(65535).optional(),
    agentPort: z.number().int().min(1).max(65535).optional(),
    healthPort: z.number().int().min(1).max(65535).optional(),
    metricsPort: z.number().int().min(1).max(65535).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    mode: z.enum(['production', 'demo']).default('production'),
    proxy: z
      .object({
        hostname: z.string().regex(HOSTNAME, 'must be a DNS name (letters, digits, dots and hyphens): the one KMS connects to, in the certificate SAN'),
        fleetSize: z.number().int().min(1).default(1),
        vendor: z.string().min(1).default('xks-appliance'),
        // The regions KMS calls from: the default SigV4 region allow-list of every key store, and
        // KMS's mTLS client subjects.
        regions: z
          .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'an AWS region such as us-east-1'))
          .min(1, 'list at least one AWS region KMS calls from, such as us-east-1')
          .default(['us-east-1']),
        // New ciphertexts: 2 binds the external key id into the HSM AAD; both always decrypt. Keep
        // 1 while a fleet is upgraded from a build that cannot decrypt 2, then switch.
        ciphertextMetadataVersion: z.union([z.literal(1), z.literal(2)]).default(2),
      })
      .strict(),
    server: z
      .object({
        host: z.string().default('0.0.0.0'),
        port: z.number().int().min(1).max(65535).default(443),
        tls,
        // NLB idle timeout is 350 s: keep-alive must outlive it or KMS pays a fresh handshake.
        keepAliveTimeoutMs: ms(1000, 7_200_000).default(360_000),
        // A connection none of whose requests has passed SigV4 yet: idle this long and it is
        // closed, so unauthenticated clients cannot hold connection slots for the keep-alive time.
        unauthenticatedIdleTimeoutMs: ms(500, 600_000).default(10_000),
        // Node counts it from the first byte of each request, not over idle keep-alive time.
        headersTimeoutMs: ms(1000, 600_000).optional(),
        maxHeaderBytes: z.number().int().min(4096).max(65536).default(16384),
        maxBodyBytes: z.number().int().min(65536).max(1 << 20).default(65536),
        // SIGTERM: the port stays open and idle connections stay up for noticeMs while the load
        // balancers learn of the drain (above HAProxy's agent-inter; with NLB targets directly, its
        // health-check interval x unhealthy threshold); busy connections end after their next answer;
        // the process exits when none is left, or after timeoutMs.
        drain: z
          .object({ noticeMs: ms(0, 600_000).default(5000), timeoutMs: ms(1000, 3_600_000).default(30_000) })
          .strict()
          .refine((d) => d.timeoutMs >= d.noticeMs, { message: 'timeoutMs must be at least noticeMs', path: ['timeoutMs'] })
          .default({ noticeMs: 5000, timeoutMs: 30_000 }),
        maxConnections: z.number().int().min(1).default(10000),
        maxConnectionsPerSource: z.number().int().min(1).default(1000),
        allow: z.array(cidr).default(['0.0.0.0/0', '::/0']),
        proxyProtocol: z
          .object({
            enabled: z.boolean().default(false),
            // required: a trusted peer must send a header (HAProxy accept-proxy semantics).
            // optional: a trusted peer may also speak TLS directly (told apart by the first byte),
            // for a listener that serves HAProxy and direct clients alike.
            mode: z.enum(['required', 'optional']).default('required'),
            trustedProxies: z.array(cidr).default(['127.0.0.1/32', '::1/128']),
            timeoutMs: ms(100, 60_000).default(3000),
          })
          .strict()
          .default({ enabled: false, mode: 'required', trustedProxies: ['127.0.0.1/32', '::1/128'], timeoutMs: 3000 }),
      })
      .strict(),
    health: z
      .object({
        path: z.string().regex(/^\/[A-Za-z0-9/_.-]*$/).default('/healthz'),
        httpPort: z.number().int().min(1).max(65535).optional(),
        agentPort: z.number().int().min(1).max(65535).optional(),
        // Sources allowed on httpPort and agentPort (they reveal capacity and drain state);
        // absent: server.allow.
        allow: z.array(cidr).optional(),
      })
      .strict()
      .default({ path: '/healthz' }),
    metrics: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(1).max(65535).optional(),
      })
      .strict()
      .default({ host: '127.0.0.1' }),
    logging: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
        // Refused connections and unauthenticated requests: the first per reason and source in
        // each interval is logged and audited, the rest are summed up in one line.
        refusalIntervalMs: ms(1000, 3_600_000).default(60_000),
      })
      .strict()
      .default({ level: 'info', refusalIntervalMs: 60_000 }),
    audit: z
      .object({
        file: z.string().min(1),
        // Size-based rotation by the service itself (FILE -> FILE.<UTC time>); unset: use logrotate.
        maxBytes: z.number().int().min(65_536, 'audit.maxBytes: at least 65536 (64 KiB)').optional(),
        // Optional forwarding to a syslog collector (RFC 5424 over TCP/TLS); the file stays the record.
        syslog: z
          .object({
            host: z.string().min(1),
            port: z.number().int().min(1).max(65535),
            tls: z.boolean().default(true),
            caFile: z.string().min(1).optional(),
            appName: z.string().regex(/^[!-~]{1,48}$/, 'printable ASCII without spaces, at most 48 characters').default('xks'),
            facility: z.number().int().min(0).max(23).default(13),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    // The operator's control socket; default <config dir>/xks-control/<config name>.sock. Under
    // systemd: /run/xks/<instance>/control.sock (the unit's RuntimeDirectory).
    control: z.object({ socket: z.string().min(1).optional() }).strict().optional(),
    hsm: z
      .object({
        vendor: z.string().min(1).default('PKCS#11'),
        callTimeoutMs: ms(5, 10_000).default(100),
        requestBudgetMs: ms(10, 10_000).default(200),
        probeIntervalMs: ms(100, 60_000).default(5000),
        // A node process silent this long (every call and probe missing its deadline) is killed
        // and restarted: long enough that a passing stall only takes it out of rotation.
        hangKillAfterMs: ms(100, 600_000).default(10_000),
        healthKeyLabel: z.string().min(1).default('xks-health-test'),
        // The proxy starts once this many nodes log in; the others are retried in the background
        // (a node whose PIN is refused is not: retries could lock the token).
        minNodesAtStart: z.number().int().min(1).max(10).default(1),
        // vendor: the HSMs replicate keys themselves (Luna HA group, nShield Security World,
        // CloudHSM cluster): `xks keys create` makes the key once. proxy: independent tokens,
        // `xks keys create` puts the same material on every node.
        replication: z.enum(['vendor', 'proxy']).default('proxy'),
        nodes: z.array(hsmNode).min(1, 'configure at least one HSM node').max(10, 'GetHealthStatus reports at most 10 nodes'),
      })
      .strict()
      .refine((h) => h.minNodesAtStart <= h.nodes.length, { message: 'minNodesAtStart is more than the number of nodes', path: ['minNodesAtStart'] }),
    keyStores: z.array(keyStore).min(1, 'configure at least one key store'),
    /** Every instance configured to serve: xksProxyFleetSize, the HAProxy servers, `status --fleet`. */
    fleet: z
      .object({ instances: z.array(fleetInstance).min(1, 'list every proxy instance, this one included').max(64) })
      .strict()
      .optional(),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type KeyStoreConfig = Config['keyStores'][number];
export type KeyConfig = KeyStoreConfig['keys'][number];
export type PolicyConfig = z.infer<typeof policy>;
export type HsmNodeConfig = Config['hsm']['nodes'][number];
export type HsmConfig = Config['hsm'];
export type FleetInstanceConfig = z.infer<typeof fleetInstance>;
export type KeyUsage = (typeof KEY_USAGES)[number];

export const credentialsFileSchema = z
  .object({
    credentials: z
      .array(
        z
          .object({
            accessKeyId: z.string().regex(/^[A-Z2-7]{20,30}$/, 'the access key id must be 20-30 characters of A-Z and 2-7'),
            secretAccessKey: z
              .string()
              .regex(/^[A-Za-z0-9+/=]{43,64}$/, 'the secret must be 43-64 characters of A-Z a-z 0-9 + / = (e.g. openssl rand -base64 32)'),
            // Optional: when the set was made, for the credential-age metric (else the file's mtime).
            createdAt: z.string().datetime({ offset: true, message: 'createdAt must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z' }).optional(),
          })
          .strict(),
      )
      .min(1, 'at least one credential set'),
  })
  .strict();

/**
 * Compile-time check: the lower layers declare the options they take (gateway/options.ts,
 * xks/options.ts, xks/hsm/options.ts); the validated configuration must fit them as it is, so
 * appliance/ hands its parts down without mapping code. A schema change that breaks a layer's
 * contract fails the build here.
 */
export type ConfigFitsLayers = [
  Fits<Config, GatewayOptions>,
  Fits<Config['proxy'], ProxyInfo>,
  Fits<KeyStoreConfig, XksKeyStoreConfig>,
  Fits<KeyConfig, XksKeyConfig>,
  Fits<PolicyConfig, XksPolicyConfig>,
  Fits<HsmConfig, HsmOptions>,
  Fits<HsmNodeConfig, HsmNodeOptions>,
];
type Fits<T extends U, U> = T;
