/**
 * Jobs that cannot see or touch each other (docs/security.md), against a real nats-server in
 * operator mode set up as the chart sets it up (startSecureNatsServer: the same config builders):
 * - jobs A and B train at once; a client with A's credentials, one with none and one with
 *   credentials of a foreign authority each try to subscribe to B's gradient and threshold subjects
 *   and to publish forged frames into B: every attempt is refused by the server and counted, no
 *   message reaches them, and B's final model is byte-identical to B run alone;
 * - a dead attempt's credentials against the live attempt: the server closes the dead attempt's
 *   connection when the next attempt is minted, refuses it from then on, and the live attempt's
 *   model is byte-identical too;
 * - a deleted job's credentials stop working at once.
 */
import test from 'ava';
import { singleChunkFrame } from '../../helpers/frames.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { createNatsAuthority, mintProgressReader } from '../../../contract/nats-identity.js';
import { progressSubject } from '../../../contract/progress.js';
import { attemptSubjects } from '../../../trainer/src/collective/nats/index.js';
import { startSecureNatsServer, type SecureNatsServer } from '../../../trainer/src/collective/nats/secure-server.js';
import { encodeAbortFrame, encodeDataFrame, jobHash, type DataFrameFields, type WireIdentity } from '../../../trainer/src/collective/nats/wire.js';
import { readFile } from 'node:fs/promises';
import { ensureBinary } from '../../harness/binaries.js';
import { createControlPlanePki } from '../../harness/pki.js';
import { describe, finalFiles, killAll, sameFiles, spawnGang, waitGang, type Proc } from './ranks.js';

const STEPS = 12;
const ARGS = ['--method', 'gmt', '--mask-ratio', '0.5', '--steps', String(STEPS)];

let root = '';
let secure: SecureNatsServer | undefined;
const spawned: Proc[] = [];

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'gmt-nats-auth-test-'));
  secure = await startSecureNatsServer({ binary: await ensureBinary('nats-server') });
});

test.after.always(async () => {
  killAll(spawned);
  await secure?.stop();
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const srv = (): SecureNatsServer => secure!;
let dirs = 0;
const freshDir = (name: string): string => join(root, `${name}-${dirs++}`);

/** A 2-rank gang of (jobId, attempt) with the given credentials file (and extra env). */
function gang(jobId: string, attempt: number, creds: string, dir: string, url = srv().url, env: Record<string, string> = {}): Proc[] {
  const ps = spawnGang({ n: 2, url, jobId, attempt, dir, args: ARGS, env: { NATS_CREDS: creds, ...env } });
  spawned.push(...ps);
  return ps;
}

/** B run alone (its own job id, attempt 0): the reference every other run of B must equal. */
let solo: Promise<string> | undefined;
function soloRun(): Promise<string> {
  solo ??= (async () => {
    const dir = freshDir('solo');
    const exits = await waitGang(gang('job-solo', 0, await srv().mintAttempt('job-solo', 0), dir));
    if (!exits.every((e) => e.code === 0)) throw new Error(`solo run failed:\n${describe(exits)}`);
    return dir;
  })();
  return solo;
}

/** An adversarial client: counts what it tried, what the server refused and what it received. */
class Attacker {
  readonly tried = { publish: 0, subscribe: 0 };
  readonly refused = { publish: 0, subscribe: 0 };
  received = 0;
  private constructor(
    readonly name: string,
    readonly nc: NatsConnection,
  ) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type !== 'error') continue;
        const m = s.error.message;
        if (/Permissions Violation for Publish/.test(m)) this.refused.publish++;
        else if (/Permissions Violation for Subscription/.test(m)) this.refused.subscribe++;
      }
    })();
  }

  static async open(name: string, url: string, creds: Uint8Array, inboxPrefix?: string): Promise<Attacker> {
    return new Attacker(
      name,
      await connect({ servers: url, name, authenticator: credsAuthenticator(creds), reconnect: false, ...(inboxPrefix !== undefined ? { inboxPrefix } : {}) }),
    );
  }

  subscribe(subject: string): void {
    this.tried.subscribe++;
    const sub = this.nc.subscribe(subject);
    void (async () => {
      try {
        for await (const _m of sub) this.received++;
      } catch {
        // The server refused the subscription (counted from the status stream).
      }
    })();
  }

  publish(subject: string, bytes: Uint8Array): void {
    this.tried.publish++;
    this.nc.publish(subject, bytes);
  }
}

/** Forged frames with valid fields and checksums for `job`'s attempt: gradient chunks, threshold histograms, an abort. */
function forgedFrames(job: string, attempt: number): Array<{ subject: string; bytes: Uint8Array }> {
  const s = attemptSubjects(job, attempt);
  const id: WireIdentity = { jobHash: jobHash(job), attempt };
  const payload = new Uint8Array(512).map((_, i) => (i * 31) & 0xff);
  const fields = (over: Partial<DataFrameFields>): DataFrameFields => singleChunkFrame(payload, over);
  return [
    { subject: s.data('reduce_scatter', 0), bytes: encodeDataFrame(id, fields({})) },
    { subject: s.broadcast('threshold'), bytes: encodeDataFrame(id, fields({ phase: 'threshold', broadcast: true, dest: 0xffff })) },
    { subject: s.broadcast('all_gather'), bytes: encodeDataFrame(id, fields({ phase: 'all_gather', broadcast: true, dest: 0xffff })) },
    { subject: s.abort, bytes: encodeAbortFrame(id, { source: 1, reason: 'forged' }) },
    { subject: progressSubject(job), bytes: new TextEncoder().encode('{"attempt":0,"step":999,"totalSteps":999,"phase":"Succeeded"}') },
  ];
}

/** Subjects of `job`'s attempt an eavesdropper wants: gradients to each rank, thresholds, everything. */
function eavesdropSubjects(job: string, attempt: number): string[] {
  const s = attemptSubjects(job, attempt);
  return [
    s.data('reduce_scatter', 0),
    s.inbox(1),
    s.broadcast('threshold'),
    s.broadcasts,
    `${s.prefix}.>`,
    `gmt.${job}.>`,
    'gmt.>',
    '>',
    `_INBOX.${job}.${attempt}.>`,
  ];
}

/** Tries to connect `tries` times with `creds` (undefined: none); returns how many the server refused. */
async function refusedConnects(url: string, creds: Uint8Array | undefined, tries: number): Promise<{ refused: number; reasons: string[] }> {
  let refused = 0;
  const reasons: string[] = [];
  for (let i = 0; i < tries; i++) {
    try {
      const nc = await connect({ servers: url, reconnect: false, ...(creds !== undefined ? { authenticator: credsAuthenticator(creds) } : {}) });
      await nc.close();
    } catch (e) {
      const m = e instanceof Error ? e.message : String(e);
      if (/Authorization Violation|Authentication/i.test(m)) refused++;
      reasons.push(m);
    }
  }
  return { refused, reasons };
}

/** Resolves once `cond()` holds (polling); rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.serial("jobs A and B at once: A's credentials, none, and a foreign authority's cannot read or write B; B equals B alone", async (t) => {
  const soloDir = await soloRun();
  const credsA = await srv().mintAttempt('job-a', 0);
  const credsB = await srv().mintAttempt('job-b', 0);
  const foreign = new TextEncoder().encode((await mintProgressReader(createNatsAuthority())).creds);

  // Eavesdroppers subscribe before B starts, so they would see all of B's traffic.
  const withA = await Attacker.open('attacker-with-a', srv().url, await readFile(credsA), '_INBOX.job-a.0');
  for (const subject of eavesdropSubjects('job-b', 0)) withA.subscribe(subject);
  await withA.nc.flush();

  const dirA = freshDir('a');
  const dirB = freshDir('b');
  const ranks = [...gang('job-a', 0, credsA, dirA), ...gang('job-b', 0, credsB, dirB)];
  let finished = false;
  const done = waitGang(ranks, 240_000).finally(() => {
    finished = true;
  });
  const frames = forgedFrames('job-b', 0);
  let anonymous = { refused: 0, tries: 0 };
  let foreignAuth = { refused: 0, tries: 0 };
  const reasons = new Set<string>();
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set when the gang exits
  while (!finished) {
    for (const f of frames) withA.publish(f.subject, f.bytes);
    await withA.nc.flush();
    const a = await refusedConnects(srv().url, undefined, 1);
    const f = await refusedConnects(srv().url, foreign, 1);
    anonymous = { refused: anonymous.refused + a.refused, tries: anonymous.tries + 1 };
    foreignAuth = { refused: foreignAuth.refused + f.refused, tries: foreignAuth.tries + 1 };
    for (const r of [...a.reasons, ...f.reasons]) reasons.add(r);
    await new Promise((r) => setTimeout(r, 50));
  }
  const exits = await done;
  t.true(
    exits.every((e) => e.code === 0),
    describe(exits),
  );
  await withA.nc.flush();
  await until(() => withA.refused.publish >= withA.tried.publish && withA.refused.subscribe >= withA.tried.subscribe, 5000, 'every refusal to arrive');
  t.log(
    `with A's credentials: ${withA.tried.subscribe} subscriptions, ${withA.tried.publish} forged publishes into B; refused ${JSON.stringify(withA.refused)}; received ${withA.received}`,
  );
  t.log(
    `without credentials: ${anonymous.refused}/${anonymous.tries} connections refused; foreign authority: ${foreignAuth.refused}/${foreignAuth.tries}; reasons ${JSON.stringify([...reasons])}`,
  );
  t.true(withA.tried.publish >= frames.length && withA.tried.subscribe === eavesdropSubjects('job-b', 0).length);
  t.deepEqual(withA.refused, withA.tried, 'every subscription and every publish refused by the server');
  t.is(withA.received, 0, "no message of B reached the client holding A's credentials");
  t.true(anonymous.tries > 0 && anonymous.refused === anonymous.tries, 'every connection without credentials refused');
  t.true(foreignAuth.tries > 0 && foreignAuth.refused === foreignAuth.tries, "every connection with a foreign authority's credentials refused");
  await withA.nc.close();

  const [b, ref, a] = [await finalFiles(dirB, STEPS), await finalFiles(soloDir, STEPS), await finalFiles(dirA, STEPS)];
  t.deepEqual(sameFiles(b, ref), { model: true, optimizer: true }, "B's final model and optimizer byte-identical to B run alone");
  t.deepEqual(sameFiles(a, ref), { model: true, optimizer: true }, 'A (same settings) unaffected too');
});

test.serial("a dead attempt's credentials: closed when the next attempt is minted, refused after, and the live attempt equals the run alone", async (t) => {
  const soloDir = await soloRun();
  const creds0 = await readFile(await srv().mintAttempt('job-c', 0));
  // A rank of attempt 0 that outlives its gang (e.g. a partitioned pod), still connected.
  const dead = await Attacker.open('dead-rank', srv().url, creds0, '_INBOX.job-c.0');
  let deadClosed = false;
  void dead.nc.closed().then(() => {
    deadClosed = true;
  });
  const creds1 = await srv().mintAttempt('job-c', 1);
  await until(() => deadClosed, 5000, "the server to close the dead attempt's connection");
  t.pass("the server closed the dead attempt's connection when attempt 1 was minted");

  const dir = freshDir('c1');
  const ranks = gang('job-c', 1, creds1, dir);
  let finished = false;
  const done = waitGang(ranks, 240_000).finally(() => {
    finished = true;
  });
  let tries = 0;
  let refused = 0;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set when the gang exits
  while (!finished) {
    const r = await refusedConnects(srv().url, creds0, 1);
    tries++;
    refused += r.refused;
    await new Promise((res) => setTimeout(res, 50));
  }
  const exits = await done;
  t.true(
    exits.every((e) => e.code === 0),
    describe(exits),
  );
  t.log(`dead attempt's credentials: ${refused}/${tries} connections refused while attempt 1 ran`);
  t.true(tries > 0 && refused === tries);
  t.deepEqual(sameFiles(await finalFiles(dir, STEPS), await finalFiles(soloDir, STEPS)), { model: true, optimizer: true });
});

test.serial("a deleted job's credentials stop working at once", async (t) => {
  const creds = await readFile(await srv().mintAttempt('job-d', 0));
  const live = await Attacker.open('job-d-rank', srv().url, creds, '_INBOX.job-d.0');
  let closed = false;
  void live.nc.closed().then(() => {
    closed = true;
  });
  const t0 = performance.now();
  await srv().revokeJob('job-d');
  await until(() => closed, 5000, "the server to close the deleted job's connection");
  t.log(`connection closed ${Math.round(performance.now() - t0)} ms after the revocation was pushed`);
  const r = await refusedConnects(srv().url, creds, 3);
  t.is(r.refused, 3, JSON.stringify(r.reasons));
});

test.serial('TLS as the chart sets it up: ranks trust the CA through NODE_EXTRA_CA_CERTS and train; a client without the CA is refused', async (t) => {
  const soloDir = await soloRun();
  // A CA and a serving certificate for 127.0.0.1 (the harness's PKI, made in-process).
  const pki = await createControlPlanePki('10.0.0.1');
  const tls = await startSecureNatsServer({
    binary: await ensureBinary('nats-server'),
    tls: { certPem: pki.apiserver.certPem, keyPem: pki.apiserver.keyPem, caPem: pki.ca.certPem },
  });
  t.teardown(() => tls.stop());
  const caFile = join(root, 'nats-ca.crt');
  await writeFile(caFile, pki.ca.certPem);
  const credsFile = await tls.mintAttempt('job-tls', 0);
  const creds = await readFile(credsFile);
  // The server requires TLS: a client that does not trust its CA cannot even authenticate.
  const untrusted = await connect({ servers: tls.url, reconnect: false, authenticator: credsAuthenticator(creds) }).then(
    async (nc) => {
      await nc.close();
      return 'connected';
    },
    (e: unknown) => (e instanceof Error ? `${e.message} ${e.cause instanceof Error ? e.cause.message : ''}` : String(e)),
  );
  t.regex(untrusted, /certificate/i, 'TLS verification fails without the CA');
  const trusted = await connect({ servers: tls.url, reconnect: false, authenticator: credsAuthenticator(creds), tls: { ca: pki.ca.certPem } });
  t.true(trusted.info?.tls_required === true, 'the server requires TLS');
  await trusted.close();
  const dir = freshDir('tls');
  const exits = await waitGang(gang('job-tls', 0, credsFile, dir, tls.url, { NODE_EXTRA_CA_CERTS: caFile }));
  t.true(
    exits.every((e) => e.code === 0),
    describe(exits),
  );
  t.deepEqual(sameFiles(await finalFiles(dir, STEPS), await finalFiles(soloDir, STEPS)), { model: true, optimizer: true });
});
