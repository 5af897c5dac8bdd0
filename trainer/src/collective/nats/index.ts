/** Public API of the NATS transport (a hand-written export list keeps it small). */
export { NatsTransport } from './nats-transport.js';
export { NATS_TRANSPORT_DEFAULTS, type NatsTransportOptions } from './options.js';
export {
  natsServerConfig,
  startNatsServer,
  freePort,
  NatsServerError,
  type NatsServerConfigOptions,
  type NatsServerHandle,
  type StartNatsServerOptions,
} from './server.js';
export { findNatsServer } from './find-server.js';
export { attemptSubjects, jobToken, type AttemptSubjects } from './subjects.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { DATA_HEADER_BYTES, WIRE_VERSION } from './wire.js';
