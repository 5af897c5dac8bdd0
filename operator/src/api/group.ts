/**
 * The GmtFineTune API's identity (docs/architecture.md §5): group, version, kind, plural, short name. Every
 * place that addresses the resource (informers, SSA, the CRD, RBAC) uses these names.
 */

/** API group. */
export const GROUP = 'gmt.dev';
/** The one served and stored version. */
export const VERSION = 'v1alpha1';
/** `apiVersion` of the custom resource. */
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Kind of the custom resource. */
export const KIND = 'GmtFineTune';
/** Kind of its list. */
export const LIST_KIND = 'GmtFineTuneList';
/** Resource (URL path segment) of the custom resource. */
export const PLURAL = 'gmtfinetunes';
/** Singular name (kubectl). */
export const SINGULAR = 'gmtfinetune';
/** Short name: `kubectl get gft`. */
export const SHORT_NAME = 'gft';
/** kubectl categories: `kubectl get gmt` and `kubectl get all` list the resource. */
export const CATEGORIES: readonly string[] = ['gmt', 'all'];
/** Name of the CustomResourceDefinition (`<plural>.<group>`). */
export const CRD_NAME = `${PLURAL}.${GROUP}`;
