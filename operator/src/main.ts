/**
 * gmt-operator: flags/env → startOperator. Structured JSON logs on stderr, graceful shutdown on
 * SIGTERM/SIGINT. Exit codes: 0 after a requested shutdown, 1 on a fatal error (including lost
 * leadership: like controller-runtime, the process exits and its Deployment restarts it as a
 * fresh candidate), 2 on bad flags.
 *
 * Flags, their meanings, defaults and environment variables: `gmt-operator --help` (buildProgram below).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Command, CommanderError, Option } from 'commander';
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

class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command line: every flag with its meaning, default and environment variable (commander shows all three in --help). */
function buildProgram(): Command {
  return new Command('gmt-operator')
    .description("Reconciles GmtFineTune resources into gangs of trainer pods and folds the trainers' NATS progress into their status.")
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig file; default: in-cluster config, then ~/.kube/config').env('KUBECONFIG'))
    .addOption(new Option('--namespace <ns,...>', 'namespaces to watch (comma-separated); default: all').env('GMT_WATCH_NAMESPACES'))
    .addOption(
      new Option('--nats-url <url>', "NATS for the trainers' progress messages and the workers' default NATS; empty: no progress in status").env(
        'GMT_NATS_URL',
      ),
    )
    .addOption(new Option('--nats-creds <path>', 'NATS .creds file for the progress subscription').env('NATS_CREDS'))
    .addOption(
      new Option('--metrics-port <n>', '/metrics /healthz /readyz port [-1 off, 0 any free port, up to 65535]').env('GMT_METRICS_PORT').default('8080'),
    )
    .addOption(
      new Option('--leader-elect <bool>', 'take a Lease before reconciling (one active replica)')
        .choices(['true', 'false'])
        .env('GMT_LEADER_ELECT')
        .default('true'),
    )
    .addOption(new Option('--leader-election-namespace <ns>', 'namespace of the leader-election Lease (must exist)').env('POD_NAMESPACE').default('gmt-system'))
    .addOption(new Option('--leader-election-id <name>', 'name of the leader-election Lease').default('gmt-operator-leader'))
    .addOption(new Option('--workers <n>', 'concurrent reconciles [1-64]').default('4'))
    .addOption(new Option('--trainer-metrics-port <n>', "the workers' metrics port [0 off, up to 65535]").default('9400'))
    .addHelpText('after', '\nExit codes: 0 after a requested shutdown, 1 fatal (incl. lost leadership), 2 bad flags.')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run gmt-operator --help for every flag)')
    .allowExcessArguments(false)
    .exitOverride()
    .configureHelp({ helpWidth: 120 });
}

/** Flags (and their environment variables) → validated settings; a number is the exit code after help or a usage error. */
function parseArgs(argv: readonly string[]): z.infer<typeof FlagsSchema> | number {
  const program = buildProgram();
  try {
    program.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed the help or the error
    throw e;
  }
  const raw = Object.fromEntries(Object.entries(program.opts()).filter(([, v]) => v !== undefined && v !== ''));
  const r = FlagsSchema.safeParse(raw);
  if (!r.success)
    throw new UsageError(r.error.issues.map((x) => `--${String(x.path[0] ?? '').replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: ${x.message}`).join('; '));
  return r.data;
}

const log: Logger = (level, msg, fields = {}) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, logger: 'gmt-operator', msg, ...fields })}\n`);
};

async function main(): Promise<number> {
  let flags: z.infer<typeof FlagsSchema>;
  try {
    const parsed = parseArgs(process.argv.slice(2));
    if (typeof parsed === 'number') return parsed;
    flags = parsed;
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
