// Writes through server-side apply (docs/architecture.md §6: children are applied with a field manager
// of our own) and idempotent deletes, for any kind, via client-node's KubernetesObjectApi
// (PATCH application/apply-patch+yaml; JSON is valid YAML).
import { ApiException, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

/** Raised when an object given to applyServerSide lacks what apply needs. */
export class ApplyError extends Error {
  override readonly name = 'ApplyError';
}

/** An object to apply: apiVersion, kind and metadata.name are required. */
export interface ApplyObject extends KubernetesObject {
  readonly apiVersion: string;
  readonly kind: string;
}

/** Options of applyServerSide. */
export interface ApplyOptions {
  /** Take over fields owned by other managers (default true: the controller owns its children). */
  readonly force?: boolean;
  /** Server-side dry run. */
  readonly dryRun?: boolean;
}

/** Client for applyServerSide/deleteIfExists (one per KubeConfig; it caches API discovery). */
export function makeObjectClient(kc: KubeConfig): KubernetesObjectApi {
  return KubernetesObjectApi.makeApiClient(kc);
}

/**
 * Applies `obj` as `fieldManager` and returns the object the server now has. Server-managed
 * metadata (resourceVersion, uid, managedFields, creationTimestamp, generation) is stripped:
 * an apply states intent, and a stale resourceVersion would turn it into a conditional write.
 * Applying the same intent twice is a no-op on the server (no resourceVersion change).
 */
export async function applyServerSide<T extends ApplyObject>(client: KubernetesObjectApi, obj: T, fieldManager: string, opts: ApplyOptions = {}): Promise<T> {
  if (obj.metadata?.name === undefined || obj.metadata.name === '') throw new ApplyError(`apply ${obj.kind}: metadata.name is required`);
  if (fieldManager === '') throw new ApplyError('apply: fieldManager must not be empty');
  const { resourceVersion: _rv, uid: _uid, managedFields: _mf, creationTimestamp: _ct, generation: _gen, ...metadata } = obj.metadata;
  const body: T = { ...obj, metadata };
  return client.patch(body, undefined, opts.dryRun === true ? 'All' : undefined, fieldManager, opts.force ?? true, PatchStrategy.ServerSideApply);
}

/** What deleteIfExists needs to address an object. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string };
}

/**
 * Deletes the object; true if a delete was issued, false if it was already gone (404).
 * `propagationPolicy` defaults to Background (dependents are collected by the garbage collector).
 */
export async function deleteIfExists(
  client: KubernetesObjectApi,
  ref: ObjectRef,
  opts: { readonly propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; readonly gracePeriodSeconds?: number } = {},
): Promise<boolean> {
  const spec: KubernetesObject = {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: ref.metadata.namespace === undefined ? { name: ref.metadata.name } : { name: ref.metadata.name, namespace: ref.metadata.namespace },
  };
  try {
    await client.delete(spec, undefined, undefined, opts.gracePeriodSeconds, undefined, opts.propagationPolicy ?? 'Background');
    return true;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return false;
    throw err;
  }
}
