// The real test node (test/harness/real-node/): a kubelet with containerd, kube-proxy and CoreDNS
// on this machine. Checks what pods get (containers, volumes, logs, exec, Services, DNS, the API
// server), the chart (operator + NATS with per-job JWT auth) running examples/tiny.yaml to Succeeded,
// a pod of another namespace unable to read a job's NATS traffic (docs/security.md), a gang restart
// after a trainer container is killed through containerd (attempt 1 resumes from the checkpoint
// claim), that the egress guard stops a pod dialing an address outside the machine fast (and that
// the API server refuses hostNetwork pods, which would bypass it), and that
// after teardown the machine is exactly as before. Tests are serial: the last one tears down.

import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { z } from 'zod';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { binaryVersion, ensureBinary } from '../harness/binaries.js';
import { createTestNamespace, runKubectl, waitFor, waitForPodPhase } from '../harness/k8s-helpers.js';
import { run, tryRun } from '../harness/real-node/exec.js';
import { buildDockerfile, buildNatsImage, ImageBuildError, PROJECT_IMAGES } from '../harness/real-node/build-images.js';
import { imagesDir, NODE_IMAGES } from '../harness/real-node/images.js';
import { repoPath } from '../helpers/repo.js';
import { computeJobId, natsCredsSecretName } from '../../operator/src/controller/index.js';
import { diffMachine, snapshotMachine, type MachineState } from '../harness/real-node/machine-state.js';
import { GUARD_CHAINS, guardInstalled, NODE_NAME } from '../harness/real-node/network.js';
import { GPU_RESOURCE, RealCluster } from '../harness/real-node/node.js';
import { cleanupStaleNode } from '../harness/real-node/teardown.js';
import { HOST_NETWORK_POLICY } from '../harness/real-node/addons.js';
import { resumedLines } from '../helpers/trainer-log.js';

let cluster: RealCluster | undefined;
let before: MachineState | undefined;
let kubectl = '';
const log = (line: string): void => {
  process.stderr.write(`[real-node] ${line}\n`);
};

test.before(async () => {
  kubectl = await ensureBinary('kubectl', { log });
  before = await snapshotMachine();
  cluster = await RealCluster.start({ log });
});

test.after.always(async () => {
  await cluster?.close();
});

function c(): RealCluster {
  if (cluster === undefined) throw new Error('real node not started');
  return cluster;
}

async function k(args: readonly string[], stdin?: string): Promise<string> {
  const r = await runKubectl(kubectl, c().controlPlane.kubeconfigPath, args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function pod(name: string, script: string, extra: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 2,
      containers: [{ name: 'main', image: NODE_IMAGES.debian, imagePullPolicy: 'Never', command: ['bash', '-c', script] }],
      ...extra,
    },
  };
}

test.serial('node - registers Ready with the guard in place before any pod', async (t) => {
  const core = c().kc.makeApiClient(CoreV1Api);
  const node = await core.readNode({ name: NODE_NAME });
  t.true(node.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
  t.true(await guardInstalled());
  t.is(node.status?.nodeInfo?.kubeletVersion, await binaryVersion('kubelet'));
  t.regex(node.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\//);
});

test.serial('pod - containers, volumes, logs and exec', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-pod');
  await k(['-n', ns, 'create', 'configmap', 'cfg', '--from-literal=greeting=hello-from-configmap']);
  await k(['-n', ns, 'create', 'secret', 'generic', 'sec', '--from-literal=token=s3cret']);
  const script = [
    'echo init-said=$(cat /shared/msg)',
    'echo configmap=$(cat /cfg/greeting)',
    'echo secret=$(cat /sec/token)',
    'echo token-bytes=$(wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token)',
    'echo namespace=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)',
    'sleep 600',
  ].join('; ');
  const p = pod('vols', script, {
    restartPolicy: 'Always',
    initContainers: [
      {
        name: 'init',
        image: NODE_IMAGES.debian,
        imagePullPolicy: 'Never',
        command: ['bash', '-c', 'echo written-by-init > /shared/msg'],
        volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
      },
    ],
  });
  const main = p.spec?.containers[0];
  if (main === undefined) throw new Error('no container');
  main.volumeMounts = [
    { name: 'shared', mountPath: '/shared' },
    { name: 'cfg', mountPath: '/cfg' },
    { name: 'sec', mountPath: '/sec' },
  ];
  if (p.spec !== undefined) {
    p.spec.volumes = [
      { name: 'shared', emptyDir: {} },
      { name: 'cfg', configMap: { name: 'cfg' } },
      { name: 'sec', secret: { secretName: 'sec' } },
    ];
  }
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(p));
  await waitForPodPhase(c().kc, ns, 'vols', ['Running'], 120_000);
  let logs = '';
  for (let i = 0; i < 40 && !logs.includes('namespace='); i++) {
    logs = await k(['-n', ns, 'logs', 'vols']);
    await new Promise((r) => setTimeout(r, 250));
  }
  t.regex(logs, /init-said=written-by-init/);
  t.regex(logs, /configmap=hello-from-configmap/);
  t.regex(logs, /secret=s3cret/);
  t.regex(logs, new RegExp(`namespace=${ns}`));
  const tokenBytes = Number(/token-bytes=(\d+)/.exec(logs)?.[1]);
  t.true(tokenBytes > 100, `projected token of ${tokenBytes} bytes`);
  t.is((await k(['-n', ns, 'exec', 'vols', '-c', 'main', '--', 'cat', '/cfg/greeting'])).trim(), 'hello-from-configmap');
  await k(['delete', 'namespace', ns, '--wait=false']);
});

test.serial('network - Services through kube-proxy, names through CoreDNS, the API server from a pod', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-net');
  // The API server and CoreDNS are the servers here, both reached through their Services, by name.
  const client = pod(
    'client',
    [
      'getent hosts kubernetes.default.svc.cluster.local',
      'getent hosts kube-dns.kube-system.svc.cluster.local',
      'exec 3<>/dev/tcp/kubernetes.default.svc.cluster.local/443 && echo apiserver-connected',
      'if getent hosts example.com; then echo outside-name-resolved; else echo outside-name-refused; fi',
    ].join('; '),
  );
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(client));
  const done = await waitForPodPhase(c().kc, ns, 'client', ['Succeeded', 'Failed'], 120_000);
  const logs = await k(['-n', ns, 'logs', 'client']);
  t.is(done.status?.phase, 'Succeeded', logs);
  t.regex(logs, /^10\.96\.0\.1\s+kubernetes\.default\.svc\.cluster\.local/m);
  t.regex(logs, /^10\.96\.0\.10\s+kube-dns\.kube-system\.svc\.cluster\.local/m);
  t.regex(logs, /apiserver-connected/);
  t.regex(logs, /outside-name-refused/);
  await k(['delete', 'namespace', ns, '--wait=false']);
});

test.serial('pvc - a claim gets a local-path volume whose data outlives the pod', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-pvc');
  await k(
    ['-n', ns, 'apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    }),
  );
  const withClaim = (name: string, script: string): V1Pod => {
    const p = pod(name, script);
    if (p.spec === undefined) throw new Error('no spec');
    p.spec.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }];
    const main = p.spec.containers[0];
    if (main !== undefined) main.volumeMounts = [{ name: 'data', mountPath: '/data' }];
    return p;
  };
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(withClaim('writer', 'echo kept-$(hostname) > /data/f')));
  t.is((await waitForPodPhase(c().kc, ns, 'writer', ['Succeeded', 'Failed'], 120_000)).status?.phase, 'Succeeded');
  await k(['-n', ns, 'delete', 'pod', 'writer']);
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(withClaim('reader', 'cat /data/f')));
  t.is((await waitForPodPhase(c().kc, ns, 'reader', ['Succeeded', 'Failed'], 120_000)).status?.phase, 'Succeeded');
  t.is((await k(['-n', ns, 'logs', 'reader'])).trim(), 'kept-writer');
  await k(['delete', 'namespace', ns, '--wait=false']);
});

test.serial('gpu - a pod with an nvidia.com/gpu limit schedules and is given device IDs', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-gpu');
  const p = pod('gpu', 'echo visible=$NVIDIA_VISIBLE_DEVICES');
  const main = p.spec?.containers[0];
  if (main === undefined) throw new Error('no container');
  main.resources = { limits: { [GPU_RESOURCE]: '2' } };
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(p));
  const done = await waitForPodPhase(c().kc, ns, 'gpu', ['Succeeded', 'Failed'], 120_000);
  t.is(done.status?.phase, 'Succeeded');
  const logs = await k(['-n', ns, 'logs', 'gpu']);
  t.regex(logs, /^visible=fake-gpu-\d+,fake-gpu-\d+$/m);
  await k(['delete', 'namespace', ns, '--wait=false']);
});

test.serial('images - a broken Dockerfile fails the build', async (t) => {
  const ctx = await mkdtemp(join(tmpdir(), 'gmt-broken-image-'));
  try {
    await writeFile(join(ctx, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN echo about to fail && exit 3\n');
    const err = await t.throwsAsync(buildDockerfile('Dockerfile', 'localhost/gmt-broken:test', join(ctx, 'out.tar'), log, ctx));
    t.true(err instanceof ImageBuildError);
    t.regex(err.message, /exit status 3|exit code 3|exited with 3|status 3/);
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
});

async function helm(args: readonly string[]): Promise<string> {
  const home = join(c().dir, 'helm');
  return run(await ensureBinary('helm', { log }), args, {
    timeoutMs: 400_000,
    env: {
      ...process.env,
      KUBECONFIG: c().controlPlane.kubeconfigPath,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
}

test.serial('chart - helm install with the images built from images/ runs the operator in its container and the in-cluster NATS', async (t) => {
  const operatorArchive = join(imagesDir(), 'operator.image.tar');
  await buildDockerfile(PROJECT_IMAGES.operator.dockerfile, PROJECT_IMAGES.operator.ref, operatorArchive, log);
  const natsArchive = join(imagesDir(), 'nats.image.tar');
  await buildNatsImage(await ensureBinary('nats-server', { log }), 'localhost/nats:local', natsArchive);
  await c().importImages([operatorArchive, natsArchive]);
  const [repo, tag] = PROJECT_IMAGES.operator.ref.split(/:(?=[^:]+$)/);
  const out = await helm([
    'install',
    'gmt',
    repoPath('charts/gmt-operator'),
    '-n',
    'gmt-system',
    '--create-namespace',
    '--set',
    `image.repository=${repo ?? ''},image.tag=${tag ?? ''},image.pullPolicy=Never`,
    '--set',
    'nats.inCluster.image.repository=localhost/nats,nats.inCluster.image.tag=local,nats.inCluster.image.pullPolicy=Never',
    // The node has 2 CPUs shared with the tests; the chart's NATS requests 500m/512Mi by default.
    '--set',
    'nats.inCluster.resources.requests.cpu=100m,nats.inCluster.resources.requests.memory=64Mi',
    '--wait',
    '--timeout',
    '300s',
  ]);
  t.regex(out, /STATUS: deployed/);
  const pods = await k([
    '-n',
    'gmt-system',
    'get',
    'pods',
    '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].ready}{"\\n"}{end}',
  ]);
  const lines = pods.trim().split('\n');
  t.true(
    lines.some((l) => /operator.* Running true$/.test(l)),
    pods,
  );
  t.true(
    lines.some((l) => /nats.* Running true$/.test(l)),
    pods,
  );
  // The operator runs in its container with the chart's RBAC: it took the leader Lease in-cluster.
  const lease = await k(['-n', 'gmt-system', 'get', 'lease', '-o', 'jsonpath={.items[*].spec.holderIdentity}']);
  t.regex(lease, /operator/);
});

test.serial('images - the CPU trainer image builds from images/trainer.Dockerfile and starts', async (t) => {
  const archive = join(imagesDir(), 'trainer.image.tar');
  await buildDockerfile(PROJECT_IMAGES.trainer.dockerfile, PROJECT_IMAGES.trainer.ref, archive, log);
  await c().importImages([archive]);
  const ns = await createTestNamespace(c().kc, 'rn-trainer');
  const p = pod('help', '');
  const main = p.spec?.containers[0];
  if (main === undefined) throw new Error('no container');
  main.image = PROJECT_IMAGES.trainer.ref;
  delete main.command;
  main.args = ['--help'];
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(p));
  const done = await waitForPodPhase(c().kc, ns, 'help', ['Succeeded', 'Failed'], 120_000);
  const logs = await k(['-n', ns, 'logs', 'help']);
  t.is(done.status?.phase, 'Succeeded', logs);
  t.regex(logs, /gmt-train/);
  await k(['delete', 'namespace', ns, '--wait=false']);
});

/** The namespace of the tiny job that trained to Succeeded (the nats test reads its subjects). */
let tinyNs: string | undefined;

test.serial('gmt - examples/tiny.yaml applied with kubectl trains to Succeeded on the node', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-tiny');
  tinyNs = ns;
  const manifest = (await readFile(repoPath('examples/tiny.yaml'), 'utf8')).replace(/^(\s*)image: .*$/m, `$1image: ${PROJECT_IMAGES.trainer.ref}`);
  await k(['-n', ns, 'apply', '-f', '-'], manifest);
  let phase = '';
  try {
    await waitFor(
      'GmtFineTune tiny to finish',
      async () => {
        phase = (await k(['-n', ns, 'get', 'gft', 'tiny', '-o', 'jsonpath={.status.phase}'])).trim();
        return phase === 'Succeeded' || phase === 'Failed' ? phase : undefined;
      },
      { timeoutMs: 480_000, intervalMs: 2000 },
    );
  } finally {
    if (phase !== 'Succeeded') log(await k(['-n', ns, 'describe', 'gft,pods']).catch(String));
  }
  t.is(phase, 'Succeeded');
  const logs = await k(['-n', ns, 'logs', '-l', 'gmt.dev/job=tiny', '--tail=-1', '--prefix']).catch((e: unknown) => String(e));
  log(logs.split('\n').slice(-5).join('\n'));
  // The image's trainer runs native TensorFlow with the fused kernels compiled in its build stage.
  t.regex(logs, /"msg":"backend",.*"backend":"tensorflow\/cpu".*"fusedKernels":true,"kernels":"fused CPU kernels loaded/);
});

// Run in the operator image (it carries @nats-io/transport-node) from a pod of another namespace:
// connects without credentials, then with another job's, and tries to subscribe to the victim's
// subjects and to its own. Prints one RESULT line of JSON.
const INTRUDER_SCRIPT = `
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
const url = process.env.NATS_URL;
const result = { errors: [], received: {} };
try {
  const nc = await connect({ servers: url, reconnect: false });
  result.noCreds = 'connected';
  await nc.close();
} catch (e) {
  result.noCreds = String(e.message);
}
const nc = await connect({ servers: url, reconnect: false, authenticator: credsAuthenticator(readFileSync('/creds/nats.creds')) });
result.withCreds = 'connected';
void (async () => { for await (const s of nc.status()) if (s.type === 'error') result.errors.push(String(s.error.message)); })();
for (const subject of JSON.parse(process.env.SUBJECTS)) {
  result.received[subject] = 0;
  const sub = nc.subscribe(subject);
  void (async () => { try { for await (const _m of sub) result.received[subject]++; } catch (e) { result.errors.push(String(e.message)); } })();
}
await nc.flush();
await new Promise((r) => setTimeout(r, 2000));
await nc.close();
console.log('RESULT ' + JSON.stringify(result));
`;

test.serial("nats auth - a pod of another namespace cannot read a job: refused without credentials, permissions violation with another job's", async (t) => {
  if (tinyNs === undefined) throw new Error('the tiny job did not run');
  const uidA = (await k(['-n', tinyNs, 'get', 'gft', 'tiny', '-o', 'jsonpath={.metadata.uid}'])).trim();
  const idA = computeJobId({ metadata: { namespace: tinyNs, name: 'tiny', uid: uidA } });
  // A second, live job (its identity is on the server once its pods exist), in its own namespace.
  const nsB = await createTestNamespace(c().kc, 'rn-other');
  const manifest = (await readFile(repoPath('examples/tiny.yaml'), 'utf8'))
    .replace(/^(\s*)image: .*$/m, `$1image: ${PROJECT_IMAGES.trainer.ref}`)
    .replace(/^(\s*)steps: .*$/m, '$1steps: 100000');
  await k(['-n', nsB, 'apply', '-f', '-'], manifest);
  await waitFor(
    'pods of the second job',
    async () => ((await k(['-n', nsB, 'get', 'pods', '-l', 'gmt.dev/job=tiny', '-o', 'name'])).trim().split('\n').length === 2 ? true : undefined),
    {
      timeoutMs: 120_000,
    },
  );
  const uidB = (await k(['-n', nsB, 'get', 'gft', 'tiny', '-o', 'jsonpath={.metadata.uid}'])).trim();
  const idB = computeJobId({ metadata: { namespace: nsB, name: 'tiny', uid: uidB } });
  const credsB = Buffer.from(await k(['-n', nsB, 'get', 'secret', natsCredsSecretName('tiny', 0), '-o', `jsonpath={.data.nats\\.creds}`]), 'base64').toString(
    'utf8',
  );
  t.regex(credsB, /BEGIN NATS USER JWT/);

  const svc = (
    await k(['-n', 'gmt-system', 'get', 'svc', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.ports[?(@.name=="client")].port}{"\\n"}{end}'])
  )
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .find(([name, port]) => /nats$/.test(name ?? '') && port !== undefined && port !== '');
  if (svc === undefined) throw new Error('no NATS Service in gmt-system');
  const url = `nats://${svc[0] ?? ''}.gmt-system.svc.cluster.local:${svc[1] ?? ''}`;

  // The intruder: another namespace, holding the second job's credentials (as if stolen).
  const ns = await createTestNamespace(c().kc, 'rn-intruder');
  await k(['-n', ns, 'create', 'secret', 'generic', 'stolen', `--from-literal=nats.creds=${credsB}`]);
  const victim = [`gmt.${idA}.0.>`, `gmt.${idA}.progress`, 'gmt.>'];
  const own = `gmt.${idB}.0.>`;
  const p = pod('intruder', '', {
    volumes: [{ name: 'creds', secret: { secretName: 'stolen' } }],
  });
  const main = p.spec?.containers[0];
  if (main === undefined) throw new Error('no container');
  main.image = PROJECT_IMAGES.operator.ref;
  main.workingDir = '/app';
  main.command = ['node', '--input-type=module', '-e', INTRUDER_SCRIPT];
  main.env = [
    { name: 'NATS_URL', value: url },
    { name: 'SUBJECTS', value: JSON.stringify([...victim, own]) },
  ];
  main.volumeMounts = [{ name: 'creds', mountPath: '/creds', readOnly: true }];
  await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(p));
  const done = await waitForPodPhase(c().kc, ns, 'intruder', ['Succeeded', 'Failed'], 120_000);
  const logs = await k(['-n', ns, 'logs', 'intruder']);
  t.is(done.status?.phase, 'Succeeded', logs);
  const line = logs.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`no RESULT line in the intruder's log:\n${logs}`);
  const result = z
    .object({ noCreds: z.string(), withCreds: z.string(), errors: z.array(z.string()), received: z.record(z.string(), z.number()) })
    .parse(JSON.parse(line.slice('RESULT '.length)));
  log(`intruder: ${JSON.stringify(result)}`);
  t.regex(result.noCreds, /Authorization Violation/i, 'no credentials: the connection is refused');
  t.is(result.withCreds, 'connected', "the other job's credentials are valid");
  for (const subject of victim) {
    t.true(
      result.errors.some((e) => /Permissions Violation for Subscription/i.test(e) && e.includes(subject)),
      `subscribing to ${subject} is refused: ${JSON.stringify(result.errors)}`,
    );
  }
  t.false(
    result.errors.some((e) => e.includes(own)),
    `its own job's subjects are allowed: ${JSON.stringify(result.errors)}`,
  );
  for (const subject of victim) t.is(result.received[subject], 0, `nothing of ${subject} reached it`);
  await k(['delete', 'namespace', ns, nsB, '--wait=false']);
});

test.serial(
  'gmt - a trainer container killed through containerd restarts the gang as attempt 1, which resumes from the checkpoint claim to Succeeded',
  async (t) => {
    const ns = await createTestNamespace(c().kc, 'rn-kill');
    const claim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'ckpt' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    };
    await k(['-n', ns, 'apply', '-f', '-'], JSON.stringify(claim));
    // tiny.yaml ends inside spec: the checkpoint block appended at two spaces belongs to spec.
    const manifest =
      (await readFile(repoPath('examples/tiny.yaml'), 'utf8'))
        .replace(/^(\s*)image: .*$/m, `$1image: ${PROJECT_IMAGES.trainer.ref}`)
        .replace(/^(\s*)name: tiny$/m, '$1name: kill')
        .replace(/^(\s*)steps: .*$/m, '$1steps: 200')
        .trimEnd() + '\n  checkpoint:\n    interval: 10\n    volume:\n      persistentVolumeClaim:\n        claimName: ckpt\n';
    await k(['-n', ns, 'apply', '-f', '-'], manifest);
    const StatusSchema = z.object({
      phase: z.string().optional(),
      step: z.number().optional(),
      attempt: z.number().optional(),
      lastCheckpoint: z.string().optional(),
      restarts: z.object({ total: z.number().optional() }).optional(),
    });
    const status = async (): Promise<z.infer<typeof StatusSchema>> =>
      StatusSchema.parse(JSON.parse((await k(['-n', ns, 'get', 'gft', 'kill', '-o', 'jsonpath={.status}'])) || '{}'));
    const before = await waitFor(
      'a checkpoint and a few more steps',
      async () => {
        const s = await status();
        if (s.phase === 'Succeeded' || s.phase === 'Failed') throw new Error(`finished before the kill: ${JSON.stringify(s)}`);
        return s.lastCheckpoint !== undefined && (s.step ?? 0) >= 12 ? s : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1000 },
    );
    const containerId = (await k(['-n', ns, 'get', 'pod', 'kill-a0-r1', '-o', 'jsonpath={.status.containerStatuses[0].containerID}'])).trim();
    t.regex(containerId, /^containerd:\/\/[0-9a-f]+$/);
    log(`killing rank 1's container at step ${String(before.step)} (checkpoint ${before.lastCheckpoint ?? ''})`);
    await c().ctr(['tasks', 'kill', '--signal', 'SIGKILL', containerId.replace('containerd://', '')]);
    let done: z.infer<typeof StatusSchema> = {};
    try {
      done = await waitFor(
        'kill to finish',
        async () => {
          const s = await status();
          return s.phase === 'Succeeded' || s.phase === 'Failed' ? s : undefined;
        },
        { timeoutMs: 480_000, intervalMs: 2000 },
      );
    } finally {
      if (done.phase !== 'Succeeded') log(await k(['-n', ns, 'describe', 'gft,pods']).catch(String));
    }
    log(`kill: ${JSON.stringify(done)}`);
    t.is(done.phase, 'Succeeded');
    t.is(done.attempt, 1);
    t.is(done.restarts?.total, 1);
    const logs = await k(['-n', ns, 'logs', 'kill-a1-r0']);
    const resumed = resumedLines(logs);
    t.is(resumed.length, 1, logs);
    t.true((resumed[0]?.step ?? 0) >= 10, `attempt 1 resumed from a checkpoint of attempt 0: ${JSON.stringify(resumed)}`);
    await k(['delete', 'namespace', ns, '--wait=false']);
  },
);

test.serial('chart - helm uninstall removes the operator', async (t) => {
  await helm(['uninstall', 'gmt', '-n', 'gmt-system', '--wait', '--timeout', '120s']);
  const left = await k(['-n', 'gmt-system', 'get', 'deploy', '-o', 'name']);
  t.is(left.trim(), '');
});

/** Packets the guard's catch-all REJECT rule for the pod bridge has matched. */
async function guardRejects(): Promise<number> {
  const out = await run('iptables', ['-w', '-t', 'filter', '-L', GUARD_CHAINS.forward, '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes('REJECT') && l.includes('pods reach nothing beyond this node'));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
}

test.serial('guard - a pod dialing an address outside the machine fails fast', async (t) => {
  // The outside address is TEST-NET-2 (RFC 5737). It is routed into a port-less local bridge for
  // the duration of the test, so even if the guard let the packet pass it would be discarded on
  // this machine, never sent off it. (Not 192.0.2.1: on this machine kind that is the real gateway.)
  const target = '198.51.100.7';
  const sink = 'gmt-sink0';
  await run('ip', ['link', 'add', sink, 'type', 'bridge']);
  try {
    await run('ip', ['link', 'set', sink, 'up']);
    await run('ip', ['route', 'add', `${target}/32`, 'dev', sink]);
    const ns = await createTestNamespace(c().kc, 'rn-guard');
    const rejectsBefore = await guardRejects();
    await k(
      ['-n', ns, 'apply', '-f', '-'],
      JSON.stringify(
        pod(
          'dial',
          `s=$(date +%s%N); if timeout 20 bash -c 'exec 3<>/dev/tcp/${target}/443'; then echo CONNECTED; fi; echo elapsed-ms=$(( ($(date +%s%N) - s) / 1000000 ))`,
        ),
      ),
    );
    await waitForPodPhase(c().kc, ns, 'dial', ['Succeeded', 'Failed'], 120_000);
    const logs = await k(['-n', ns, 'logs', 'dial']);
    t.notRegex(logs, /CONNECTED/);
    t.regex(logs, /No route to host/);
    const elapsed = Number(/elapsed-ms=(\d+)/.exec(logs)?.[1]);
    t.true(elapsed < 3000, `the dial failed after ${elapsed} ms`);
    t.true((await guardRejects()) > rejectsBefore, 'the guard rejected the packet');
    await k(['delete', 'namespace', ns, '--wait=false']);
  } finally {
    await tryRun('ip', ['link', 'del', sink]);
  }
});

test.serial('guard - a hostNetwork pod (which would bypass the guard) is refused by the API server', async (t) => {
  const ns = await createTestNamespace(c().kc, 'rn-hostnet');
  const r = await runKubectl(
    kubectl,
    c().controlPlane.kubeconfigPath,
    ['-n', ns, 'apply', '-f', '-'],
    JSON.stringify(pod('hostnet', 'true', { hostNetwork: true })),
  );
  t.not(r.code, 0);
  t.regex(r.stderr, new RegExp(`forbidden: ValidatingAdmissionPolicy '${HOST_NETWORK_POLICY}'`));
  t.regex(r.stderr, /hostNetwork pods are not allowed/);
  // The same pod without hostNetwork is admitted (the policy refuses only that).
  const ok = await runKubectl(
    kubectl,
    c().controlPlane.kubeconfigPath,
    ['-n', ns, 'create', '--dry-run=server', '-f', '-'],
    JSON.stringify(pod('hostnet', 'true')),
  );
  t.is(ok.code, 0, ok.stderr);
  await k(['delete', 'namespace', ns, '--wait=false']);
});

test.serial('teardown - leaves the machine as it was before the node started', async (t) => {
  await c().close();
  const after = await snapshotMachine();
  if (before === undefined) throw new Error('no snapshot');
  t.deepEqual(diffMachine(before, after), []);
  const leftovers = await new Promise<string>((resolve) => execFile('pgrep', ['-a', '-f', c().dir], (_e, out) => resolve(out)));
  t.is(leftovers.trim(), '', 'no process of the node is left');
});

test.serial('stale - a node whose owner was SIGKILLed is undone (as the next start and cluster:down do), and the machine is as before', async (t) => {
  if (before === undefined) throw new Error('no snapshot');
  const child = spawn(process.execPath, [fileURLToPath(new URL('./real-node-owner.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^UP (\S+)$/m.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`owner exited (${String(code)}) before its node was up`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.true(await guardInstalled(), 'the killed owner left its node (and guard) behind');
  t.true(await cleanupStaleNode(dir, log));
  t.deepEqual(diffMachine(before, await snapshotMachine()), []);
  const leftovers = await new Promise<string>((resolve) => execFile('pgrep', ['-a', '-f', dir], (_e, out) => resolve(out)));
  t.is(leftovers.trim(), '', 'no process of the stale node is left');
});
