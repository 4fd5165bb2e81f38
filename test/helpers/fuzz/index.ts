// Seeded HTTP fuzzing of the XKS API. Every choice in a case (API, key, mutations, bytes) is a
// function of (run seed, case index) alone, so a case that breaks a rule is rebuilt from those two
// numbers. A case starts as a valid, signed request of one of the four APIs and is mutated at one
// or more layers, in wire order: JSON value -> body bytes -> request line -> signing ->
// Authorization -> tampering after signing -> headers -> framing -> raw bytes.
//
// Files: rng (the one PRNG) · target (what a run aims at) · bodies (valid requests) · draft (the
// request being built) · mutators/ (one file per layer) · case (the builder) · rules (what a reply
// must be) · runner (raw TLS connections) · tally (counts and problems). The wire form, the
// response parser and raw exchanges live in ../raw-http.ts; the signer in ../sign.ts.
export { buildCase } from './case.js';
export type { FuzzCase } from './draft.js';
export { mutatorsByLayer } from './mutators/index.js';
export { classifyReply } from './rules.js';
export { runCases, type Exchange, type Outcome } from './runner.js';
export { FuzzTally } from './tally.js';
export { demoTarget, type FuzzTarget } from './target.js';
