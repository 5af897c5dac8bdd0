// Per-job NATS identities, the pure parts: what each identity may do (contract/nats-identity.ts),
// the JWTs' contents (decoded with @nats-io/jwt), the registry's one-live-attempt-per-job rule, and
// the operator's builders (the creds Secret, and pods that mount only their attempt's Secret).
import test from 'ava';
import { decode, type Account, type User } from '@nats-io/jwt';
import {
  AttemptRegistry,
  attemptInboxPrefix,
  attemptPermissions,
  attemptRole,
  authorityPublic,
  checkClaimsUpdateReply,
  createNatsAuthority,
  mintProgressReader,
  mintSystemUser,
  parseAttemptRole,
  scopesOfAccountJwt,
} from '../../../contract/nats-identity.js';
import { progressSubject } from '../../../contract/progress.js';
import { API_VERSION, KIND, parseGmtFineTune, type GmtFineTune, type GmtFineTuneSpecInput } from '../../../operator/src/api/index.js';
import { WORKER_PATHS } from '../../../operator/src/api/index.js';
import { buildNatsCredsSecret, buildWorkerPod, NATS_CREDS_KEYS } from '../../../operator/src/controller/index.js';

function job(spec: Partial<GmtFineTuneSpecInput> = {}): GmtFineTune {
  const r = parseGmtFineTune({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'tiny', namespace: 'team-a', uid: '7D2431F1-aaaa-bbbb', generation: 1 },
    spec: { image: 'gmt:1', workers: 2, ...spec },
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}
const managed = { defaultNatsUrl: 'nats://nats.gmt:4222', metricsPort: 9400, managedNatsCredentials: true };

const credsJwt = (creds: string): string => /-----BEGIN NATS USER JWT-----\n(\S+)\n/.exec(creds)?.[1] ?? '';

test('nats identity - an attempt may use only its own subjects, its progress subject and its inboxes', (t) => {
  const cases: Array<[string, number, { pub: string[]; sub: string[] }]> = [
    [
      'team-a-tiny-7d2431f1',
      0,
      { pub: ['gmt.team-a-tiny-7d2431f1.0.>', 'gmt.team-a-tiny-7d2431f1.progress'], sub: ['gmt.team-a-tiny-7d2431f1.0.>', '_INBOX.team-a-tiny-7d2431f1.0.>'] },
    ],
    [
      'job.with*odd>chars',
      3,
      { pub: ['gmt.job_with_odd_chars.3.>', 'gmt.job_with_odd_chars.progress'], sub: ['gmt.job_with_odd_chars.3.>', '_INBOX.job_with_odd_chars.3.>'] },
    ],
  ];
  for (const [jobId, attempt, want] of cases) {
    t.deepEqual(attemptPermissions(jobId, attempt), want, jobId);
    t.true(want.sub.includes(`${attemptInboxPrefix(jobId, attempt)}.>`));
    t.deepEqual(parseAttemptRole(attemptRole(jobId, attempt)), { job: want.pub[0]!.split('.')[1], attempt });
  }
  t.is(progressSubject('a.b'), 'gmt.a_b.progress');
  t.is(parseAttemptRole('gmt-progress-reader'), undefined);
});

test('nats identity - users carry no permissions of their own: the scoped signing key in the account JWT does', async (t) => {
  const a = createNatsAuthority();
  const reg = new AttemptRegistry(a);
  const m = await reg.mint('job-1', 0);
  const user = decode<User>(credsJwt(m.creds));
  t.is(user.sub, m.user);
  t.is(user.iss, m.scope.key, "issued by the attempt's scoped signing key");
  t.is(user.nats.issuer_account, authorityPublic(a).jobsAccount);
  t.is(user.nats.pub, undefined);
  t.is(user.nats.sub, undefined);
  t.regex(m.creds, /-----BEGIN USER NKEY SEED-----\nSU[A-Z2-7]+\n/);
  const account = decode<Account>(await reg.accountJwt());
  t.is(account.iss, authorityPublic(a).operator);
  t.deepEqual(account.nats.default_permissions, { pub: { allow: [], deny: ['>'] }, sub: { allow: [], deny: ['>'] } });
  const scopes = scopesOfAccountJwt(await reg.accountJwt());
  const mine = scopes.find((s) => s.key === m.scope.key);
  t.is(mine?.role, attemptRole('job-1', 0));
  t.like(mine?.template, {
    pub: { allow: attemptPermissions('job-1', 0).pub, deny: [] },
    sub: { allow: attemptPermissions('job-1', 0).sub, deny: [] },
    allowed_connection_types: ['STANDARD'],
  });
  const reader = scopes.find((s) => s.role === 'gmt-progress-reader');
  t.like(reader?.template, { pub: { allow: [], deny: ['>'] }, sub: { allow: ['gmt.*.progress', '_INBOX.gmt-operator.>'] } });
});

test('nats identity - registry: one live attempt per job; minting the next revokes the previous; restore from the account JWT', async (t) => {
  const a = createNatsAuthority();
  const reg = new AttemptRegistry(a);
  const a0 = await reg.mint('job-1', 0);
  await reg.mint('job-2', 0);
  const a1 = await reg.mint('job-1', 1);
  const keys = (jwt: string): string[] =>
    scopesOfAccountJwt(jwt)
      .map((s) => s.role)
      .sort();
  const jwt = await reg.accountJwt();
  t.deepEqual(keys(jwt), [attemptRole('job-1', 1), attemptRole('job-2', 0), 'gmt-progress-reader'].sort());
  t.false(
    scopesOfAccountJwt(jwt).some((s) => s.key === a0.scope.key),
    "attempt 0's signing key is gone",
  );
  t.true(scopesOfAccountJwt(jwt).some((s) => s.key === a1.scope.key));
  const expiring = await reg.mint('job-3', 0, 2_000_000_000);
  t.is(decode<User>(credsJwt(expiring.creds)).exp, 2_000_000_000, 'an expiry when asked for (jobs with activeDeadlineSeconds)');
  t.is(decode<User>(credsJwt(a1.creds)).exp, undefined);
  t.true(reg.revoke('job-3'));
  t.true(reg.revoke('job-2'));
  t.false(reg.revoke('job-2'));
  const restored = new AttemptRegistry(a);
  restored.restore(scopesOfAccountJwt(await reg.accountJwt()));
  t.is(restored.liveAttempt('job-1'), 1);
  t.is(restored.liveAttempt('job-2'), undefined);
  t.deepEqual(keys(await restored.accountJwt()), keys(await reg.accountJwt()));
});

test("nats identity - the operator's users: system user may only push claims; reader only reads progress", async (t) => {
  const a = createNatsAuthority();
  const sys = decode<User>(credsJwt((await mintSystemUser(a)).creds));
  t.is(sys.iss, authorityPublic(a).systemAccount);
  t.deepEqual(sys.nats.pub, { allow: ['$SYS.REQ.CLAIMS.UPDATE'], deny: [] });
  t.deepEqual(sys.nats.sub, { allow: ['_INBOX.gmt-operator.>'], deny: [] });
  const reader = decode<User>(credsJwt((await mintProgressReader(a)).creds));
  t.is(reader.iss, authorityPublic({ ...a, jobsAccountSeed: a.progressSignerSeed }).jobsAccount, 'issued by the progress signing key');
});

test('nats identity - claims update replies: accepted, refused, garbage', (t) => {
  t.notThrows(() => checkClaimsUpdateReply('{"data":{"account":"A","code":200,"message":"jwt updated"}}'));
  t.throws(() => checkClaimsUpdateReply('{"error":{"account":"A","code":500,"description":"jwt validation failed"}}'), {
    message: /refused \(500\): jwt validation failed/,
  });
  t.throws(() => checkClaimsUpdateReply('not json'), { message: /not JSON/ });
  t.throws(() => checkClaimsUpdateReply('{"data":{"code":202}}'), { message: /unexpected reply/ });
});

test('children - managed NATS credentials: a Secret per attempt owned by the job; pods mount only theirs', (t) => {
  const j = job();
  const s = buildNatsCredsSecret(j, 2, 'CREDS', 'CA');
  t.is(s.metadata.name, 'tiny-nats-a2');
  t.is(s.metadata.namespace, 'team-a');
  t.like(s.metadata.ownerReferences?.[0], { kind: 'GmtFineTune', name: 'tiny', controller: true });
  t.like(s.metadata.labels, { 'gmt.dev/job': 'tiny', 'gmt.dev/role': 'nats-credentials', 'gmt.dev/attempt': '2' });
  t.deepEqual(s.data, { [NATS_CREDS_KEYS.creds]: Buffer.from('CREDS').toString('base64'), [NATS_CREDS_KEYS.ca]: Buffer.from('CA').toString('base64') });

  const p = buildWorkerPod(j, 1, 2, managed);
  t.deepEqual(
    p.spec?.volumes?.find((v) => v.name === 'nats-creds'),
    { name: 'nats-creds', secret: { secretName: 'tiny-nats-a2', defaultMode: 0o440, items: [{ key: 'nats.creds', path: 'nats.creds' }] } },
  );
  const env = Object.fromEntries((p.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  t.is(env['NATS_CREDS'], `${WORKER_PATHS.natsCredsDir}/nats.creds`);
  t.is(env['NODE_EXTRA_CA_CERTS'], undefined);
  const tls = buildWorkerPod(j, 0, 2, { ...managed, natsCa: true });
  t.deepEqual(
    tls.spec?.volumes?.find((v) => v.name === 'nats-creds')?.secret?.items?.map((i) => i.key),
    ['nats.creds', 'ca.crt'],
  );
  t.true(tls.spec?.containers[0]?.env?.some((e) => e.name === 'NODE_EXTRA_CA_CERTS' && e.value === `${WORKER_PATHS.natsCredsDir}/ca.crt`));
  // A job with its own NATS URL or credentials keeps them; no managed identity.
  const own = buildWorkerPod(job({ nats: { url: 'nats://elsewhere:4222' } }), 0, 2, managed);
  t.false(own.spec?.volumes?.some((v) => v.name === 'nats-creds'));
  const ownCreds = buildWorkerPod(job({ nats: { credentialsSecret: { name: 'mine', key: 'k.creds' } } }), 0, 2, managed);
  t.is(ownCreds.spec?.volumes?.find((v) => v.name === 'nats-creds')?.secret?.secretName, 'mine');
});
