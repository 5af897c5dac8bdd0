/**
 * An embedded nats-server in operator mode, set up as the Helm chart sets up the in-cluster one
 * (contract/nats-identity.ts, docs/security.md): a fresh authority per run, a full resolver, and
 * per-attempt identities minted on demand and revoked by pushing the jobs account JWT. Used by the
 * local launcher (`gmt-train --workers N`) and by the integration tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import {
  AttemptRegistry,
  OPERATOR_INBOX_PREFIX,
  authorityPublic,
  createNatsAuthority,
  encodeOperatorJwt,
  encodeSystemAccountJwt,
  mintProgressReader,
  mintSystemUser,
  natsServerAuthConfig,
  pushAccountJwt,
  type NatsAuthority,
} from '../../../../contract/nats-identity.js';
import { subjectToken } from '../../../../contract/progress.js';
import { freePort, natsServerConfig, startNatsServer, type NatsServerHandle } from './server.js';

/** Options of startSecureNatsServer. */
export interface SecureNatsServerOptions {
  /** Path of the nats-server binary. */
  readonly binary: string;
  /** Listen address (default 127.0.0.1: loopback only). */
  readonly host?: string;
  /** Monitoring port: `true` for a free one; omitted: none. */
  readonly httpPort?: true;
  /** Require TLS: the server's certificate and key (PEM), and the CA (PEM) this module's own connections trust. */
  readonly tls?: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
}

/** A running authenticated nats-server and the means to mint and revoke identities on it. */
export interface SecureNatsServer {
  readonly server: NatsServerHandle;
  readonly url: string;
  /** Public keys of this run's authority (loggable). */
  readonly publicKeys: ReturnType<typeof authorityPublic>;
  /**
   * Mints the identity of (jobId, attempt), revoking the job's previous attempt on the server, and
   * writes it as a 0600 .creds file; returns the file's path.
   */
  mintAttempt(jobId: string, attempt: number): Promise<string>;
  /** Revokes every identity of `jobId` on the server at once. */
  revokeJob(jobId: string): Promise<void>;
  /** Path of a .creds file that may only read progress subjects (the operator's reader identity). */
  readonly progressReaderCreds: string;
  /** Stops the server and removes every file it wrote (credentials included). */
  stop(): Promise<void>;
}

async function writeSecret(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
}

/** Starts an operator-mode nats-server with a fresh authority (see the file comment). */
export async function startSecureNatsServer(o: SecureNatsServerOptions): Promise<SecureNatsServer> {
  const authority: NatsAuthority = createNatsAuthority();
  const pub = authorityPublic(authority);
  const registry = new AttemptRegistry(authority);
  const dir = await mkdtemp(join(tmpdir(), 'gmt-nats-auth-'));
  let server: NatsServerHandle | undefined;
  let sys: NatsConnection | undefined;
  try {
    const host = o.host ?? '127.0.0.1';
    const port = await freePort(host);
    const httpPort = o.httpPort === true ? await freePort(host) : undefined;
    let tls: { certFile: string; keyFile: string } | undefined;
    if (o.tls !== undefined) {
      tls = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
      await writeFile(tls.certFile, o.tls.certPem);
      await writeSecret(tls.keyFile, o.tls.keyPem);
    }
    const config =
      natsServerConfig({ port, host, ...(httpPort !== undefined ? { httpPort } : {}), ...(tls !== undefined ? { tls } : {}) }) +
      natsServerAuthConfig({
        operatorJwt: await encodeOperatorJwt(authority),
        systemAccount: pub.systemAccount,
        systemAccountJwt: await encodeSystemAccountJwt(authority),
        jobsAccount: pub.jobsAccount,
        jobsAccountJwt: await registry.accountJwt(),
        resolverDir: join(dir, 'jwt'),
      });
    server = await startNatsServer({ binary: o.binary, host, port, ...(httpPort !== undefined ? { httpPort } : {}), config });
    const sysUser = await mintSystemUser(authority);
    sys = await connect({
      servers: server.url,
      name: 'gmt-identity-admin',
      inboxPrefix: OPERATOR_INBOX_PREFIX,
      authenticator: credsAuthenticator(new TextEncoder().encode(sysUser.creds)),
      ...(o.tls !== undefined ? { tls: { ca: o.tls.caPem } } : {}),
    });
    const reader = await mintProgressReader(authority);
    const readerPath = join(dir, 'progress-reader.creds');
    await writeSecret(readerPath, reader.creds);
    const srv = server;
    const admin = sys;
    return {
      server: srv,
      url: srv.url,
      publicKeys: pub,
      progressReaderCreds: readerPath,
      async mintAttempt(jobId, attempt) {
        const m = await registry.mint(jobId, attempt);
        const path = join(dir, `${subjectToken(jobId)}-a${attempt}.creds`);
        await writeSecret(path, m.creds);
        await pushAccountJwt(admin, await registry.accountJwt());
        return path;
      },
      async revokeJob(jobId) {
        if (registry.revoke(jobId)) await pushAccountJwt(admin, await registry.accountJwt());
      },
      async stop() {
        await admin.close().catch(() => undefined);
        await srv.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await sys?.close().catch(() => undefined);
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
