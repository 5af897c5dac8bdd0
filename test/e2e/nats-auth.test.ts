// Per-job NATS identities end to end (docs/security.md): the operator (in-process, on the host) on
// the e2e cluster (a real node) creates the installation's keys and the server's auth config in
// Secrets; a real nats-server starts from that config (as the chart's NATS pod does), on the host at
// the address pods reach; two jobs in two namespaces train at once with per-attempt credentials the
// operator minted. A client holding job A's credentials cannot read or write job B, a client without
// credentials cannot connect, a finished job's and a deleted job's credentials stop working at once,
// a gang restart (a trainer container SIGKILLed) revokes the dead attempt's, and no
// key material appears in the operator's logs, events, status, metrics or the pods' logs.
import test from 'ava';
import { singleChunkFrame } from '../helpers/frames.js';
import { join } from 'node:path';
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { GROUP, LABELS, PLURAL, VERSION, type GmtFineTune } from '../../operator/src/api/index.js';
import {
  KEYS_SECRET_KEYS,
  NATS_CREDS_KEYS,
  SERVER_SECRET_KEYS,
  computeJobId,
  natsCredsSecretName,
  podName,
  type Operator,
} from '../../operator/src/controller/index.js';
import { attemptSubjects, freePort, natsServerConfig, startNatsServer, type NatsServerHandle } from '../../trainer/src/collective/nats/index.js';
import { encodeDataFrame, jobHash } from '../../trainer/src/collective/nats/wire.js';
import { ensureBinary } from '../harness/binaries.js';
import { isApiError, waitFor } from '../harness/k8s-helpers.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'natsauth');
// eslint-disable-next-line @typescript-eslint/unbound-method -- the fixture's members are closures, not this-bound methods
const { cluster, api, tiny, create, waitForJob, events } = fx;

let nats: NatsServerHandle | undefined;
test.after.always(async () => {
  await nats?.stop();
});

const decode = (s: V1Secret, key: string): string => Buffer.from(s.data?.[key] ?? '', 'base64').toString('utf8');

async function readSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  return core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
    if (isApiError(e, 404)) return undefined;
    throw e;
  });
}

/** Connects with `creds` (or none); resolves the connection or the server's refusal message. */
async function tryConnect(url: string, creds: string | undefined): Promise<NatsConnection | string> {
  try {
    return await connect({
      servers: url,
      reconnect: false,
      ...(creds !== undefined ? { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) } : {}),
    });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** The server's answer to a connection with `creds`: its refusal message, or 'connected'. */
async function refusal(url: string, creds: string): Promise<string> {
  const r = await tryConnect(url, creds);
  if (typeof r === 'string') return r;
  await r.close();
  return 'connected';
}

/**
 * Strings that look like NATS key material: nkey seeds and NATS JWTs. A seed is exactly 58 base32
 * characters (SO/SA/SU + 56) standing alone; public keys (56 characters, O/A/U first) are logged on
 * purpose, and without the length and the boundaries the pattern matched the tail of one (a public
 * key with "SU" at its 5th character), a false alarm roughly once in a hundred runs.
 */
const SEED_RE = /(?<![A-Z2-7])S[OAU][A-Z2-7]{56}(?![A-Z2-7])/g;
const JWT_RE = /eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ\.[\w-]+\.[\w-]+/g;

test.serial('nats auth - jobs in two namespaces train at once with per-attempt identities that cannot see or touch each other', async (t) => {
  const { kc, hostAddress } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const sysNs = await fx.namespace('gmt-sys');
  // The job namespaces up front: the operator watches only this file's namespaces.
  const [nsA, nsB, nsC, nsD, nsF] = [
    await fx.namespace('team-a'),
    await fx.namespace('team-b'),
    await fx.namespace('team-c'),
    await fx.namespace('team-d'),
    await fx.namespace('team-f'),
  ];
  const watched = [nsA, nsB, nsC, nsD, nsF];
  const port = await freePort(hostAddress);
  const url = `nats://${hostAddress}:${port}`;
  const op: Operator = await fx.startOperator({
    namespaces: watched,
    natsUrl: url,
    natsAuth: { namespace: sysNs, keysSecret: 'gmt-nats', serverSecret: 'gmt-nats-server', resolverDir: join(fx.root, 'nats-jwt') },
  });
  const metricsOfFirst = (): Promise<string> => fetch(`${op.server!.url}/metrics`).then((r) => r.text());
  await op.waitForSync();

  // The server starts from the auth config the operator wrote (the chart's NATS pod mounts it).
  const serverSecret = await waitFor('server auth Secret', () => readSecret(core, sysNs, 'gmt-nats-server'));
  const authConf = decode(serverSecret, SERVER_SECRET_KEYS.authConfig);
  t.regex(authConf, /^operator: eyJ/m);
  t.notRegex(authConf, SEED_RE, 'the server config holds no seed');
  nats = await startNatsServer({
    binary: await ensureBinary('nats-server'),
    host: hostAddress,
    port,
    config: natsServerConfig({ port, host: hostAddress }) + authConf,
  });
  const keys = await readSecret(core, sysNs, 'gmt-nats');
  t.truthy(keys?.data?.[KEYS_SECRET_KEYS.authority]);

  const jobA = await create(nsA, tiny('job'));
  const jobB = await create(nsB, tiny('job'));
  const idB = computeJobId(jobB);

  // Each attempt's credentials: a Secret owned by the job, mounted only by that attempt's pods.
  const credsSecret = async (ns: string, job: GmtFineTune): Promise<V1Secret> =>
    waitFor(`${ns} creds Secret`, () => readSecret(core, ns, natsCredsSecretName(job.metadata.name, 0)));
  const [sa, sb] = [await credsSecret(nsA, jobA), await credsSecret(nsB, jobB)];
  t.is(sa.metadata?.ownerReferences?.[0]?.uid, jobA.metadata.uid);
  t.is(sa.metadata?.ownerReferences?.[0]?.kind, 'GmtFineTune');
  const credsA = decode(sa, NATS_CREDS_KEYS.creds);
  const credsB = decode(sb, NATS_CREDS_KEYS.creds);
  t.not(credsA, credsB);
  const pods = await waitFor('pods of B', async () => {
    const l = await core.listNamespacedPod({ namespace: nsB, labelSelector: `${LABELS.job}=job` });
    return l.items.length === 2 ? l.items : undefined;
  });
  for (const p of pods) {
    const secrets = (p.spec?.volumes ?? []).flatMap((v) => (v.secret?.secretName !== undefined ? [v.secret.secretName] : []));
    t.deepEqual(secrets, [natsCredsSecretName('job', 0)], `${p.metadata?.name} mounts only its attempt's credentials`);
  }

  // Pods are created only after their attempt's identity reached the server.
  await waitFor('pods of A', async () =>
    (await core.listNamespacedPod({ namespace: nsA, labelSelector: `${LABELS.job}=job` })).items.length === 2 ? true : undefined,
  );

  // An attacker holding A's credentials, and one holding none.
  const withA = await tryConnect(url, credsA);
  if (typeof withA === 'string') throw new Error(`A's credentials refused: ${withA}`);
  const refused = { publish: 0, subscribe: 0 };
  let received = 0;
  void (async () => {
    for await (const s of withA.status()) {
      if (s.type !== 'error') continue;
      if (/Permissions Violation for Publish/.test(s.error.message)) refused.publish++;
      if (/Permissions Violation for Subscription/.test(s.error.message)) refused.subscribe++;
    }
  })();
  const sB = attemptSubjects(idB, 0);
  const eavesdrop = [sB.data('reduce_scatter', 0), sB.broadcast('threshold'), `${sB.prefix}.>`, 'gmt.>'];
  for (const subject of eavesdrop) {
    const sub = withA.subscribe(subject);
    void (async () => {
      try {
        for await (const _m of sub) received++;
      } catch {
        // refused (counted from the status stream)
      }
    })();
  }
  const forged = encodeDataFrame({ jobHash: jobHash(idB), attempt: 0 }, singleChunkFrame(new Uint8Array(4)));
  const targets = [sB.data('reduce_scatter', 0), sB.broadcast('threshold'), sB.abort];
  let published = 0;
  let anonymousTries = 0;
  let anonymousRefused = 0;
  const bothDone = Promise.all([
    waitForJob(t, nsA, 'job', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed'),
    waitForJob(t, nsB, 'job', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed'),
  ]);
  let finished = false;
  void bothDone.finally(() => {
    finished = true;
  });
  // Attack while A's identity is live (it is revoked when A finishes: the server then closes the
  // connection, and nats.js leaves a pending flush unresolved, hence the race).
  let confirmed = 0;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set when both jobs finish
  while (!finished) {
    if (!withA.isClosed()) {
      for (const s of targets) {
        withA.publish(s, forged);
        published++;
      }
      const flushed = await Promise.race([
        withA.flush().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
      ]);
      if (flushed) confirmed = published; // the server answers a PING after the -ERRs of what came before it
    }
    const anon = await tryConnect(url, undefined);
    anonymousTries++;
    if (typeof anon === 'string' && /Authorization Violation/.test(anon)) anonymousRefused++;
    else if (typeof anon !== 'string') await anon.close();
    await new Promise((r) => setTimeout(r, 200));
  }
  const [doneA, doneB] = await bothDone;
  t.is(doneA.status?.phase, 'Succeeded');
  t.is(doneB.status?.phase, 'Succeeded');
  t.log(
    `A's credentials: ${eavesdrop.length} subscriptions and ${published} forged publishes into B (${confirmed} confirmed by a flush before A's identity was revoked), refused ${JSON.stringify(refused)}, received ${received}; no credentials: ${anonymousRefused}/${anonymousTries} refused`,
  );
  t.true(confirmed >= targets.length, 'at least one round of forged publishes while A was live');
  t.is(refused.subscribe, eavesdrop.length, 'every subscription refused');
  t.true(refused.publish >= confirmed && refused.publish <= published, 'every confirmed publish refused (and none accepted)');
  t.is(received, 0);
  t.true(anonymousTries > 0 && anonymousRefused === anonymousTries);
  // Finished jobs: their identities are revoked (the connection above is closed by the server).
  await waitFor("A's connection closed by the server", async () => (withA.isClosed() ? true : undefined), { timeoutMs: 10_000 });
  t.regex(await refusal(url, credsA), /Authorization Violation/);

  // A deleted job: its credentials stop working at once (before garbage collection).
  const jobC = await create(nsC, tiny('job', { training: { steps: 400, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 } }));
  const credsC = decode(await credsSecret(nsC, jobC), NATS_CREDS_KEYS.creds);
  await waitForJob(t, nsC, 'job', 'Running with progress', (j) => (j.status?.step ?? 0) > 0);
  const asC = await tryConnect(url, credsC);
  if (typeof asC === 'string') throw new Error(`C's credentials refused while it runs: ${asC}`);
  // Pods of deleted jobs go with them: their logs are kept for the search for key material below.
  const deletedPodLogs = await fx.podLogs(nsC);
  const t0 = Date.now();
  await api().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: nsC, plural: PLURAL, name: 'job' });
  await waitFor("C's connection closed by the server", async () => (asC.isClosed() ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
  t.log(`deleted job's connection closed ${Date.now() - t0} ms after the delete`);
  t.regex(await refusal(url, credsC), /Authorization Violation/);

  // A restarted operator restores the live identities (a running job keeps its connection) and
  // revokes a job deleted while no operator ran (the sweep at start).
  const natsAuth = { namespace: sysNs, keysSecret: 'gmt-nats', serverSecret: 'gmt-nats-server', resolverDir: join(fx.root, 'nats-jwt') };
  const long = { training: { steps: 400, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 } };
  const jobD = await create(nsD, tiny('job', long));
  const jobE = await create(nsD, tiny('other', long));
  const credsD = decode(await credsSecret(nsD, jobD), NATS_CREDS_KEYS.creds);
  const credsE = decode(await credsSecret(nsD, jobE), NATS_CREDS_KEYS.creds);
  // The Secret is written before the account update is pushed: wait until both jobs train.
  await waitForJob(t, nsD, 'job', 'Running with progress', (j) => (j.status?.step ?? 0) > 0);
  await waitForJob(t, nsD, 'other', 'Running with progress', (j) => (j.status?.step ?? 0) > 0);
  const asD = await tryConnect(url, credsD);
  const asE = await tryConnect(url, credsE);
  if (typeof asD === 'string' || typeof asE === 'string')
    throw new Error(`live credentials refused: ${typeof asD === 'string' ? asD : 'D ok'} ${typeof asE === 'string' ? asE : 'E ok'}`);
  const metricsBefore = await metricsOfFirst();
  deletedPodLogs.push(...(await fx.podLogs(nsD)));
  await op.close();
  await api().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: nsD, plural: PLURAL, name: 'other' });
  const op2 = await fx.startOperator({ namespaces: watched, natsUrl: url, natsAuth });
  await op2.waitForSync();
  await waitFor('the job deleted while no operator ran: its connection closed by the sweep', async () => (asE.isClosed() ? true : undefined), {
    timeoutMs: 20_000,
  });
  await new Promise((r) => setTimeout(r, 1000));
  t.false(asD.isClosed(), "the running job's identity survived the operator restart");
  await asD.flush();
  await api().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: nsD, plural: PLURAL, name: 'job' });
  await waitFor("D's connection closed by the restarted operator", async () => (asD.isClosed() ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
  t.regex(await refusal(url, credsD), /Authorization Violation/);
  t.regex(await refusal(url, credsE), /Authorization Violation/);

  // A gang restart: attempt 1 gets new credentials, attempt 0's are revoked (a rank of the dead
  // attempt that still holds a connection is cut off) and its Secret is deleted.
  const jobF = await create(nsF, tiny('job', { training: { steps: 40, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 } }));
  const credsF0 = decode(await credsSecret(nsF, jobF), NATS_CREDS_KEYS.creds);
  await waitForJob(t, nsF, 'job', 'a checkpoint and a few steps', (j) => (j.status?.step ?? 0) >= 6 && j.status?.lastCheckpoint !== undefined);
  const deadRank = await tryConnect(url, credsF0);
  if (typeof deadRank === 'string') throw new Error(`attempt 0's credentials refused while it runs: ${deadRank}`);
  await fx.killContainer(nsF, podName('job', 0, 1));
  await waitForJob(t, nsF, 'job', 'attempt 1', (j) => (j.status?.attempt ?? 0) >= 1);
  const s1 = await waitFor('attempt 1 creds Secret', () => readSecret(core, nsF, natsCredsSecretName('job', 1)));
  const credsF1 = decode(s1, NATS_CREDS_KEYS.creds);
  t.not(credsF1, credsF0);
  await waitFor("the dead attempt's connection closed by the server", async () => (deadRank.isClosed() ? true : undefined), { timeoutMs: 10_000 });
  t.regex(await refusal(url, credsF0), /Authorization Violation/);
  await waitFor("attempt 0's Secret deleted", async () => ((await readSecret(core, nsF, natsCredsSecretName('job', 0))) === undefined ? true : undefined));
  const doneF = await waitForJob(t, nsF, 'job', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed', 300_000);
  t.is(doneF.status?.phase, 'Succeeded');
  t.is(doneF.status?.attempt, 1);

  // No key material anywhere an operator or user looks: logs, events, status, metrics, pod logs.
  const secretsSeen = [
    credsA,
    credsB,
    credsC,
    credsD,
    credsE,
    credsF0,
    credsF1,
    decode(keys!, KEYS_SECRET_KEYS.authority),
    decode(keys!, KEYS_SECRET_KEYS.systemUser),
    decode(keys!, KEYS_SECRET_KEYS.progressReader),
  ].flatMap((text) => [...(text.match(SEED_RE) ?? []), ...(text.match(JWT_RE) ?? [])]);
  // 7 job .creds (JWT + seed each), the 4 authority seeds, the system user's and the reader's .creds.
  t.is(secretsSeen.length, 7 * 2 + 4 + 2 * 2, 'every known seed and JWT was extracted');
  const metrics = `${metricsBefore}\n${await (await fetch(`${op2.server!.url}/metrics`)).text()}`;
  const evs = (await Promise.all([nsA, nsB, nsC, nsD, nsF].map((ns) => events(ns, 'job')))).flat();
  const statuses = [doneA, doneB, doneF].map((j) => JSON.stringify(j));
  const podLogs = [...deletedPodLogs, ...(await Promise.all([nsA, nsB, nsF].map((ns) => fx.podLogs(ns)))).flat()];
  const haystacks: Record<string, string> = {
    'operator logs': fx.logs.join('\n'),
    events: JSON.stringify(evs),
    status: statuses.join('\n'),
    metrics,
    'pod logs': podLogs.join('\n'),
  };
  for (const [where, text] of Object.entries(haystacks)) {
    t.true(text.length > 0, `${where}: something to search`);
    t.deepEqual(text.match(SEED_RE) ?? [], [], `${where}: no nkey seed`);
    t.deepEqual(text.match(JWT_RE) ?? [], [], `${where}: no NATS JWT`);
    for (const s of secretsSeen) t.false(text.includes(s), `${where}: a known secret appears`);
  }
  t.log(
    `searched ${Object.entries(haystacks)
      .map(([k, v]) => `${k} ${v.length} B`)
      .join(', ')} for ${secretsSeen.length} known seeds/JWTs and the seed/JWT patterns: none found`,
  );
});
