// The harness's control plane itself: real binaries at the pinned version, usable kubeconfig,
// clean start and stop.

import test from 'ava';
import { existsSync } from 'node:fs';
import { CoreV1Api, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { binaryVersion, ensureBinary, formatDuration } from '../../harness/binaries.js';
import { ControlPlane } from '../../harness/control-plane.js';
import { runKubectl } from '../../harness/k8s-helpers.js';

test('control plane - starts, serves the pinned Kubernetes version to kubectl, and stops cleanly', async (t) => {
  const cp = await ControlPlane.start({ log: (l) => t.log(l) });
  t.log(`warm start: ${formatDuration(cp.startMs)}`);
  try {
    const kc = new KubeConfig();
    kc.loadFromString(cp.kubeconfig);
    const version = await kc.makeApiClient(VersionApi).getCode();
    t.is(version.gitVersion, await binaryVersion('kube-apiserver'));
    const kubectl = await ensureBinary('kubectl');
    const ready = await runKubectl(kubectl, cp.kubeconfigPath, ['get', '--raw', '/readyz']);
    t.is(ready.stdout.trim(), 'ok', ready.stderr);
    // The controller manager creates the default ServiceAccount: proof that it runs and is authorised.
    const core = kc.makeApiClient(CoreV1Api);
    const sa = await (async () => {
      for (let i = 0; i < 120; i++) {
        try {
          return await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        } catch {
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      return undefined;
    })();
    t.truthy(sa, 'default ServiceAccount created by kube-controller-manager');
  } finally {
    await cp.close();
  }
  t.deepEqual(cp.crashed.length, 4, 'all four components have exited after close');
  t.false(existsSync(cp.dir), 'temporary folder removed');
});
