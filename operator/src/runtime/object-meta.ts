// The part of an object the runtime reads (metadata only), parsed with zod from wire JSON, plus
// keys: `namespace/name` for namespaced objects, `name` for cluster-scoped ones (client-go's
// MetaNamespaceKeyFunc).
import { z } from 'zod';

/** ownerReferences entry (the fields the runtime reads). */
export const ownerReferenceSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  name: z.string(),
  uid: z.string(),
  controller: z.boolean().optional(),
});

/** Object metadata (the fields the runtime reads). */
export const objectMetaSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  ownerReferences: z.array(ownerReferenceSchema).optional(),
});

/** Parsed metadata. */
export type ObjectMeta = z.infer<typeof objectMetaSchema>;
/** Parsed owner reference. */
export type OwnerReference = z.infer<typeof ownerReferenceSchema>;

const withMetaSchema = z.object({ metadata: objectMetaSchema });

/** Metadata of a wire object, or undefined when it has none usable (no name). */
export function parseObjectMeta(obj: unknown): ObjectMeta | undefined {
  const r = withMetaSchema.safeParse(obj);
  return r.success ? r.data.metadata : undefined;
}

/** `namespace/name`, or `name` for a cluster-scoped object. */
export function objectKey(meta: { readonly name: string; readonly namespace?: string | undefined }): string {
  return meta.namespace !== undefined && meta.namespace !== '' ? `${meta.namespace}/${meta.name}` : meta.name;
}

/** Splits a key made by objectKey. */
export function splitKey(key: string): { readonly namespace: string | undefined; readonly name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Group of an apiVersion: '' for core ('v1'), 'apps' for 'apps/v1'. */
export function apiGroup(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** Which owners to follow: group (any version) and kind. */
export interface OwnerKind {
  /** API group of the owner ('' for core). */
  readonly group: string;
  readonly kind: string;
}

/**
 * The controlling owner (`controller: true`) of kind `owner`, as a key in the child's namespace
 * (owner references cannot cross namespaces), or undefined.
 */
export function controllerOwnerKey(meta: ObjectMeta, owner: OwnerKind): string | undefined {
  const ref = meta.ownerReferences?.find((r) => r.controller === true && r.kind === owner.kind && apiGroup(r.apiVersion) === owner.group);
  return ref === undefined ? undefined : objectKey({ name: ref.name, namespace: meta.namespace });
}
