/**
 * The whole GmtFineTune object: apiVersion, kind, metadata, spec, status. `parseGmtFineTune` is the
 * boundary check for everything read from the API server (informer events, GET responses).
 */
import { z } from 'zod';
import { API_VERSION, KIND } from './group.js';
import { cel } from './k8s-schema.js';
import { GmtFineTuneSpecSchema } from './spec.js';
import { GmtFineTuneStatusSchema } from './status.js';

/** Longest metadata.name: pod names `<name>-<attempt>-<rank>` must stay DNS-1035 labels (≤ 63). */
export const MAX_NAME_LENGTH = 48;

/** CEL rules on the object root (where `self.metadata.name` is visible). */
export const ROOT_RULES = cel({
  rule: `self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= ${MAX_NAME_LENGTH}`,
  message: `metadata.name must be a DNS-1035 label of at most ${MAX_NAME_LENGTH} characters (lowercase letters, digits and "-", starting with a letter): it names the job's pods, Service and NATS subjects`,
  fieldPath: '.metadata.name',
});

/** The part of ObjectMeta the operator reads; everything else is kept as is. */
export const ObjectMetaSchema = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
});

/** A GmtFineTune as stored. */
export const GmtFineTuneSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMetaSchema,
  spec: GmtFineTuneSpecSchema,
  status: GmtFineTuneStatusSchema.optional(),
});

/** A GmtFineTune, defaults resolved. */
export type GmtFineTune = z.infer<typeof GmtFineTuneSchema>;
/** A GmtFineTune as a user writes it (e.g. the body of a create). */
export type GmtFineTuneInput = z.input<typeof GmtFineTuneSchema>;

/** Result of parsing: errors are data. */
export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** Checks and resolves an object read from the API server; the error names each bad field. */
export function parseGmtFineTune(obj: unknown): ParseResult<GmtFineTune> {
  const r = GmtFineTuneSchema.safeParse(obj);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, error: r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ') };
}
