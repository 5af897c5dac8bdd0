// A local-path style volume provisioner for the real test node (test infrastructure, in the spirit
// of rancher/local-path-provisioner): a default StorageClass `local-path`, and a loop that gives each
// pending claim of that class a hostPath PersistentVolume in a folder of the node's work folder,
// pre-bound to the claim (the controller manager's PV binder completes the binding), and deletes
// the folder and the volume once a claim is gone (reclaim policy Delete).

import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, StorageV1Api, type KubeConfig, type V1PersistentVolume } from '@kubernetes/client-node';
import { isApiError } from '../k8s-helpers.js';
import { NODE_NAME } from './network.js';

export const STORAGE_CLASS = 'local-path';
export const PROVISIONER = 'gmt.dev/local-path';

/** The PersistentVolume for a claim (pure). */
export function buildLocalPathVolume(
  claim: { namespace: string; name: string; uid: string; storage: string; accessModes: string[] },
  path: string,
): V1PersistentVolume {
  return {
    metadata: { name: `pvc-${claim.uid}`, annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER } },
    spec: {
      capacity: { storage: claim.storage },
      accessModes: claim.accessModes.length > 0 ? claim.accessModes : ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: STORAGE_CLASS,
      claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: claim.namespace, name: claim.name, uid: claim.uid },
      hostPath: { path, type: 'DirectoryOrCreate' },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [NODE_NAME] }] }] } },
    },
  };
}

/** The provisioner loop. start() creates the StorageClass; close() stops the loop. */
export class LocalPathProvisioner {
  readonly #core: CoreV1Api;
  readonly #storage: StorageV1Api;
  readonly #dir: string;
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(kc: KubeConfig, dir: string, log: (line: string) => void) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#storage = kc.makeApiClient(StorageV1Api);
    this.#dir = dir;
    this.#log = log;
  }

  async start(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    await this.#storage.createStorageClass({
      body: {
        metadata: { name: STORAGE_CLASS, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
        provisioner: PROVISIONER,
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'Immediate',
      },
    });
    const tick = (): void => {
      if (this.#closed) return;
      this.#running = this.#sync()
        .catch((err: unknown) => this.#log(`local-path: ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => {
          if (!this.#closed) this.#timer = setTimeout(tick, 500);
        });
    };
    tick();
  }

  async #sync(): Promise<void> {
    const claims = await this.#core.listPersistentVolumeClaimForAllNamespaces();
    const live = new Set<string>();
    for (const pvc of claims.items) {
      const uid = pvc.metadata?.uid ?? '';
      live.add(uid);
      if (pvc.spec?.storageClassName !== STORAGE_CLASS || (pvc.spec.volumeName ?? '') !== '' || pvc.status?.phase !== 'Pending') continue;
      const path = join(this.#dir, `pvc-${uid}`);
      await mkdir(path, { recursive: true });
      await chmod(path, 0o777); // any container user may write, as with local-path-provisioner
      const pv = buildLocalPathVolume(
        {
          namespace: pvc.metadata?.namespace ?? '',
          name: pvc.metadata?.name ?? '',
          uid,
          storage: pvc.spec.resources?.requests?.['storage'] ?? '1Gi',
          accessModes: pvc.spec.accessModes ?? [],
        },
        path,
      );
      try {
        await this.#core.createPersistentVolume({ body: pv });
        this.#log(`local-path: ${pv.metadata?.name ?? ''} for ${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}`);
      } catch (err) {
        if (!isApiError(err, 409)) throw err;
      }
    }
    const volumes = await this.#core.listPersistentVolume();
    for (const pv of volumes.items) {
      if (pv.spec?.storageClassName !== STORAGE_CLASS || pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'] !== PROVISIONER) continue;
      const claimUid = pv.spec.claimRef?.uid ?? '';
      if (pv.status?.phase !== 'Released' && live.has(claimUid)) continue;
      if (pv.status?.phase === 'Available' || pv.status?.phase === 'Pending') continue;
      await rm(pv.spec.hostPath?.path ?? join(this.#dir, 'none'), { recursive: true, force: true });
      await this.#core.deletePersistentVolume({ name: pv.metadata.name ?? '' }).catch((err: unknown) => {
        if (!isApiError(err, 404)) throw err;
      });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }
}
