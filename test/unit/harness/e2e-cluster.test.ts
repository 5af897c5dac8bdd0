// What the e2e tier reads from the environment (test/harness/cluster.ts): without
// GMT_E2E_KUBECONFIG a one-line message saying how to get a cluster; the defaults are the images
// built here and the real node's address.

import test from 'ava';
import { e2eSettings } from '../../harness/cluster.js';
import { NATS_IMAGE, PROJECT_IMAGES } from '../../harness/real-node/build-images.js';
import { NODE_IMAGES } from '../../harness/real-node/images.js';
import { NODE_IP } from '../../harness/real-node/network.js';

test('e2eSettings - without GMT_E2E_KUBECONFIG: one line saying to run npm run test:e2e or set it', (t) => {
  for (const env of [{}, { GMT_E2E_KUBECONFIG: '' }]) {
    const err = t.throws(() => e2eSettings(env));
    t.regex(err.message, /^GMT_E2E_KUBECONFIG is not set: run the e2e tier with `npm run test:e2e`/);
    t.regex(err.message, /npm run cluster:up/);
    t.false(err.message.includes('\n'));
  }
});

test('e2eSettings - defaults: the images built here, the node address; every one overridable', (t) => {
  t.deepEqual(e2eSettings({ GMT_E2E_KUBECONFIG: '/k' }), {
    kubeconfigPath: '/k',
    images: { shell: NODE_IMAGES.debian, trainer: PROJECT_IMAGES.trainer.ref, operator: PROJECT_IMAGES.operator.ref, nats: NATS_IMAGE },
    hostAddress: NODE_IP,
  });
  t.deepEqual(
    e2eSettings({
      GMT_E2E_KUBECONFIG: '/k',
      GMT_E2E_SHELL_IMAGE: 'busybox:1.36',
      GMT_E2E_TRAINER_IMAGE: 't:1',
      GMT_E2E_OPERATOR_IMAGE: 'o:1',
      GMT_E2E_NATS_IMAGE: 'n:1',
      GMT_E2E_HOST_ADDRESS: '172.18.0.1',
    }),
    {
      kubeconfigPath: '/k',
      images: { shell: 'busybox:1.36', trainer: 't:1', operator: 'o:1', nats: 'n:1' },
      hostAddress: '172.18.0.1',
    },
  );
});
