// The file the AWS KMS console accepts for "Upload configuration file" (spec S11): exact key
// capitalization, valid JSON (the spec's own example lacks a brace), written 0600.
import { writeFileAtomic } from './certs/atomic-write.js';
import type { Credential } from './config/schema.js';

export function kmsProxyConfig(uriPath: string, credential: Credential): string {
  return (
    JSON.stringify(
      {
        XksProxyUriPath: uriPath,
        XksProxyAuthenticationCredential: { AccessKeyId: credential.accessKeyId, RawSecretAccessKey: credential.secretAccessKey },
      },
      null,
      2,
    ) + '\n'
  );
}

export function writeKmsProxyConfig(file: string, uriPath: string, credential: Credential): void {
  writeFileAtomic(file, kmsProxyConfig(uriPath, credential), 0o600);
}
