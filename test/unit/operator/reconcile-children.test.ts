// The pure children builders: deterministic names, env of docs/architecture.md §4, owner references,
// security context, podTemplate overrides, and a config the trainer accepts.
import test from 'ava';
import { API_VERSION, KIND, WORKER_PATHS, parseGmtFineTune, type GmtFineTune, type GmtFineTuneSpecInput } from '../../../operator/src/api/index.js';
import { buildConfigMap, buildService, buildWorkerPod, computeJobId } from '../../../operator/src/controller/index.js';
import { TrainerConfigSchema } from '../../../contract/config.js';

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
/** The trainer's view of the job's ConfigMap (the pod env supplies natsUrl). */
function trainerConfig(j: GmtFineTune): ReturnType<typeof TrainerConfigSchema.parse> {
  return TrainerConfigSchema.parse({ ...(JSON.parse(buildConfigMap(j).data?.['config.json'] ?? '{}') as object), natsUrl: 'nats://x:1' });
}
const opts = { defaultNatsUrl: 'nats://nats.gmt:4222', metricsPort: 9400 };

test('children - job id is DNS-safe, one NATS token, unique per incarnation', (t) => {
  t.is(computeJobId(job()), 'team-a-tiny-7d2431f1');
  t.regex(computeJobId(job()), /^[a-z0-9-]+$/);
});

test('children - worker pod: name, labels, env, owner, security, overrides', (t) => {
  const p = buildWorkerPod(
    job({
      resources: { requests: { cpu: '2' }, limits: { 'nvidia.com/gpu': 1 } },
      podTemplate: { nodeSelector: { pool: 'gpu' }, labels: { 'gmt.dev/job': 'evil', team: 'a' }, tolerations: [{ key: 'gpu', operator: 'Exists' }] },
    }),
    1,
    3,
    opts,
  );
  t.is(p.metadata.name, 'tiny-a3-r1');
  t.like(p.metadata.labels, { 'gmt.dev/job': 'tiny', 'gmt.dev/rank': '1', 'gmt.dev/attempt': '3', 'gmt.dev/role': 'worker', team: 'a' });
  t.like(p.metadata.ownerReferences?.[0], { kind: 'GmtFineTune', name: 'tiny', controller: true });
  t.is(p.spec?.restartPolicy, 'Never');
  t.is(p.spec?.hostname, 'tiny-1');
  t.is(p.spec?.subdomain, 'tiny');
  t.deepEqual(p.spec?.nodeSelector, { pool: 'gpu' });
  t.deepEqual(p.spec?.tolerations, [{ key: 'gpu', operator: 'Exists' }]);
  t.true(p.spec?.securityContext?.runAsNonRoot);
  const c = p.spec?.containers[0];
  t.true(c?.securityContext?.readOnlyRootFilesystem);
  t.is(c?.terminationMessagePolicy, 'FallbackToLogsOnError');
  t.deepEqual(c?.resources, { requests: { cpu: '2' }, limits: { 'nvidia.com/gpu': '1' } });
  const env = Object.fromEntries((c?.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
  t.like(env, {
    GMT_JOB_ID: 'team-a-tiny-7d2431f1',
    GMT_RANK: '1',
    GMT_WORLD_SIZE: '2',
    GMT_ATTEMPT: '3',
    NATS_URL: 'nats://nats.gmt:4222',
    GMT_CONFIG: `${WORKER_PATHS.configDir}/config.json`,
    GMT_CHECKPOINT_DIR: `${WORKER_PATHS.checkpointMount}/team-a-tiny-7d2431f1`,
    GMT_METRICS_PORT: '9400',
  });
  // The trainer reads its config only from the mounted ConfigMap file GMT_CONFIG names.
  t.deepEqual(
    (c?.env ?? []).filter((e) => e.value === undefined),
    [],
    'no env var copies a ConfigMap or Secret value',
  );
  t.is(p.spec?.volumes?.find((v) => v.name === 'config')?.configMap?.name, 'tiny-config');
  t.like(
    c?.volumeMounts?.find((m) => m.name === 'config'),
    { mountPath: WORKER_PATHS.configDir, readOnly: true },
  );
  t.deepEqual(buildWorkerPod(job(), 0, 0, opts), buildWorkerPod(job(), 0, 0, opts), 'pure');
});

test('children - spec NATS URL and credentials Secret win over the operator default', (t) => {
  const p = buildWorkerPod(job({ nats: { url: 'nats://mine:4222', credentialsSecret: { name: 'creds', key: 'user.creds' } } }), 0, 0, opts);
  const env = p.spec?.containers[0]?.env ?? [];
  t.is(env.find((e) => e.name === 'NATS_URL')?.value, 'nats://mine:4222');
  t.is(env.find((e) => e.name === 'NATS_CREDS')?.value, `${WORKER_PATHS.natsCredsDir}/user.creds`);
  t.is(p.spec?.volumes?.find((v) => v.name === 'nats-creds')?.secret?.secretName, 'creds');
});

test('children - checkpoint volume: emptyDir by default, the claim when given', (t) => {
  t.truthy(buildWorkerPod(job(), 0, 0, opts).spec?.volumes?.find((v) => v.name === 'checkpoints')?.emptyDir);
  t.is(
    buildWorkerPod(job({ checkpoint: { volume: { persistentVolumeClaim: { claimName: 'ck' } } } }), 0, 0, opts).spec?.volumes?.find(
      (v) => v.name === 'checkpoints',
    )?.persistentVolumeClaim?.claimName,
    'ck',
  );
});

test('children - pvc:// sources: each claim mounted read-only once, the config names the mounted paths', (t) => {
  const j = job({
    model: { source: 'pvc://models/base/step-00000300' },
    dataset: { train: 'pvc://data/train.jsonl', eval: 'pvc://data/eval.jsonl' },
  });
  const pod = buildWorkerPod(j, 1, 0, opts);
  const claims = (pod.spec?.volumes ?? []).filter((v) => v.name.startsWith('source-claim-'));
  t.deepEqual(
    claims.map((v) => [v.persistentVolumeClaim?.claimName, v.persistentVolumeClaim?.readOnly]),
    [
      ['data', true],
      ['models', true],
    ],
  );
  const mounts = pod.spec?.containers[0]?.volumeMounts ?? [];
  for (const v of claims) {
    const m = mounts.find((x) => x.name === v.name);
    t.is(m?.mountPath, `/var/lib/gmt/claims/${v.persistentVolumeClaim?.claimName ?? ''}`);
    t.true(m?.readOnly);
  }
  const config = trainerConfig(j);
  t.is(config.baseModel, '/var/lib/gmt/claims/models/base/step-00000300');
  t.is(config.trainData, '/var/lib/gmt/claims/data/train.jsonl');
  t.is(config.evalData, '/var/lib/gmt/claims/data/eval.jsonl');
  // Other sources pass through; no claim volume without a pvc:// source.
  const plain = job({ dataset: { train: '/data/train.jsonl' } });
  t.false((buildWorkerPod(plain, 0, 0, opts).spec?.volumes ?? []).some((v) => v.name.startsWith('source-claim-')));
  t.is(trainerConfig(plain).trainData, '/data/train.jsonl');
});

test('children - a pvc:// source on the checkpoint claim is read under the checkpoint mount (not mounted twice)', (t) => {
  const j = job({ dataset: { train: 'pvc://ck/in/train.jsonl' }, checkpoint: { volume: { persistentVolumeClaim: { claimName: 'ck' } } } });
  const pod = buildWorkerPod(j, 0, 0, opts);
  t.is((pod.spec?.volumes ?? []).filter((v) => v.persistentVolumeClaim?.claimName === 'ck').length, 1);
  t.is(trainerConfig(j).trainData, `${WORKER_PATHS.checkpointMount}/in/train.jsonl`);
});

test('children - headless Service and ConfigMap; the config parses with the trainer schema', (t) => {
  const s = buildService(job(), opts);
  t.is(s.metadata.name, 'tiny');
  t.is(s.spec?.clusterIP, 'None');
  t.true(s.spec?.publishNotReadyAddresses);
  const cm = buildConfigMap(job());
  t.is(cm.metadata.name, 'tiny-config');
  const parsed = TrainerConfigSchema.safeParse({ ...JSON.parse(cm.data?.['config.json'] ?? '{}'), natsUrl: 'nats://x:1' });
  t.true(parsed.success, parsed.success ? '' : parsed.error.message);
  t.is(cm.metadata.annotations?.['gmt.dev/config-hash'], buildWorkerPod(job(), 0, 0, opts).metadata.annotations?.['gmt.dev/config-hash']);
});
