// The named breakages of the mutation check (run.ts): each breaks one critical claim in one place,
// and names the tests that must then fail. Kept apart so a unit test can check, in every
// `npm test`, that each one still applies to the source as it is (test/unit/mutation-breakages).
export interface Breakage {
  name: string;
  /** What the breakage does, in the words of the claim it breaks. */
  claim: string;
  file: string;
  /** Must occur exactly once in `file`: a refactoring that moves it makes the check say so. */
  find: string;
  replace: string;
  tests: string[];
}

export const BREAKAGES: Breakage[] = [
  {
    name: 'sigv4-accept-any-signature',
    claim: 'SigV4: a wrong signature is refused',
    file: 'gateway/sigv4.ts',
    find: "const match = timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'));",
    replace: "const match = timingSafeEqual(expected, Buffer.from(auth.signature, 'hex')) || true;",
    tests: ['test/unit/sigv4.test.ts', 'test/e2e/conformance-sigv4.test.ts'],
  },
  {
    name: 'sigv4-unknown-id-early-exit',
    claim: 'SigV4: an unknown access key id gets the same message after the same work',
    file: 'gateway/sigv4.ts',
    find: 'const secret = known ?? UNKNOWN_ID_SECRET;',
    replace: "const secret = known ?? (UNKNOWN_ID_SECRET && fail('Unknown access key id'));",
    tests: ['test/unit/sigv4.test.ts'],
  },
  {
    name: 'failover-disabled',
    claim: 'HSM failover: a failed or frozen node costs one attempt, then another node answers',
    file: 'xks/hsm/parent/cluster.ts',
    find: 'for (let attempt = 0; attempt <= this.nodes.length; attempt++) {',
    replace: 'for (let attempt = 0; attempt < 1; attempt++) {',
    tests: ['test/failover/demo-failover.test.ts'],
  },
  {
    name: 'reload-drops-connections',
    claim: 'Hot reload keeps live connections',
    file: 'gateway/listener.ts',
    find: '      server.setSecureContext(context);',
    replace: '      server.setSecureContext(context);\n      server.closeAllConnections();',
    tests: ['test/e2e/reload.test.ts'],
  },
  {
    name: 'proxy-header-trusted-from-anyone',
    claim: 'PROXY protocol: a header is believed only from a trusted proxy',
    file: 'gateway/listener.ts',
    find: 'if (!s.proxyProtocol.enabled || !trustedProxies.has(peer)) {',
    replace: 'if (!s.proxyProtocol.enabled || !(trustedProxies.has(peer) || true)) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'proxy-local-anywhere',
    claim: 'PROXY protocol: a LOCAL connection may use the health path only',
    file: 'gateway/pipeline.ts',
    find: "if (conn?.local && route.kind !== 'health-check') {",
    replace: 'if (false) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'proxy-unix-family-accepted',
    claim: 'PROXY protocol: a UNIX-family header is refused',
    file: 'gateway/listener.ts',
    find: "if (info.family === 'UNIX') throw",
    replace: 'if (false) throw',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'mtls-subject-check-off',
    claim: 'mTLS: a client certificate with another subject is refused',
    file: 'gateway/client-cert-gate.ts',
    find: 'if (cn === undefined || !opts.subjects.has(cn)) return',
    replace: 'if (false) return',
    tests: ['test/e2e/mtls-demo.test.ts', 'test/integration/mtls-alert.test.ts'],
  },
  {
    name: 'audit-record-skipped',
    claim: 'Audit: one record per request',
    file: 'appliance/service.ts',
    find: 'if (audit) audit.request(record, release);',
    replace: 'if (audit) release(true);',
    tests: ['test/e2e/conformance-errors-logging.test.ts'],
  },
  {
    name: 'unauthenticated-idle-timeout-off',
    claim: 'Connection slots: an unauthenticated connection gets a short idle timeout',
    file: 'gateway/listener.ts',
    find: 'const unauthIdleMs = Math.min(s.unauthenticatedIdleTimeoutMs, s.keepAliveTimeoutMs);',
    replace: 'const unauthIdleMs = s.keepAliveTimeoutMs;',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'unauthenticated-eviction-off',
    claim: 'Connection slots: unauthenticated connections cannot lock KMS out',
    file: 'gateway/listener.ts',
    find: 'const oldest = unauthenticated.values().next().value;',
    replace: 'const oldest = unauthenticated.size < 0 ? unauthenticated.values().next().value : undefined;',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'host-unchecked',
    claim: 'SigV4: the signed Host must name this proxy',
    file: 'gateway/pipeline.ts',
    find: 'if (!hostNames(req.headers.host, rt.hostname)) {',
    replace: 'if (!hostNames(req.headers.host, rt.hostname) && false) {',
    tests: ['test/e2e/security.test.ts'],
  },
  {
    name: 'vpce-from-request-body',
    claim: 'vpcEndpoints: only the NLB TLV counts, never the body',
    file: 'xks/policy.ts',
    find: 'if (c.vpcEndpoints && !inList(c.vpcEndpoints, input.connectionVpceId))',
    replace: 'if (c.vpcEndpoints && !inList(c.vpcEndpoints, input.connectionVpceId ?? input.metadata.awsSourceVpce))',
    tests: ['test/unit/policy.test.ts'],
  },
  {
    name: 'duplicate-labels-accepted',
    claim: 'Keys: one HSM label, one key',
    file: 'appliance/config/load.ts',
    find: '  checkKeyLabels(config);',
    replace: '  if (config.keyStores.length < 0) checkKeyLabels(config);',
    tests: ['test/unit/config-security.test.ts'],
  },
  {
    name: 'key-id-not-bound',
    claim: 'ciphertextMetadata 2 binds the external key id',
    file: 'xks/aad.ts',
    find: 'return Buffer.concat([frameHsmAad(aad, metadata), Buffer.from([id.length]), id]);',
    replace: 'return id.length >= 0 ? frameHsmAad(aad, metadata) : id;',
    tests: ['test/e2e/conformance-decrypt.test.ts'],
  },
  {
    name: 'pins-shared-with-every-node',
    claim: 'PINs: each node process gets only its own',
    file: 'xks/hsm/parent/pin-env.ts',
    find: '  for (const name of values.keys()) delete process.env[name];\n',
    replace: '',
    tests: ['test/integration/hsm-pin-isolation.test.ts'],
  },
  {
    name: 'refusals-logged-one-by-one',
    claim: 'Logs: refusals are rate-limited per source',
    file: 'appliance/service.ts',
    find: 'if (refusals.admit(`${reason}|${source}`, { reason, source }))',
    replace: 'if (refusals.admit(`${reason}|${source}`, { reason, source }) || true)',
    tests: ['test/e2e/security.test.ts'],
  },
];
