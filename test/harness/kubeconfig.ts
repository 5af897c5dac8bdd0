// Kubeconfig files for the harness's users. JSON is valid YAML, so kubectl, client-go and
// @kubernetes/client-node all read what we write.

import { writeFile } from 'node:fs/promises';
import type { CertKeyPair } from './pki.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Builds a single-context kubeconfig for `server`, trusting `caPem`, authenticating with a client cert. */
export function buildKubeconfig(opts: {
  readonly server: string;
  readonly caPem: string;
  readonly user: string;
  readonly client: CertKeyPair;
  readonly name?: string;
}): string {
  const name = opts.name ?? 'gmt-test';
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } }],
    users: [
      {
        name: opts.user,
        user: {
          'client-certificate-data': b64(opts.client.certPem),
          'client-key-data': b64(opts.client.keyPem),
        },
      },
    ],
    contexts: [{ name, context: { cluster: name, user: opts.user, namespace: 'default' } }],
    'current-context': name,
    preferences: {},
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Writes a kubeconfig readable only by its owner (it holds a private key). */
export async function writeKubeconfig(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
}
