/**
 * Per-job-attempt NATS identities on the in-cluster NATS (docs/security.md; the mechanism is in
 * contract/nats-identity.ts). The operator:
 * - keeps the installation's keys in one Secret of its own namespace (created on first start, read
 *   afterwards; never logged), and the server's auth config (public JWTs only) in another Secret
 *   that the NATS pod mounts;
 * - mints, for each attempt of each job, a user .creds in a Secret owned by the GmtFineTune
 *   (`<name>-nats-a<attempt>`, garbage-collected with it) that only that attempt's pods mount;
 * - revokes an attempt when the next one is minted, and all of a job's identities when the job is
 *   deleted or finished, by pushing the jobs account JWT to the server's resolver at once.
 * Every change is serialised; a push that fails is retried by the next call (fail closed: a
 * reconcile that cannot push throws, and no pod of a new attempt is created before its push).
 */
import { ApiException, type CoreV1Api, type KubernetesObjectApi, type V1Secret } from '@kubernetes/client-node';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import {
  AttemptRegistry,
  NatsAuthoritySchema,
  OPERATOR_INBOX_PREFIX,
  authorityPublic,
  createNatsAuthority,
  encodeOperatorJwt,
  encodeSystemAccountJwt,
  mintProgressReader,
  mintSystemUser,
  natsServerAuthConfig,
  pushAccountJwt,
  scopesOfAccountJwt,
  type NatsAuthority,
} from '../../../contract/nats-identity.js';
import { subjectToken } from '../../../contract/progress.js';
import { FIELD_MANAGER, type GmtFineTune } from '../api/index.js';
import { applyServerSide, deleteIfExists } from '../runtime/index.js';
import { buildNatsCredsSecret } from './children.js';
import { computeJobId, natsCredsSecretName } from './names.js';

/** Keys of the operator's keys Secret. */
export const KEYS_SECRET_KEYS = {
  authority: 'authority.json',
  systemUser: 'system-user.creds',
  progressReader: 'progress-reader.creds',
} as const;

/** Keys of the server's auth Secret (mounted by the NATS pod; public material only). */
export const SERVER_SECRET_KEYS = {
  /** Included by nats-server.conf. */
  authConfig: 'auth.conf',
  /** The jobs account JWT the operator last wrote (its scoped keys are the live attempts). */
  jobsAccountJwt: 'jobs-account.jwt',
} as const;

/** Slack after a job's activeDeadlineSeconds before its identity expires (the final checkpoint). */
export const EXPIRY_MARGIN_SECONDS = 600;

/** Where the chart's NATS pod keeps its full resolver's JWT store. */
export const NATS_RESOLVER_DIR = '/data/jwt';

/** Options of NatsIdentities.open. */
export interface NatsIdentitiesOptions {
  readonly core: CoreV1Api;
  readonly objects: KubernetesObjectApi;
  /** Namespace of the two Secrets below (the operator's own). */
  readonly namespace: string;
  /** Secret holding the installation's keys (created when missing). */
  readonly keysSecret: string;
  /** Secret holding the server's auth config (written by the operator, mounted by NATS). */
  readonly serverSecret: string;
  /** NATS URL of the server the identities are for. */
  readonly natsUrl: string;
  /** PEM of the CA that signed the NATS server certificate, copied next to each job's creds. */
  readonly caPem?: string;
  /** The server's resolver folder written into its auth config (default NATS_RESOLVER_DIR). */
  readonly resolverDir?: string;
  /** Wall clock in ms (default Date.now), for user JWT expiry. */
  readonly now?: () => number;
  readonly log?: (level: 'info' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string | undefined => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

async function readSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw e;
  }
}

/** Raised when the keys Secret exists but cannot be used. */
export class NatsIdentityError extends Error {
  override readonly name: string = 'NatsIdentityError';
}

/** See the file comment. */
export class NatsIdentities {
  readonly #o: NatsIdentitiesOptions;
  readonly #registry: AttemptRegistry;
  readonly #authority: NatsAuthority;
  readonly #systemCreds: Uint8Array;
  /** The progress reader's .creds (jobs account; may only subscribe to progress subjects). */
  readonly progressReaderCreds: Uint8Array;
  #admin: NatsConnection | undefined;
  /** Registry changes made, and the count the server last acknowledged. */
  #version = 0;
  #pushedVersion = -1;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #loop: Promise<void> | undefined;

  private constructor(o: NatsIdentitiesOptions, authority: NatsAuthority, systemCreds: string, readerCreds: string) {
    this.#o = o;
    this.#authority = authority;
    this.#registry = new AttemptRegistry(authority);
    this.#systemCreds = new TextEncoder().encode(systemCreds);
    this.progressReaderCreds = new TextEncoder().encode(readerCreds);
  }

  /** Loads the keys, or creates them on the first start of an installation (every replica may call this). */
  static async open(o: NatsIdentitiesOptions): Promise<NatsIdentities> {
    const { authority, systemCreds, readerCreds } = await ensureKeys(o);
    return new NatsIdentities(o, authority, systemCreds, readerCreds);
  }

  /**
   * Takes charge (the leader only, before it reconciles): restores the live attempts from the server
   * Secret, rewrites it, and starts the admin connection that keeps the server up to date.
   */
  async activate(): Promise<void> {
    if (this.#loop !== undefined) return;
    const server = await readSecret(this.#o.core, this.#o.namespace, this.#o.serverSecret);
    const jwt = unb64(server?.data?.[SERVER_SECRET_KEYS.jobsAccountJwt]);
    if (jwt !== undefined && jwt !== '') this.#registry.restore(scopesOfAccountJwt(jwt));
    await this.#writeServerSecret();
    this.#loop = this.#adminLoop();
    const p = authorityPublic(this.#authority);
    this.#o.log?.('info', 'NATS identities active', { operatorKey: p.operator, jobsAccount: p.jobsAccount, liveJobs: this.#registry.jobs().length });
  }

  /** Serialises changes to the registry, the server Secret and the server. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Makes sure attempt `attempt` of `job` has its identity: minted (revoking the previous attempt),
   * its creds Secret applied, and the account JWT on the server. Idempotent.
   */
  ensureAttempt(job: GmtFineTune, attempt: number): Promise<void> {
    return this.#serial(async () => {
      const jobId = computeJobId(job);
      if (this.#registry.liveAttempt(jobId) !== attempt) {
        const previous = this.#registry.liveAttempt(jobId);
        const m = await this.#registry.mint(jobId, attempt, this.#expiry(job));
        this.#version++;
        // Secret first: if anything below fails, the next reconcile mints again and overwrites it.
        await applyServerSide(this.#o.objects, buildNatsCredsSecret(job, attempt, m.creds, this.#o.caPem), FIELD_MANAGER);
        await this.#writeServerSecret();
        this.#o.log?.('info', 'minted NATS identity', { job: jobId, attempt, user: m.user, revokedAttempt: previous ?? null });
        if (previous !== undefined && previous !== attempt) {
          await deleteIfExists(this.#o.objects, {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: natsCredsSecretName(job.metadata.name, previous), namespace: job.metadata.namespace ?? 'default' },
          });
        }
      }
      await this.#push();
    });
  }

  /**
   * A user JWT expiry in addition to revocation, when the job has a deadline: no attempt can run
   * past `activeDeadlineSeconds` from now, plus a margin for the final checkpoint.
   */
  #expiry(job: GmtFineTune): number | undefined {
    const deadline = job.spec.runPolicy.activeDeadlineSeconds;
    if (deadline === undefined) return undefined;
    return Math.floor((this.#o.now ?? Date.now)() / 1000) + deadline + EXPIRY_MARGIN_SECONDS;
  }

  /** Revokes every identity of `jobId` (deleted or finished job) at once. */
  revokeJob(jobId: string): Promise<void> {
    return this.#serial(async () => {
      if (this.#registry.revoke(jobId)) {
        this.#version++;
        await this.#writeServerSecret();
        this.#o.log?.('info', 'revoked NATS identities', { job: jobId });
      }
      await this.#pushOrDefer();
    });
  }

  /** Revokes the identities of every job not in `liveJobIds` (jobs deleted while no operator ran). */
  sweep(liveJobIds: ReadonlySet<string>): Promise<void> {
    return this.#serial(async () => {
      const live = new Set([...liveJobIds].map(subjectToken));
      let changed = false;
      for (const job of this.#registry.jobs()) if (!live.has(job)) changed = this.#registry.revoke(job) || changed;
      if (changed) {
        this.#version++;
        await this.#writeServerSecret();
      }
      await this.#pushOrDefer();
    });
  }

  /** Stops the admin connection. */
  async close(): Promise<void> {
    this.#closed = true;
    const nc = this.#admin;
    this.#admin = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    await this.#loop;
  }

  async #writeServerSecret(): Promise<void> {
    const p = authorityPublic(this.#authority);
    const jobsJwt = await this.#registry.accountJwt();
    const authConfig = natsServerAuthConfig({
      operatorJwt: await encodeOperatorJwt(this.#authority),
      systemAccount: p.systemAccount,
      systemAccountJwt: await encodeSystemAccountJwt(this.#authority),
      jobsAccount: p.jobsAccount,
      jobsAccountJwt: jobsJwt,
      resolverDir: this.#o.resolverDir ?? NATS_RESOLVER_DIR,
    });
    await applyServerSide(
      this.#o.objects,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: this.#o.serverSecret,
          namespace: this.#o.namespace,
          labels: { 'app.kubernetes.io/managed-by': FIELD_MANAGER, 'app.kubernetes.io/component': 'nats' },
        },
        type: 'Opaque',
        data: { [SERVER_SECRET_KEYS.authConfig]: b64(authConfig), [SERVER_SECRET_KEYS.jobsAccountJwt]: b64(jobsJwt) },
      },
      FIELD_MANAGER,
    );
  }

  /** Pushes the current jobs account JWT unless the server already has it (or `force`); throws when it cannot. */
  async #push(force = false): Promise<void> {
    if (!force && this.#pushedVersion === this.#version) return;
    const version = this.#version;
    const jwt = await this.#registry.accountJwt();
    const nc = this.#admin;
    if (nc === undefined || nc.isClosed()) throw new NatsIdentityError(`NATS at ${this.#o.natsUrl} not connected: cannot update the jobs account`);
    await pushAccountJwt(nc, jwt);
    this.#pushedVersion = version;
  }

  /**
   * A push that only removes identities: when the server is unreachable, the change is kept in the
   * server Secret and pushed on reconnect (the admin loop forces a push), so nothing is retried here.
   */
  async #pushOrDefer(): Promise<void> {
    try {
      await this.#push();
    } catch (e) {
      if (!(e instanceof NatsIdentityError)) throw e;
      this.#o.log?.('error', 'revocation deferred until NATS is reachable', { error: e.message });
    }
  }

  /** The system-account connection: reconnects forever and re-pushes the account JWT after each (re)connect. */
  async #adminLoop(): Promise<void> {
    let delay = 500;
    while (!this.#closed) {
      try {
        const nc = await connect({
          servers: this.#o.natsUrl,
          name: 'gmt-operator-identities',
          inboxPrefix: OPERATOR_INBOX_PREFIX,
          authenticator: credsAuthenticator(this.#systemCreds),
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
        });
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may set it during the await above
        if (this.#closed) {
          await nc.close();
          return;
        }
        this.#admin = nc;
        delay = 500;
        // A restarted server starts from its preload and resolver store: give it our latest.
        await this.#serial(() => this.#push(true)).catch((e: unknown) => this.#o.log?.('error', 'pushing the jobs account failed', { error: String(e) }));
        for await (const s of nc.status()) {
          if (s.type === 'reconnect')
            await this.#serial(() => this.#push(true)).catch((e: unknown) => this.#o.log?.('error', 'pushing the jobs account failed', { error: String(e) }));
        }
        await nc.closed();
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may set it during the await above
        if (this.#closed) return;
        this.#o.log?.('error', 'NATS identities: cannot connect', {
          url: this.#o.natsUrl,
          error: err instanceof Error ? err.message : String(err),
          retryInMs: delay,
        });
      }
      this.#admin = undefined;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

/** Reads the keys Secret, or creates it with a fresh authority (a concurrent creator wins: read theirs). */
async function ensureKeys(o: NatsIdentitiesOptions): Promise<{ authority: NatsAuthority; systemCreds: string; readerCreds: string }> {
  const parse = (s: V1Secret): { authority: NatsAuthority; systemCreds: string; readerCreds: string } => {
    const raw = unb64(s.data?.[KEYS_SECRET_KEYS.authority]);
    const systemCreds = unb64(s.data?.[KEYS_SECRET_KEYS.systemUser]);
    const readerCreds = unb64(s.data?.[KEYS_SECRET_KEYS.progressReader]);
    if (raw === undefined || systemCreds === undefined || readerCreds === undefined)
      throw new NatsIdentityError(`Secret ${o.namespace}/${o.keysSecret}: missing one of ${Object.values(KEYS_SECRET_KEYS).join(', ')}`);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new NatsIdentityError(`Secret ${o.namespace}/${o.keysSecret}: ${KEYS_SECRET_KEYS.authority} is not JSON`);
    }
    const r = NatsAuthoritySchema.safeParse(json);
    // The message names the fields only: the values are secret.
    if (!r.success)
      throw new NatsIdentityError(
        `Secret ${o.namespace}/${o.keysSecret}: ${KEYS_SECRET_KEYS.authority} invalid at ${r.error.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    return { authority: r.data, systemCreds, readerCreds };
  };
  const existing = await readSecret(o.core, o.namespace, o.keysSecret);
  if (existing !== undefined) return parse(existing);
  const authority = createNatsAuthority();
  const systemCreds = (await mintSystemUser(authority)).creds;
  const readerCreds = (await mintProgressReader(authority)).creds;
  try {
    await o.core.createNamespacedSecret({
      namespace: o.namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: o.keysSecret,
          namespace: o.namespace,
          labels: { 'app.kubernetes.io/managed-by': FIELD_MANAGER, 'app.kubernetes.io/component': 'nats' },
        },
        type: 'Opaque',
        data: {
          [KEYS_SECRET_KEYS.authority]: b64(JSON.stringify(authority)),
          [KEYS_SECRET_KEYS.systemUser]: b64(systemCreds),
          [KEYS_SECRET_KEYS.progressReader]: b64(readerCreds),
        },
      },
    });
    o.log?.('info', 'created the NATS keys Secret', { secret: `${o.namespace}/${o.keysSecret}`, operatorKey: authorityPublic(authority).operator });
    return { authority, systemCreds, readerCreds };
  } catch (e) {
    if (e instanceof ApiException && e.code === 409) {
      const theirs = await readSecret(o.core, o.namespace, o.keysSecret);
      if (theirs !== undefined) return parse(theirs);
    }
    throw e;
  }
}
