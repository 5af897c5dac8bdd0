// charts/gmt-operator: `helm lint` and `helm template` with the main value combinations, the
// rendered objects, and the strict values schema. Runs the pinned helm (and nats-server to check the
// in-cluster NATS config) from the binary cache; no cluster.

import test from 'ava';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { buildCrd } from '../../operator/src/api/index.js';
import { NATS_RESOLVER_DIR } from '../../operator/src/controller/index.js';
import {
  AttemptRegistry,
  authorityPublic,
  createNatsAuthority,
  encodeOperatorJwt,
  encodeSystemAccountJwt,
  natsServerAuthConfig,
} from '../../contract/nats-identity.js';
import { binaryVersion, ensureBinary } from '../harness/binaries.js';
import { repoPath } from '../helpers/repo.js';

const CHART = repoPath('charts/gmt-operator');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

function run(bin: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, [...args], { maxBuffer: 32 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

async function helm(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(await ensureBinary('helm'), args);
}

/** `helm template` → parsed objects; throws with helm's stderr on failure. */
async function render(args: readonly string[] = [], chart = CHART): Promise<K8sObject[]> {
  const r = await helm(['template', 'rel', chart, '--namespace', 'gmt-system', ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]?.message ?? ''}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

const kinds = (objs: readonly K8sObject[]): string[] => objs.map((o) => o.kind).sort();
const one = (objs: readonly K8sObject[], kind: string, name?: string): K8sObject => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name !== undefined ? ` ${name}` : ''}, got ${found.length}`);
  return found[0]!;
};

interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: unknown;
  securityContext: Record<string, unknown>;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes?: unknown[];
}
const podSpec = (o: K8sObject): PodSpec => (o['spec'] as { template: { spec: PodSpec } }).template.spec;
const flag = (c: Container, name: string): string | undefined => {
  const i = c.args.indexOf(name);
  return i < 0 ? undefined : c.args[i + 1];
};

test('chart - helm lint passes with default values, monitoring on, and external NATS', async (t) => {
  for (const set of [
    [],
    ['--set', 'metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true'],
    ['--set', 'nats.inCluster.enabled=false,nats.external.url=nats://nats.example:4222'],
  ]) {
    const r = await helm(['lint', '--strict', CHART, ...set]);
    t.is(r.code, 0, `helm lint ${set.join(' ')}:\n${r.stdout}${r.stderr}`);
  }
});

test('chart - default render: operator Deployment, RBAC, CRD, metrics Service, in-cluster NATS; no monitors', async (t) => {
  const objs = await render();
  const nonDashboards = objs.filter((o) => !(o.kind === 'ConfigMap' && o.metadata.labels?.['grafana_dashboard'] === '1'));
  t.deepEqual(kinds(nonDashboards), [
    'ClusterRole',
    'ClusterRoleBinding',
    'ConfigMap',
    'CustomResourceDefinition',
    'Deployment',
    'Role',
    'Role',
    'RoleBinding',
    'RoleBinding',
    'Service',
    'Service',
    'ServiceAccount',
    'StatefulSet',
  ]);
  const dep = one(objs, 'Deployment');
  t.is(dep.metadata.namespace, 'gmt-system');
  t.is((dep['spec'] as { replicas: number }).replicas, 1);
  const spec = podSpec(dep);
  t.is(spec.serviceAccountName, one(objs, 'ServiceAccount').metadata.name);
  t.like(spec.securityContext, { runAsNonRoot: true });
  const c = spec.containers[0]!;
  t.is(c.image, 'gmt-operator:0.1.0');
  t.like(c.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  t.deepEqual(
    [c.livenessProbe.httpGet, c.readinessProbe.httpGet],
    [
      { path: '/healthz', port: 'metrics' },
      { path: '/readyz', port: 'metrics' },
    ],
  );
  t.deepEqual(c.ports, [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
  t.is(flag(c, '--leader-elect'), 'true');
  t.is(flag(c, '--metrics-port'), '8080');
  t.is(flag(c, '--nats-url'), 'nats://rel-gmt-operator-nats.gmt-system.svc:4222');
  t.is(flag(c, '--namespace'), undefined, 'watches all namespaces');
  t.deepEqual(c.env[0], { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
  t.truthy(c.resources);
  const role = one(objs, 'Role', 'rel-gmt-operator-leader-election');
  t.is(role.metadata.namespace, 'gmt-system');
  t.deepEqual(role['rules'], [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
  // Per-job NATS identities by default: the operator manages the keys and reads only its two Secrets.
  t.is(flag(c, '--nats-keys-secret'), 'rel-gmt-operator-nats-keys');
  t.is(flag(c, '--nats-server-secret'), 'rel-gmt-operator-nats-server');
  const ids = one(objs, 'Role', 'rel-gmt-operator-nats-identities');
  t.deepEqual(ids['rules'], [
    { apiGroups: [''], resources: ['secrets'], resourceNames: ['rel-gmt-operator-nats-keys', 'rel-gmt-operator-nats-server'], verbs: ['get', 'patch'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ]);
  t.like(one(objs, 'RoleBinding', 'rel-gmt-operator-nats-identities')['roleRef'], { kind: 'Role', name: 'rel-gmt-operator-nats-identities' });
  const cr = one(objs, 'ClusterRole')['rules'] as { resources: string[]; verbs: string[] }[];
  t.deepEqual(cr.find((r) => r.resources.includes('secrets'))?.verbs, ['create', 'patch', 'delete'], 'secrets: never get, list or watch');
});

test('chart - the ClusterRole has exactly the rules of operator/rbac/role.yaml', async (t) => {
  const docs = parseAllDocuments(await readFile(repoPath('operator/rbac/role.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
  const want = docs.find((o) => o.kind === 'ClusterRole')!['rules'];
  t.deepEqual(one(await render(), 'ClusterRole')['rules'], want);
});

test('chart - watchNamespaces: one RoleBinding per namespace instead of the ClusterRoleBinding, and --namespace', async (t) => {
  const objs = await render(['--set', 'watchNamespaces={team-a,team-b}']);
  t.is(objs.filter((o) => o.kind === 'ClusterRoleBinding').length, 0);
  const rbs = objs.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'rel-gmt-operator');
  t.deepEqual(
    rbs.map((o) => o.metadata.namespace),
    ['team-a', 'team-b'],
  );
  t.is(flag(podSpec(one(objs, 'Deployment')).containers[0]!, '--namespace'), 'team-a,team-b');
});

test('chart - the CRD template is the generated CRD plus the keep policy, chart labels and extra annotations', async (t) => {
  const crd = one(await render(['--set-string', 'crds.annotations.gmt\\.dev/revision=2']), 'CustomResourceDefinition');
  const gen = buildCrd() as unknown as K8sObject;
  t.deepEqual(crd['spec'], JSON.parse(JSON.stringify(gen['spec'])));
  t.is(crd.metadata.name, gen.metadata.name);
  t.deepEqual(crd.metadata.annotations, { 'helm.sh/resource-policy': 'keep', 'gmt.dev/revision': '2' });
  t.like(crd.metadata.labels, { ...gen.metadata.labels, 'app.kubernetes.io/managed-by': 'Helm' });
  const objs = await render(['--set', 'crds.install=false']);
  t.is(objs.filter((o) => o.kind === 'CustomResourceDefinition').length, 0);
  const noKeep = one(await render(['--set', 'crds.keep=false']), 'CustomResourceDefinition');
  t.is(noKeep.metadata.annotations, undefined);
});

test('chart - ServiceMonitor and PodMonitor only with the monitoring.coreos.com/v1 capability and the values', async (t) => {
  const on = ['--set', 'metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true'];
  t.deepEqual(
    (await render(on)).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1'),
    [],
    'no capability: not rendered',
  );
  t.deepEqual(
    (await render(['--api-versions', 'monitoring.coreos.com/v1'])).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1'),
    [],
    'not enabled: not rendered',
  );
  const objs = await render([...on, '--api-versions', 'monitoring.coreos.com/v1']);
  const sm = one(objs, 'ServiceMonitor');
  const svc = one(objs, 'Service', 'rel-gmt-operator-metrics');
  t.deepEqual((sm['spec'] as { selector: { matchLabels: unknown } }).selector.matchLabels, (svc['spec'] as { selector: unknown }).selector);
  t.like(sm['spec'], { endpoints: [{ port: 'metrics', path: '/metrics', honorLabels: true }] });
  const pm = one(objs, 'PodMonitor');
  t.like(pm['spec'], {
    namespaceSelector: { any: true },
    selector: { matchLabels: { 'gmt.dev/role': 'worker' } },
    podMetricsEndpoints: [{ port: 'metrics', honorLabels: true }],
  });
});

test('chart - in-cluster NATS: StatefulSet + Service + a config tuned for collectives that nats-server accepts', async (t) => {
  const objs = await render();
  const sts = one(objs, 'StatefulSet');
  // The default image runs the nats-server version every test runs (test/tools/nats/go.mod).
  t.is(podSpec(sts).containers[0]!.image, `nats:${(await binaryVersion('nats-server')).replace(/^v/, '')}-alpine`);
  one(objs, 'Service', 'rel-gmt-operator-nats');
  const conf = (one(objs, 'ConfigMap', 'rel-gmt-operator-nats')['data'] as Record<string, string>)['nats-server.conf']!;
  t.regex(conf, /^max_payload: 8MB$/m);
  t.regex(conf, /^max_pending: 256MB$/m);
  t.regex(conf, /^write_deadline: "30s"$/m);
  // Operator mode by default: the auth config comes from the Secret the operator writes.
  t.regex(conf, /^include "auth\/auth\.conf"$/m);
  t.notRegex(conf, /^\s*tls \{/m, 'no TLS unless asked for');
  const spec = podSpec(sts) as PodSpec & { containers: (Container & { volumeMounts: { name: string; mountPath: string }[] })[] };
  t.deepEqual(
    spec.containers[0]!.volumeMounts.map((m) => m.mountPath),
    ['/etc/nats', '/etc/nats/auth', NATS_RESOLVER_DIR.replace(/\/jwt$/, '')],
  );
  t.like(
    (spec.volumes ?? []).find((v) => (v as { name: string }).name === 'auth'),
    { secret: { secretName: 'rel-gmt-operator-nats-server' } },
  );
  // nats-server accepts the chart's config with the auth config the operator writes.
  const dir = await mkdtemp(join(tmpdir(), 'gmt-chart-nats-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nats.conf'), conf);
  await mkdir(join(dir, 'auth'));
  await writeFile(join(dir, 'auth', 'auth.conf'), await operatorAuthConfig(join(dir, 'jwt')));
  const check = await run(await ensureBinary('nats-server'), ['-t', '-c', join(dir, 'nats.conf')]);
  t.is(check.code, 0, `nats-server -t rejected the config:\n${check.stdout}${check.stderr}`);
});

/** The auth.conf the operator writes into <fullname>-nats-server, for a fresh authority. */
async function operatorAuthConfig(resolverDir: string): Promise<string> {
  const a = createNatsAuthority();
  const p = authorityPublic(a);
  return natsServerAuthConfig({
    operatorJwt: await encodeOperatorJwt(a),
    systemAccount: p.systemAccount,
    systemAccountJwt: await encodeSystemAccountJwt(a),
    jobsAccount: p.jobsAccount,
    jobsAccountJwt: await new AttemptRegistry(a).accountJwt(),
    resolverDir,
  });
}

test('chart - nats.insecureNoAuth=true: no auth include, no identities, a loud comment; only by that value', async (t) => {
  const objs = await render(['--set', 'nats.insecureNoAuth=true']);
  const conf = (one(objs, 'ConfigMap', 'rel-gmt-operator-nats')['data'] as Record<string, string>)['nats-server.conf']!;
  t.notRegex(conf, /include/);
  t.regex(conf, /NO AUTHENTICATION/);
  const c = podSpec(one(objs, 'Deployment')).containers[0]!;
  t.is(flag(c, '--nats-keys-secret'), undefined);
  t.false(objs.some((o) => o.metadata.name === 'rel-gmt-operator-nats-identities'));
  const v = parseYaml(await readFile(join(CHART, 'values.yaml'), 'utf8')) as { nats: { insecureNoAuth: boolean } };
  t.false(v.nats.insecureNoAuth, 'authentication is the default');
});

test('chart - nats.inCluster.tls: server TLS from the Secret, the CA for the operator and the workers', async (t) => {
  const objs = await render(['--set', 'nats.inCluster.tls.enabled=true,nats.inCluster.tls.secretName=nats-tls']);
  const conf = (one(objs, 'ConfigMap', 'rel-gmt-operator-nats')['data'] as Record<string, string>)['nats-server.conf']!;
  t.regex(conf, /tls \{\n\s+cert_file: "\/etc\/nats\/tls\/tls\.crt"\n\s+key_file: "\/etc\/nats\/tls\/tls\.key"/);
  const sts = podSpec(one(objs, 'StatefulSet'));
  t.like(
    (sts.volumes ?? []).find((v) => (v as { name: string }).name === 'tls'),
    { secret: { secretName: 'nats-tls' } },
  );
  const dep = podSpec(one(objs, 'Deployment'));
  const c = dep.containers[0]!;
  t.is(flag(c, '--nats-ca-file'), '/var/run/gmt/nats-ca/ca.crt');
  t.true(c.env.some((e) => e.name === 'NODE_EXTRA_CA_CERTS' && e.value === '/var/run/gmt/nats-ca/ca.crt'));
  t.deepEqual(
    (dep.volumes ?? []).find((v) => (v as { name: string }).name === 'nats-ca'),
    { name: 'nats-ca', secret: { secretName: 'nats-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
  );
  const missing = await helm(['template', 'rel', CHART, '--set', 'nats.inCluster.tls.enabled=true']);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /nats\.inCluster\.tls\.secretName/);
});

test('chart - external NATS: no StatefulSet, the URL, and a credentials Secret mounted into the operator', async (t) => {
  const objs = await render(['--set', 'nats.inCluster.enabled=false,nats.external.url=tls://nats.example:4222,nats.external.credentials=CREDS']);
  t.is(objs.filter((o) => o.kind === 'StatefulSet').length, 0);
  const secret = one(objs, 'Secret');
  t.deepEqual(secret['stringData'], { 'nats.creds': 'CREDS' });
  const spec = podSpec(one(objs, 'Deployment'));
  const c = spec.containers[0]!;
  t.is(flag(c, '--nats-url'), 'tls://nats.example:4222');
  t.true(c.env.some((e) => e.name === 'NATS_CREDS' && e.value === '/var/run/gmt/nats/nats.creds'));
  t.true(JSON.stringify(spec.volumes).includes(secret.metadata.name));
  const existing = await render(['--set', 'nats.inCluster.enabled=false,nats.external.url=nats://n:4222,nats.external.existingSecret=mine']);
  t.is(existing.filter((o) => o.kind === 'Secret').length, 0);
  t.true(JSON.stringify(podSpec(one(existing, 'Deployment')).volumes).includes('"secretName":"mine"'));
  const plain = await render(['--set', 'nats.inCluster.enabled=false,nats.external.url=nats://n:4222']);
  t.false(podSpec(one(plain, 'Deployment')).containers[0]!.env.some((e) => e.name === 'NATS_CREDS'));
  const missing = await helm(['template', 'rel', CHART, '--set', 'nats.inCluster.enabled=false']);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /nats\.external\.url/);
});

test('chart - dashboards/*.json become grafana_dashboard ConfigMaps', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gmt-chart-dash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const chart = join(dir, 'gmt-operator');
  await cp(CHART, chart, { recursive: true });
  const dashboard = { title: 'GMT test', panels: [{ type: 'timeseries', title: 'a <b> & "c"' }] };
  await writeFile(join(chart, 'dashboards', 'My_Test.json'), JSON.stringify(dashboard, null, 2));
  const objs = await render([], chart);
  const cm = one(objs, 'ConfigMap', 'rel-gmt-operator-dashboard-my-test');
  t.is(cm.metadata.labels?.['grafana_dashboard'], '1');
  t.deepEqual(JSON.parse((cm['data'] as Record<string, string>)['My_Test.json']!), dashboard);
  const off = await render(['--set', 'dashboards.enabled=false'], chart);
  t.is(off.filter((o) => o.metadata.labels?.['grafana_dashboard'] === '1').length, 0);
});

test('chart - the values schema rejects bad values with a message naming the field', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--set', 'replicas=-1'], /\/replicas.*minimum/],
    [['--set', 'replicas=two'], /\/replicas/],
    [['--set', 'unknownKey=1'], /additional properties 'unknownKey' not allowed/],
    [['--set', 'metrics.bogus=1'], /\/metrics.*additional properties 'bogus' not allowed/],
    [['--set', 'image.pullPolicy=Sometimes'], /\/image\/pullPolicy.*one of/],
    [['--set', 'metrics.port=70000'], /\/metrics\/port.*maximum/],
    [['--set', 'nats.inCluster.writeDeadline=soon'], /\/nats\/inCluster\/writeDeadline/],
    [['--set', 'nats.external.url=http://x'], /\/nats\/external\/url/],
    [['--set', 'watchNamespaces={Bad_NS}'], /\/watchNamespaces\/0/],
  ];
  for (const [args, message] of cases) {
    const r = await helm(['template', 'rel', CHART, ...args]);
    t.not(r.code, 0, `${args.join(' ')} is accepted`);
    t.regex(r.stderr, message, `${args.join(' ')}: ${r.stderr}`);
  }
});

test('chart - values.yaml is valid against the schema and every top-level key is in it', async (t) => {
  const schema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as {
    additionalProperties: boolean;
    properties: Record<string, unknown>;
  };
  t.false(schema.additionalProperties);
  const values = parseYaml(await readFile(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  for (const k of Object.keys(values)) t.truthy(schema.properties[k], `values.yaml key ${k} is in the schema`);
});
