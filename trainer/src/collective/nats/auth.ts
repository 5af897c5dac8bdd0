/** NATS authentication for the trainer: the contract's creds loading, its failure a ConfigError (exit code 2). */
import type { Authenticator } from '@nats-io/transport-node';
import { NatsCredentialsError, natsAuth as contractNatsAuth } from '../../../../contract/nats-auth.js';
import { ConfigError } from '../../errors.js';

/** Connection options that authenticate with `credsFile`, or none when it is unset. */
export function natsAuth(credsFile: string | undefined): { authenticator?: Authenticator } {
  try {
    return contractNatsAuth(credsFile);
  } catch (e) {
    if (e instanceof NatsCredentialsError) throw new ConfigError(e.message, { cause: e.cause });
    throw e;
  }
}
