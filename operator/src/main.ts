/**
 * gmt-operator: flags/env → startOperator. Structured JSON logs on stderr, graceful shutdown on
 * SIGTERM/SIGINT. Exit codes: 0 after a requested shutdown, 1 on a fatal error (including lost
 * leadership: like controller-runtime, the process exits and its Deployment restarts it as a
 * fresh candidate), 2 on bad flags.
 *
 *   --kubeconfig PATH            (env KUBECONFIG; default: in-cluster, then ~/.kube/config)
 *   --namespace NS[,NS…]         namespaces to watch (env GMT_WATCH_NAMESPACES; default: all)
 *   --nats-url URL               progress subscription and the workers' default NATS (env GMT_NATS_URL)
 *   --metrics-port N             /metrics /healthz /readyz (env GMT_METRICS_PORT; default 8080; -1 off)
 *   --leader-elect true|false    (env GMT_LEADER_ELECT; default true)
 *   --leader-election-namespace  (env POD_NAMESPACE; default gmt-system)
 *   --leader-election-id NAME    Lease name (default gmt-operator-leader)
 *   --workers N                  concurrent reconciles (default 4)
 *   --trainer-metrics-port N     the workers' metrics port (default 9400; 0 off)
 */
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { startOperator, type Logger } from './controller/index.js';
import { startTracing } from '../../contract/tracing.js';

const FlagsSchema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().default(''),
  natsUrl: z.string().default(''),
  natsCreds: z.string().default(''),
  metricsPort: z.coerce.number().int().min(-1).max(65535).default(8080),
  leaderElect: z.enum(['true', 'false']).default('true'),
  leaderElectionNamespace: z.string().default('gmt-system'),
  leaderElectionId: z.string().default('gmt-operator-leader'),
  workers: z.coerce.number().int().min(1).max(64).default(4),
  trainerMetricsPort: z.coerce.number().int().min(0).max(65535).default(9400),
});

const HELP = `gmt-operator — reconciles GmtFineTune resources into trainer pods

Flags (env in brackets):
  --kubeconfig PATH             [KUBECONFIG] default: in-cluster, then ~/.kube/config
  --namespace NS[,NS...]        [GMT_WATCH_NAMESPACES] namespaces to watch (default: all)
  --nats-url URL                [GMT_NATS_URL] progress subscription and the workers' default NATS
  --nats-creds PATH             [NATS_CREDS] NATS .creds file for the progress subscription
  --metrics-port N              [GMT_METRICS_PORT] /metrics /healthz /readyz (default 8080; -1 off)
  --leader-elect true|false     [GMT_LEADER_ELECT] (default true)
  --leader-election-namespace   [POD_NAMESPACE] (default gmt-system)
  --leader-election-id NAME     Lease name (default gmt-operator-leader)
  --workers N                   concurrent reconciles (default 4)
  --trainer-metrics-port N      the workers' metrics port (default 9400; 0 off)

Exit codes: 0 after a requested shutdown, 1 fatal (incl. lost leadership), 2 bad flags.`;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): z.infer<typeof FlagsSchema> {
  const raw: Record<string, string> = {};
  const fromEnv: Record<string, string | undefined> = {
    kubeconfig: env['KUBECONFIG'],
    namespace: env['GMT_WATCH_NAMESPACES'],
    natsUrl: env['GMT_NATS_URL'],
    natsCreds: env['NATS_CREDS'],
    metricsPort: env['GMT_METRICS_PORT'],
    leaderElect: env['GMT_LEADER_ELECT'],
    leaderElectionNamespace: env['POD_NAMESPACE'],
  };
  for (const [k, v] of Object.entries(fromEnv)) if (v !== undefined && v !== '') raw[k] = v;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${a}`);
    const [flag, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in FlagsSchema.shape)) throw new UsageError(`unknown flag --${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`flag --${flag} needs a value`);
    raw[key] = value;
  }
  const r = FlagsSchema.safeParse(raw);
  if (!r.success) throw new UsageError(r.error.issues.map((x) => `--${x.path.join('.')}: ${x.message}`).join('; '));
  return r.data;
}

const log: Logger = (level, msg, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, logger: 'gmt-operator', msg, ...fields })}\n`);
};

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  let flags: z.infer<typeof FlagsSchema>;
  try {
    flags = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    log('error', err instanceof Error ? err.message : String(err));
    return 2;
  }
  const kc = new KubeConfig();
  if (flags.kubeconfig !== undefined) kc.loadFromFile(flags.kubeconfig);
  else if (process.env['KUBERNETES_SERVICE_HOST'] !== undefined) kc.loadFromCluster();
  else kc.loadFromDefault();
  const namespaces = flags.namespace
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  log('info', 'starting', {
    namespaces: namespaces.length === 0 ? 'all' : namespaces,
    natsUrl: flags.natsUrl,
    leaderElect: flags.leaderElect === 'true',
    server: kc.getCurrentCluster()?.server,
  });
  // OpenTelemetry from the standard OTEL_* variables (off when none is set): a span per reconcile.
  const tracing = startTracing({ serviceName: 'gmt-operator', env: process.env });
  const op = await startOperator({
    kc,
    namespaces,
    natsUrl: flags.natsUrl,
    natsCreds: flags.natsCreds,
    workers: flags.workers,
    trainerMetricsPort: flags.trainerMetricsPort,
    log,
    ...(flags.metricsPort >= 0 ? { metricsPort: flags.metricsPort } : {}),
    ...(flags.leaderElect === 'true' ? { leaderElection: { namespace: flags.leaderElectionNamespace, name: flags.leaderElectionId } } : {}),
  });
  if (op.server !== undefined) log('info', 'serving metrics and health', { url: op.server.url });
  let requested = false;
  const stop = (sig: string): void => {
    if (requested) process.exit(1);
    requested = true;
    log('info', 'shutting down', { signal: sig });
    void op.close();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await op.closed;
  await tracing.shutdown();
  if (op.lostLeadership()) {
    log('error', 'lost leadership; exiting');
    return 1;
  }
  log('info', 'stopped');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log('error', 'fatal', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  },
);
