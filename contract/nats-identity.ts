/**
 * Per-job NATS identities with NATS's own decentralized JWT auth (docs/security.md): the
 * keys come from `@nats-io/nkeys`, every JWT is signed with `@nats-io/jwt`; nothing here builds a
 * wire format by hand.
 *
 * Trust chain (nats-server "operator mode"):
 *   operator key (O…) ─ signs ─► system account (A…, for the server's $SYS traffic)
 *                      └ signs ─► jobs account  (A…) ─ scoped signing key per job attempt ─► user (U…)
 *
 * A job attempt's users are issued by a *scoped* signing key whose role names the attempt and whose
 * template carries the permissions; the server enforces the template, not the user JWT
 * (nats-server accounts.go: a scoped user must carry no permissions of its own). The account JWT's
 * list of signing keys is therefore the list of live attempts: removing an attempt's key makes the
 * server close that attempt's connections at once and refuse it from then on (accounts.go
 * updateAccountClaimsWithRefresh: "signing keys changed … closeConnection(AuthenticationViolation)").
 * The updated account JWT reaches the server through its full resolver on `$SYS.REQ.CLAIMS.UPDATE`.
 */
import { decode, encodeAccount, encodeOperator, encodeUser, fmtCreds, newScopedSigner, type SigningKey, type UserPermissionsLimits } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { PROGRESS_SUBJECT, SUBJECT_ROOT, progressSubject, subjectToken } from './progress.js';

/** Role prefix of an attempt's scoped signing key: `gmt-attempt:<jobToken>:<attempt>`. */
export const ATTEMPT_ROLE_PREFIX = 'gmt-attempt:';
/** Role of the scoped signing key that issues the operator's progress reader. */
export const PROGRESS_READER_ROLE = 'gmt-progress-reader';
/** Name of the jobs account in its JWT. */
export const JOBS_ACCOUNT_NAME = 'GMT';
/** Name of the system account in its JWT. */
export const SYSTEM_ACCOUNT_NAME = 'SYS';
/** Subject the full resolver takes account JWT updates on (nats-server events.go accClaimsReqSubj). */
export const CLAIMS_UPDATE_SUBJECT = '$SYS.REQ.CLAIMS.UPDATE';

/** `gmt.<job>.<attempt>`: the prefix of every collective subject of one attempt. */
export function attemptPrefix(jobId: string, attempt: number): string {
  return `${SUBJECT_ROOT}.${subjectToken(jobId)}.${attempt}`;
}

/**
 * Reply-inbox prefix of an attempt's connections (the client's `inboxPrefix` option), so that its
 * permissions can name its own inboxes instead of every `_INBOX.>`.
 */
export function attemptInboxPrefix(jobId: string, attempt: number): string {
  return `_INBOX.${subjectToken(jobId)}.${attempt}`;
}

/** Inbox prefix of the operator's connections. */
export const OPERATOR_INBOX_PREFIX = '_INBOX.gmt-operator';

/** What one job attempt's identity may do: its own collective subjects, its progress, its inboxes. */
export function attemptPermissions(jobId: string, attempt: number): { pub: string[]; sub: string[] } {
  const own = `${attemptPrefix(jobId, attempt)}.>`;
  const inbox = `${attemptInboxPrefix(jobId, attempt)}.>`;
  return { pub: [own, progressSubject(jobId)], sub: [own, inbox] };
}

/** The role string of an attempt's scoped signing key. */
export function attemptRole(jobId: string, attempt: number): string {
  return `${ATTEMPT_ROLE_PREFIX}${subjectToken(jobId)}:${attempt}`;
}

function scopeTemplate(perms: { pub: string[]; sub: string[] }, denyPub = false): Partial<UserPermissionsLimits> {
  return {
    pub: { allow: denyPub ? [] : perms.pub, deny: denyPub ? ['>'] : [] },
    sub: { allow: perms.sub, deny: [] },
    // Plain client connections only: no leaf nodes, websockets or MQTT under these identities.
    allowed_connection_types: ['STANDARD'],
  };
}

/** A scoped signing key as it sits in the account JWT (public part only). */
export interface ScopedKey {
  readonly key: string;
  readonly role: string;
  readonly template: Partial<UserPermissionsLimits>;
}

/** The scoped signing key entry of an attempt (public key `signingKey`). */
export function attemptScope(signingKey: string, jobId: string, attempt: number): ScopedKey {
  const s = newScopedSigner(signingKey, attemptRole(jobId, attempt), scopeTemplate(attemptPermissions(jobId, attempt)));
  return { key: s.key, role: s.role, template: s.template };
}

/** The scoped signing key entry of the operator's progress reader: subscribe to progress, publish nothing. */
export function progressReaderScope(signingKey: string): ScopedKey {
  const s = newScopedSigner(signingKey, PROGRESS_READER_ROLE, scopeTemplate({ pub: [], sub: [PROGRESS_SUBJECT, `${OPERATOR_INBOX_PREFIX}.>`] }, true));
  return { key: s.key, role: s.role, template: s.template };
}

/**
 * The long-lived keys of one installation. Seeds are secrets (they start with "SO", "SA", "SU"):
 * kept in a Secret only the gmt-operator mounts, never logged.
 */
export interface NatsAuthority {
  /** Operator seed (SO…): signs account JWTs. */
  readonly operatorSeed: string;
  /** System account seed (SA…): signs the operator's system user. */
  readonly systemAccountSeed: string;
  /** Jobs account seed (SA…): the account every job connects to. */
  readonly jobsAccountSeed: string;
  /** Seed of the scoped signing key that issues the progress reader (SA…). */
  readonly progressSignerSeed: string;
}

/** Schema of a NatsAuthority (as stored in a Secret). */
export const NatsAuthoritySchema = z.strictObject({
  operatorSeed: z.string().startsWith('SO'),
  systemAccountSeed: z.string().startsWith('SA'),
  jobsAccountSeed: z.string().startsWith('SA'),
  progressSignerSeed: z.string().startsWith('SA'),
});

const te = new TextEncoder();
const td = new TextDecoder();

function seedOf(kp: KeyPair): string {
  return td.decode(kp.getSeed());
}

function pair(seed: string): KeyPair {
  return fromSeed(te.encode(seed));
}

/** Fresh random keys for a new installation (nkeys uses the platform's CSPRNG). */
export function createNatsAuthority(): NatsAuthority {
  return {
    operatorSeed: seedOf(createOperator()),
    systemAccountSeed: seedOf(createAccount()),
    jobsAccountSeed: seedOf(createAccount()),
    progressSignerSeed: seedOf(createAccount()),
  };
}

/** Public keys of an authority (safe to log and to put in the server config). */
export interface NatsAuthorityPublic {
  readonly operator: string;
  readonly systemAccount: string;
  readonly jobsAccount: string;
  readonly progressSigner: string;
}

/** The public keys of `a`. */
export function authorityPublic(a: NatsAuthority): NatsAuthorityPublic {
  return {
    operator: pair(a.operatorSeed).getPublicKey(),
    systemAccount: pair(a.systemAccountSeed).getPublicKey(),
    jobsAccount: pair(a.jobsAccountSeed).getPublicKey(),
    progressSigner: pair(a.progressSignerSeed).getPublicKey(),
  };
}

/** Unlimited account limits (the JWT leaves absent limits at zero: no connections at all). */
const OPEN_ACCOUNT_LIMITS = { conn: -1, leaf: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true };
/** Default permissions of users with no scope and no permissions of their own: nothing. */
const DENY_ALL = { pub: { allow: [], deny: ['>'] }, sub: { allow: [], deny: ['>'] } };

/** The operator JWT (self-signed; names the system account). */
export function encodeOperatorJwt(a: NatsAuthority): Promise<string> {
  return encodeOperator('gmt', pair(a.operatorSeed), { system_account: authorityPublic(a).systemAccount });
}

/** The system account JWT (issued by the operator). */
export function encodeSystemAccountJwt(a: NatsAuthority): Promise<string> {
  return encodeAccount(SYSTEM_ACCOUNT_NAME, pair(a.systemAccountSeed).getPublicKey(), { limits: OPEN_ACCOUNT_LIMITS }, { signer: pair(a.operatorSeed) });
}

/**
 * The jobs account JWT with exactly `attempts` (plus the progress reader) as scoped signing keys.
 * The server keeps the newest by issue time; a JWT issued in the same second replaces it too.
 */
export function encodeJobsAccountJwt(a: NatsAuthority, attempts: readonly ScopedKey[]): Promise<string> {
  const p = authorityPublic(a);
  const signingKeys: SigningKey[] = [progressReaderScope(p.progressSigner), ...attempts].map((s) => ({
    key: s.key,
    role: s.role,
    kind: 'user_scope',
    template: s.template,
  }));
  return encodeAccount(
    JOBS_ACCOUNT_NAME,
    p.jobsAccount,
    { limits: OPEN_ACCOUNT_LIMITS, default_permissions: DENY_ALL, signing_keys: signingKeys },
    { signer: pair(a.operatorSeed) },
  );
}

/** A user identity: its .creds file text (JWT + seed: secret) and its public keys. */
export interface MintedUser {
  /** The .creds file (decorated JWT + user seed). Secret. */
  readonly creds: string;
  /** The user's public key (U…). */
  readonly user: string;
}

/** A fresh attempt identity: the scoped signing key to add to the account and a user issued by it. */
export interface MintedAttempt extends MintedUser {
  /** The scoped signing key entry (public) for the jobs account JWT. */
  readonly scope: ScopedKey;
}

async function mintScopedUser(name: string, accountPublic: string, signer: KeyPair, expiresAt?: number): Promise<MintedUser> {
  const ukp = createUser();
  const jwt = await encodeUser(name, ukp, accountPublic, {}, { signer, scopedUser: true, ...(expiresAt !== undefined ? { exp: expiresAt } : {}) });
  return { creds: td.decode(fmtCreds(jwt, ukp)), user: ukp.getPublicKey() };
}

/**
 * A new identity for (jobId, attempt): a fresh scoped signing key (its seed is used once, here, and
 * dropped) and one user issued by it, shared by the attempt's ranks. `expiresAt` (unix seconds)
 * bounds the user's life in addition to revocation.
 */
export async function mintAttempt(a: NatsAuthority, jobId: string, attempt: number, expiresAt?: number): Promise<MintedAttempt> {
  const signer = createAccount();
  const p = authorityPublic(a);
  const u = await mintScopedUser(`${subjectToken(jobId)}-a${attempt}`, p.jobsAccount, signer, expiresAt);
  return { ...u, scope: attemptScope(signer.getPublicKey(), jobId, attempt) };
}

/** The operator's progress reader (jobs account; may only subscribe to `gmt.*.progress`). */
export function mintProgressReader(a: NatsAuthority): Promise<MintedUser> {
  return mintScopedUser('gmt-operator-progress', authorityPublic(a).jobsAccount, pair(a.progressSignerSeed));
}

/** The operator's system-account user: may only publish account JWT updates and read its replies. */
export async function mintSystemUser(a: NatsAuthority): Promise<MintedUser> {
  const ukp = createUser();
  const jwt = await encodeUser('gmt-operator-system', ukp, pair(a.systemAccountSeed), {
    pub: { allow: [CLAIMS_UPDATE_SUBJECT], deny: [] },
    sub: { allow: [`${OPERATOR_INBOX_PREFIX}.>`], deny: [] },
    allowed_connection_types: ['STANDARD'],
  });
  return { creds: td.decode(fmtCreds(jwt, ukp)), user: ukp.getPublicKey() };
}

/** Options of natsServerAuthConfig. */
export interface ServerAuthConfigOptions {
  readonly operatorJwt: string;
  readonly systemAccount: string;
  readonly systemAccountJwt: string;
  readonly jobsAccount: string;
  readonly jobsAccountJwt: string;
  /** Directory of the full resolver's JWT store (must be writable by the server). */
  readonly resolverDir: string;
}

/**
 * The nats-server config fragment of operator mode with a full resolver: it stores account JWT
 * updates pushed on $SYS.REQ.CLAIMS.UPDATE and starts from the preloaded ones (a stored JWT newer
 * than a preload wins). Contains only public material (JWTs, public keys).
 */
export function natsServerAuthConfig(o: ServerAuthConfigOptions): string {
  return [
    `operator: ${o.operatorJwt}`,
    `system_account: ${o.systemAccount}`,
    'resolver: {',
    '  type: full',
    `  dir: ${JSON.stringify(o.resolverDir)}`,
    '  allow_delete: false',
    '  interval: "2m"',
    '}',
    'resolver_preload: {',
    `  ${o.systemAccount}: ${o.systemAccountJwt}`,
    `  ${o.jobsAccount}: ${o.jobsAccountJwt}`,
    '}',
    '',
  ].join('\n');
}

/** The server's answer to an account JWT update (nats-server events.go respondToUpdate). */
const ClaimsUpdateReplySchema = z.object({
  data: z.object({ account: z.string().optional(), code: z.number(), message: z.string().optional() }).optional(),
  error: z.object({ account: z.string().optional(), code: z.number(), description: z.string().optional() }).optional(),
});

/** Raised when the server refuses an account JWT update. */
export class ClaimsUpdateError extends Error {
  override readonly name: string = 'ClaimsUpdateError';
}

/** Parses the server's reply to a claims update; throws ClaimsUpdateError unless it says "jwt updated". */
export function checkClaimsUpdateReply(text: string): void {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ClaimsUpdateError(`claims update: reply is not JSON: ${text.slice(0, 200)}`, { cause: e });
  }
  const r = ClaimsUpdateReplySchema.safeParse(raw);
  if (!r.success) throw new ClaimsUpdateError(`claims update: unexpected reply ${text.slice(0, 200)}`);
  if (r.data.error !== undefined) throw new ClaimsUpdateError(`claims update refused (${r.data.error.code}): ${r.data.error.description ?? ''}`);
  if (r.data.data?.code !== 200) throw new ClaimsUpdateError(`claims update: unexpected reply ${text.slice(0, 200)}`);
}

/** Pushes an account JWT to the server's resolver over a system-account connection and checks the reply. */
export async function pushAccountJwt(nc: NatsConnection, accountJwt: string, timeoutMs = 5000): Promise<void> {
  const reply = await nc.request(CLAIMS_UPDATE_SUBJECT, accountJwt, { timeout: timeoutMs });
  checkClaimsUpdateReply(reply.string());
}

/** Parses an attempt role back into (job token, attempt); undefined for other roles. */
export function parseAttemptRole(role: string): { readonly job: string; readonly attempt: number } | undefined {
  const m = /^gmt-attempt:([A-Za-z0-9_-]+):(\d+)$/.exec(role);
  return m === null ? undefined : { job: m[1]!, attempt: Number(m[2]) };
}

/**
 * The live attempts of an installation: at most one per job (minting attempt k of a job removes the
 * job's older attempts), each a scoped signing key of the jobs account. The account JWT built from
 * it is what the server must hold; push it after every change.
 */
export class AttemptRegistry {
  readonly #authority: NatsAuthority;
  /** job token → its live attempt's scope. */
  readonly #live = new Map<string, { readonly attempt: number; readonly scope: ScopedKey }>();

  constructor(authority: NatsAuthority) {
    this.#authority = authority;
  }

  /** Restores the live attempts from an account JWT's scoped signing keys (after a restart). */
  restore(scopes: readonly ScopedKey[]): void {
    for (const s of scopes) {
      const r = parseAttemptRole(s.role);
      if (r !== undefined) this.#live.set(r.job, { attempt: r.attempt, scope: s });
    }
  }

  /** The live attempt of `jobId`, if any. */
  liveAttempt(jobId: string): number | undefined {
    return this.#live.get(subjectToken(jobId))?.attempt;
  }

  /** Job tokens with a live attempt. */
  jobs(): string[] {
    return [...this.#live.keys()];
  }

  /** A new identity for (jobId, attempt); the job's previous attempt, if any, is revoked with it. */
  async mint(jobId: string, attempt: number, expiresAt?: number): Promise<MintedAttempt> {
    const m = await mintAttempt(this.#authority, jobId, attempt, expiresAt);
    this.#live.set(subjectToken(jobId), { attempt, scope: m.scope });
    return m;
  }

  /** Revokes every identity of `jobId` (the job is gone); returns whether anything changed. */
  revoke(jobId: string): boolean {
    return this.#live.delete(subjectToken(jobId));
  }

  /** The jobs account JWT for the current set of live attempts. */
  accountJwt(): Promise<string> {
    return encodeJobsAccountJwt(
      this.#authority,
      [...this.#live.values()].map((v) => v.scope),
    );
  }
}

const ScopedKeySchema = z.object({ key: z.string(), role: z.string(), kind: z.literal('user_scope'), template: z.record(z.string(), z.unknown()) });
const AccountClaimsSchema = z.object({ sub: z.string(), nats: z.object({ signing_keys: z.array(z.union([z.string(), ScopedKeySchema])).optional() }) });

/** The scoped signing keys of an account JWT (decoded with @nats-io/jwt; not verified: pass only JWTs we signed). */
export function scopesOfAccountJwt(accountJwt: string): ScopedKey[] {
  const claims = AccountClaimsSchema.parse(decode(accountJwt));
  return (claims.nats.signing_keys ?? []).filter((k) => typeof k !== 'string').map((k) => ({ key: k.key, role: k.role, template: k.template }));
}
