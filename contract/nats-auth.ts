/** NATS authentication from a .creds file (the Secret the operator mounts; NATS_CREDS in docs/architecture.md §4). */
import { readFileSync } from 'node:fs';
import { type Authenticator, credsAuthenticator } from '@nats-io/transport-node';

/** A credentials file that cannot be read; the message names the file. */
export class NatsCredentialsError extends Error {
  override readonly name: string = 'NatsCredentialsError';
}

/** Connection options that authenticate with `credsFile`, or none when it is unset. */
export function natsAuth(credsFile: string | undefined): { authenticator?: Authenticator } {
  if (credsFile === undefined || credsFile === '') return {};
  let creds: Uint8Array;
  try {
    creds = readFileSync(credsFile);
  } catch (e) {
    throw new NatsCredentialsError(`NATS credentials file ${credsFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  return { authenticator: credsAuthenticator(creds) };
}
