// The generated GmtFineTune CRD on a real kube-apiserver: it is accepted and Established, the
// examples are accepted and defaulted by the API server exactly as the zod schemas default them,
// invalid specs are rejected by the API server itself with messages that name the field, the
// transition rules hold, and kubectl shows the printer columns.

import test, { type ExecutionContext } from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { ApiException, ApiextensionsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { CRD_NAME, CRD_PATH, GROUP, PLURAL, VERSION, computeDisplay, parseGmtFineTune } from '../../../operator/src/api/index.js';
import { useTestCluster } from '../../harness/cluster.js';
import { createTestNamespace, runKubectl, waitFor } from '../../harness/k8s-helpers.js';
import { repoPath } from '../../helpers/repo.js';

const cluster = useTestCluster(test);

type Obj = Record<string, unknown>;

/** Applies the committed CRD and waits for Established, once per file (ava runs before hooks concurrently, so tests await this). */
let installed: Promise<void> | undefined;
function installCrd(): Promise<void> {
  installed ??= doInstallCrd();
  return installed;
}

async function doInstallCrd(): Promise<void> {
  const { kc, kubectl, kubeconfigPath } = cluster();
  const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '--server-side', '--field-manager=gmt-test', '-f', repoPath(CRD_PATH)]);
  if (applied.code !== 0) throw new Error(`kubectl apply ${CRD_PATH} failed: ${applied.stderr}`);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  await waitFor(
    `CRD ${CRD_NAME} Established`,
    async () => {
      const crd = await ext.readCustomResourceDefinition({ name: CRD_NAME });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

test.beforeEach(async () => {
  await installCrd();
});

function api(): CustomObjectsApi {
  return cluster().kc.makeApiClient(CustomObjectsApi);
}

function job(name: string, spec: Obj): Obj {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'GmtFineTune', metadata: { name }, spec: { image: 'gmt-dev/gmt-trainer:0.1.0', ...spec } };
}

async function create(namespace: string, body: Obj): Promise<Obj> {
  return (await api().createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body, fieldValidation: 'Strict' })) as Obj;
}

async function read(namespace: string, name: string): Promise<Obj> {
  return (await api().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as Obj;
}

async function replace(namespace: string, body: Obj): Promise<Obj> {
  const name = (body['metadata'] as Obj)['name'] as string;
  return (await api().replaceNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    name,
    body,
    fieldValidation: 'Strict',
  })) as Obj;
}

/** The API error's code and message (the Status object's message). */
async function rejection(t: ExecutionContext, p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
    const message = typeof body === 'object' && body !== null && 'message' in body ? String(body.message) : String(err.body);
    t.log(`${err.code}: ${message}`);
    return { code: err.code, message };
  }
  t.fail('the API server accepted the object');
  return { code: 0, message: '' };
}

test('crd - every example is accepted and the API server fills in the same defaults as the zod schema', async (t) => {
  const { kc, kubectl, kubeconfigPath } = cluster();
  const ns = await createTestNamespace(kc, 'crd-examples');
  const files = (await readdir(repoPath('examples'))).filter((f) => f.endsWith('.yaml')).sort();
  t.deepEqual(files.filter((f) => ['tiny.yaml', 'gmt-arithmetic.yaml', 'suspended.yaml'].includes(f)).length, 3);
  for (const f of files) {
    const r = await runKubectl(kubectl, kubeconfigPath, ['create', '--validate=strict', '-n', ns, '-f', repoPath('examples', f)]);
    t.is(r.code, 0, `${f}: ${r.stderr}`);
    const source = parse(await readFile(repoPath('examples', f), 'utf8')) as Obj;
    const name = (source['metadata'] as Obj)['name'] as string;
    const stored = await read(ns, name);
    const local = parseGmtFineTune(source);
    if (!local.ok) {
      t.fail(`${f}: ${local.error}`);
      continue;
    }
    t.deepEqual(stored['spec'], local.value.spec, `${f}: server-side defaults equal the zod defaults`);
  }
  const tiny = (await read(ns, 'tiny'))['spec'] as Record<string, Obj>;
  t.like(tiny, {
    workers: 2,
    method: { name: 'gmt', maskRatio: 0.2, maskScope: 'tensor', maskMode: 'update', tieRule: 'all' },
    optimizer: { name: 'adamw', lr: 0.001, warmupRatio: 0.03, weightDecay: 0 },
    checkpoint: { volume: { emptyDir: {} }, interval: 0 },
    runPolicy: { suspend: false, backoffLimit: 2 },
  });
});

const INVALID: readonly [string, Obj, RegExp][] = [
  ['maskRatio 1.0', job('mask-ratio', { method: { maskRatio: 1.0 } }), /spec\.method\.maskRatio.*should be less than 1/],
  ['negative lr', job('neg-lr', { optimizer: { lr: -0.001 } }), /spec\.optimizer\.lr.*should be greater than 0/],
  ['workers 0', job('workers0', { workers: 0 }), /spec\.workers.*should be greater than or equal to 1/],
  ['unknown method', job('method', { method: { name: 'lora' } }), /spec\.method\.name: Unsupported value: "lora"/],
  ['steps 0', job('steps0', { training: { steps: 0 } }), /spec\.training\.steps.*should be greater than or equal to 1/],
  ['microBatchSize 0', job('mbs0', { training: { microBatchSize: 0 } }), /spec\.training\.microBatchSize.*should be greater than or equal to 1/],
  ['negative backoffLimit', job('backoff', { runPolicy: { backoffLimit: -1 } }), /spec\.runPolicy\.backoffLimit.*should be greater than or equal to 0/],
  [
    'negative ttlSecondsAfterFinished',
    job('ttl', { runPolicy: { ttlSecondsAfterFinished: -5 } }),
    /spec\.runPolicy\.ttlSecondsAfterFinished.*should be greater than or equal to 0/,
  ],
  ['bad maskScope', job('scope', { method: { maskScope: 'layer' } }), /spec\.method\.maskScope: Unsupported value: "layer"/],
  ['empty image', job('image', { image: '' }), /spec\.image.*should be at least 1 chars long/],
  [
    'missing image',
    { apiVersion: `${GROUP}/${VERSION}`, kind: 'GmtFineTune', metadata: { name: 'noimage' }, spec: { workers: 1 } },
    /spec\.image: Required value/,
  ],
  ['relative dataset path', job('dataset', { dataset: { train: 'data/train.jsonl' } }), /spec\.dataset\.train.*should match/],
  ['bad quantity', job('quantity', { resources: { requests: { cpu: 'lots' } } }), /spec\.resources\.requests\.cpu/],
  [
    'GPU request without a limit',
    job('gpu', { resources: { requests: { 'nvidia.com/gpu': 1 } } }),
    /spec\.resources\.limits: .*spec\.resources\.limits must set nvidia\.com\/gpu/,
  ],
  [
    'two checkpoint volumes',
    job('volumes', { checkpoint: { volume: { emptyDir: {}, persistentVolumeClaim: { claimName: 'c' } } } }),
    /spec\.checkpoint\.volume must set exactly one of emptyDir and persistentVolumeClaim/,
  ],
  ['momentum with adamw', job('momentum', { optimizer: { momentum: 0.9 } }), /spec\.optimizer\.momentum: .*applies to sgd only/],
  [
    'toleration Exists with a value',
    job('toleration', { podTemplate: { tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }] } }),
    /spec\.podTemplate\.tolerations\[0\]\.value: .*must be empty when operator is Exists/,
  ],
  ['a name that cannot name pods', job('bad.name', {}), /metadata\.name: Invalid value: metadata\.name must be a DNS-1035 label/],
  ['a name too long for pod names', job(`j${'x'.repeat(48)}`, {}), /metadata\.name: .*of at most 48 characters/],
];

for (const [what, body, message] of INVALID) {
  test(`crd - rejects ${what} with 422 naming the field`, async (t) => {
    const ns = await createTestNamespace(cluster().kc, 'crd-invalid');
    const r = await rejection(t, create(ns, body));
    t.is(r.code, 422);
    t.regex(r.message, message);
  });
}

test('crd - an unknown field under spec is rejected by strict field validation, naming the field', async (t) => {
  const ns = await createTestNamespace(cluster().kc, 'crd-strict');
  const r = await rejection(t, create(ns, job('unknown', { maskRatio: 0.3 })));
  // Strict decoding failures are BadRequest (400), not Invalid (422): apiserver's fieldValidation.
  t.is(r.code, 400);
  t.regex(r.message, /unknown field "spec\.maskRatio"/);
  // Without strict validation the field is pruned (structural schema) and never stored.
  await api().createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: job('pruned', { maskRatio: 0.3 }) });
  t.false('maskRatio' in ((await read(ns, 'pruned'))['spec'] as Obj));
});

test('crd - workers and method are immutable while the job is not suspended (transition rules)', async (t) => {
  const ns = await createTestNamespace(cluster().kc, 'crd-transition');
  await create(ns, job('running', { workers: 2 }));
  const withSpec = async (name: string, change: (spec: Obj) => void): Promise<Obj> => {
    const o = await read(ns, name);
    change(o['spec'] as Obj);
    return o;
  };
  let r = await rejection(
    t,
    replace(
      ns,
      await withSpec('running', (s) => {
        s['workers'] = 3;
      }),
    ),
  );
  t.is(r.code, 422);
  t.regex(r.message, /spec\.workers: .*spec\.workers is immutable unless the job is suspended/);
  r = await rejection(
    t,
    replace(
      ns,
      await withSpec('running', (s) => {
        (s['method'] as Obj)['maskRatio'] = 0.5;
      }),
    ),
  );
  t.is(r.code, 422);
  t.regex(r.message, /spec\.method: .*spec\.method is immutable unless the job is suspended/);
  // Fields outside the rules stay mutable.
  await replace(
    ns,
    await withSpec('running', (s) => {
      (s['runPolicy'] as Obj)['backoffLimit'] = 7;
    }),
  );
  // Suspend, then resize and change the method; then resume.
  await replace(
    ns,
    await withSpec('running', (s) => {
      (s['runPolicy'] as Obj)['suspend'] = true;
    }),
  );
  await replace(
    ns,
    await withSpec('running', (s) => {
      s['workers'] = 4;
      (s['method'] as Obj)['name'] = 'sft';
    }),
  );
  await replace(
    ns,
    await withSpec('running', (s) => {
      (s['runPolicy'] as Obj)['suspend'] = false;
    }),
  );
  t.like((await read(ns, 'running'))['spec'], { workers: 4, method: { name: 'sft' }, runPolicy: { suspend: false, backoffLimit: 7 } });
  // managedBy is immutable once set (MultiKueue).
  await create(ns, job('managed', { runPolicy: { managedBy: 'kueue.x-k8s.io/multikueue' } }));
  r = await rejection(
    t,
    replace(
      ns,
      await withSpec('managed', (s) => {
        (s['runPolicy'] as Obj)['managedBy'] = 'gmt.dev/gmt-operator';
      }),
    ),
  );
  t.is(r.code, 422);
  t.regex(r.message, /spec\.runPolicy\.managedBy is immutable/);
});

test('crd - status subresource: validated, and kubectl get gft -o wide shows the printer columns', async (t) => {
  const { kc, kubectl, kubeconfigPath } = cluster();
  const ns = await createTestNamespace(kc, 'crd-columns');
  const kube = (...args: string[]): ReturnType<typeof runKubectl> => runKubectl(kubectl, kubeconfigPath, ['-n', ns, ...args]);
  t.is((await kube('apply', '-f', repoPath('examples', 'tiny.yaml'))).code, 0);
  // As the operator writes it: the numbers in full precision, display strings rounded (computeDisplay).
  const numbers = {
    phase: 'Running',
    attempt: 1,
    step: 5,
    totalSteps: 20,
    progress: '5/20',
    loss: 1.2500123,
    samplesPerSecond: 42.4567,
    keptRatio: 0.8000001,
    restarts: { total: 1, retryable: 1 },
    workers: { active: 2, succeeded: 0, failed: 0 },
    reason: 'ImagePullBackOff',
    evaluation: { before: { loss: 2.5, exactMatch: 0.1 }, last: { loss: 1.5, exactMatch: 0.35, step: 4 } },
    backend: 'tensorflow/cpu',
  };
  const status = { ...numbers, display: computeDisplay(numbers) };
  const patched = await kube('patch', 'gft', 'tiny', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status }));
  t.is(patched.code, 0, patched.stderr);
  const bad = await kube('patch', 'gft', 'tiny', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Bogus' } }));
  t.not(bad.code, 0);
  t.regex(bad.stderr, /status\.phase: Unsupported value: "Bogus"/);
  // A spec change through the main resource cannot write status.
  t.like((await read(ns, 'tiny'))['status'], { phase: 'Running', progress: '5/20' });

  const narrow = await kube('get', 'gft');
  t.is(narrow.code, 0, narrow.stderr);
  t.log(narrow.stdout);
  t.regex(narrow.stdout, /^NAME\s+PHASE\s+PROGRESS\s+LOSS\s+EXACT-MATCH\s+RESTARTS\s+REASON\s+AGE\s*$/m);
  t.regex(narrow.stdout, /^tiny\s+Running\s+5\/20\s+1\.2500\s+10\.0% → 35\.0%\s+1\s+ImagePullBackOff\s+\S+\s*$/m);
  const wide = await kube('get', 'gft', '-o', 'wide');
  t.is(wide.code, 0, wide.stderr);
  t.log(wide.stdout);
  t.regex(
    wide.stdout,
    /^NAME\s+PHASE\s+PROGRESS\s+LOSS\s+EXACT-MATCH\s+RESTARTS\s+REASON\s+AGE\s+WORKERS\s+METHOD\s+ATTEMPT\s+SAMPLES\/S\s+KEPT\s+EVAL-LOSS\s+BACKEND\s*$/m,
  );
  t.regex(
    wide.stdout,
    /^tiny\s+Running\s+5\/20\s+1\.2500\s+10\.0% → 35\.0%\s+1\s+ImagePullBackOff\s+\S+\s+2\s+gmt\s+1\s+42\.5\s+80\.0%\s+2\.5000 → 1\.5000\s+tensorflow\/cpu\s*$/m,
  );
  // kubectl explain describes spec itself and takes the trainer schema's meanings.
  const explain = await kube('explain', 'gft.spec');
  t.is(explain.code, 0, explain.stderr);
  t.regex(explain.stdout.replace(/\s+/g, ' '), /DESCRIPTION: The fine-tuning job: what to train/);
  const ratio = await kube('explain', 'gft.spec.method.maskRatio');
  t.regex(ratio.stdout.replace(/\s+/g, ' '), /fraction of entries dropped per scope/);
  // The short name and the category work.
  t.regex((await kube('get', 'gmt')).stdout, /^tiny\s/m);
});
