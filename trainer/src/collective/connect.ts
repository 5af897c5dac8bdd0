/** Connecting a rank to its job's NATS transport from the trainer config (docs/architecture.md §3-4). */
import { connect } from '@nats-io/transport-node';
import type { TrainerConfig } from '../../../contract/config.js';
import { type ProgressMessage, progressSubject } from '../../../contract/progress.js';
import { RetryableError } from '../errors.js';
import type { TrainerMetrics } from '../metrics/index.js';
import { NatsTransport } from './nats/index.js';
import { natsAuth } from './nats/auth.js';
import type { CollectivePhase, Transport } from './transport.js';

const PHASE_METRIC: Readonly<Record<CollectivePhase, 'reduce_scatter' | 'threshold' | 'all_gather' | 'checkpoint' | 'compute' | 'optimizer'>> = {
  rendezvous: 'compute',
  reduce_scatter: 'reduce_scatter',
  norm: 'threshold',
  threshold: 'threshold',
  all_gather: 'all_gather',
  hash: 'all_gather',
  checkpoint: 'checkpoint',
  progress: 'compute',
};

/**
 * Connect and rendezvous with every rank of (jobId, attempt); byte counts and rejects go to metrics.
 * `startStep` (the step the run starts or resumes at) bounds the steps accepted from the start.
 */
export async function connectNats(c: TrainerConfig, metrics?: TrainerMetrics, startStep?: number): Promise<Transport> {
  return NatsTransport.connect({
    servers: c.natsUrl,
    jobId: c.jobId,
    attempt: c.attempt,
    rank: c.rank,
    worldSize: c.worldSize,
    ...(startStep !== undefined ? { startStep } : {}),
    credsFile: c.natsCreds,
    heartbeatMs: c.heartbeatMs,
    peerTimeoutMs: c.peerTimeoutMs,
    stepDeadlineMs: c.stepTimeoutSec * 1000,
    rendezvousTimeoutMs: c.rendezvousTimeoutSec * 1000,
    ...(metrics !== undefined
      ? {
          observer: {
            onBytes: (phase, direction, n) => metrics.addCollectiveBytes(PHASE_METRIC[phase], direction, n),
            onReject: (reason) => metrics.countRejected(reason),
          },
        }
      : {}),
  });
}

/** Rank 0's progress publisher: JSON messages on gmt.<job>.progress over its own connection. */
export class ProgressPublisher {
  private constructor(
    private readonly nc: Awaited<ReturnType<typeof connect>>,
    private readonly subject: string,
  ) {}

  /** Connect to NATS for publishing progress. */
  static async open(url: string, jobId: string, credsFile = ''): Promise<ProgressPublisher> {
    const auth = natsAuth(credsFile);
    try {
      return new ProgressPublisher(await connect({ servers: url, name: `gmt-progress-${jobId}`, ...auth }), progressSubject(jobId));
    } catch (e) {
      throw new RetryableError(`progress publisher: cannot connect to NATS at ${url}`, { cause: e });
    }
  }

  /** Publish one progress message (fire and forget; at-most-once is fine for progress). */
  publish(msg: ProgressMessage): void {
    try {
      this.nc.publish(this.subject, JSON.stringify(msg));
    } catch {
      // A lost progress message is harmless; the collective itself detects a lost connection.
    }
  }

  /** Flush and close. */
  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
