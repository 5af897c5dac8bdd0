// Child process for real-node.test.ts: starts a real node in a temporary folder, prints
// `UP <dir>` and waits to be killed (SIGKILL: no chance to close the node).

import { RealCluster } from '../harness/real-node/node.js';

const cluster = await RealCluster.start({});
process.stdout.write(`UP ${cluster.dir}\n`);
setInterval(() => undefined, 60_000);
