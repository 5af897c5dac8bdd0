// A container's environment, computed as the kubelet does
// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables): envFrom first, then env in order, with
// $(VAR) references to variables defined before; downward-API fields, resource fields,
// ConfigMap and Secret keys. Missing non-optional sources are a CreateContainerConfigError.

import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';

/** A container whose config cannot be resolved (the kubelet's CreateContainerConfigError). */
export class ContainerConfigError extends Error {
  override name = 'ContainerConfigError';
}

/** Fetches objects the env refers to; undefined when not found. */
export interface EnvSources {
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
}

/** Node-level facts the downward API exposes. */
export interface NodeFacts {
  readonly nodeName: string;
  readonly hostIP: string;
  readonly podIP: string;
  /** Allocatable CPU cores and memory bytes: the default for limits.* when a container sets none. */
  readonly cpuCores: number;
  readonly memoryBytes: number;
}

const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Parses a Kubernetes quantity ("500m", "2Gi", "1e3") into a number. */
export function parseQuantity(q: string): number {
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?\d+)?)([a-zA-Z]*)$/.exec(q.trim());
  const factor = m?.[2] !== undefined ? SUFFIX[m[2]] : undefined;
  if (m?.[1] === undefined || factor === undefined) throw new ContainerConfigError(`invalid quantity ${JSON.stringify(q)}`);
  return Number(m[1]) * factor;
}

/** Replaces $(NAME) with defined variables; $$ escapes; unknown references stay as they are. */
export function expandVars(s: string, vars: ReadonlyMap<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && vars.has(name) ? (vars.get(name) ?? '') : match;
  });
}

function fieldValue(pod: V1Pod, path: string, node: NodeFacts): string {
  const meta = pod.metadata ?? {};
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (keyed?.[1] !== undefined && keyed[2] !== undefined) {
    const map = keyed[1] === 'labels' ? meta.labels : meta.annotations;
    return map?.[keyed[2]] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'spec.nodeName':
      return node.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
    case 'status.hostIPs':
      return node.hostIP;
    case 'status.podIP':
    case 'status.podIPs':
      return node.podIP;
    default:
      throw new ContainerConfigError(`unsupported fieldRef ${path}`);
  }
}

function resourceValue(container: V1Container, resource: string, divisor: string | undefined, node: NodeFacts): string {
  const [kind, name] = resource.split('.');
  const fromSpec = kind === 'limits' ? container.resources?.limits : kind === 'requests' ? container.resources?.requests : undefined;
  const set = name !== undefined ? fromSpec?.[name] : undefined;
  let value: number;
  if (set !== undefined) value = parseQuantity(set);
  else if (name === 'cpu') value = kind === 'limits' ? node.cpuCores : 0;
  else if (name === 'memory') value = kind === 'limits' ? node.memoryBytes : 0;
  else value = 0;
  const d = parseQuantity(divisor ?? '1');
  // The kubelet rounds up to whole divisor units (pkg/api/v1/resource.ExtractContainerResourceValue).
  return String(Math.ceil(value / d));
}

/**
 * The environment for `container`, over `base` (host basics such as PATH; the pod's values win).
 * Order of precedence and expansion follow the kubelet.
 */
export async function computeContainerEnv(
  pod: V1Pod,
  container: V1Container,
  node: NodeFacts,
  sources: EnvSources,
  base: Readonly<Record<string, string>>,
): Promise<Record<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const vars = new Map<string, string>();

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef !== undefined) {
      const name = from.configMapRef.name ?? '';
      const cm = await sources.configMap(namespace, name);
      if (cm === undefined) {
        if (from.configMapRef.optional === true) continue;
        throw new ContainerConfigError(`configmap "${name}" not found`);
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) vars.set(prefix + k, v);
    } else if (from.secretRef !== undefined) {
      const name = from.secretRef.name ?? '';
      const secret = await sources.secret(namespace, name);
      if (secret === undefined) {
        if (from.secretRef.optional === true) continue;
        throw new ContainerConfigError(`secret "${name}" not found`);
      }
      for (const [k, v] of Object.entries(secret.data ?? {})) vars.set(prefix + k, Buffer.from(v, 'base64').toString('utf8'));
    }
  }

  for (const env of container.env ?? []) {
    const ref = env.valueFrom;
    if (ref === undefined) {
      vars.set(env.name, expandVars(env.value ?? '', vars));
    } else if (ref.fieldRef !== undefined) {
      vars.set(env.name, fieldValue(pod, ref.fieldRef.fieldPath, node));
    } else if (ref.resourceFieldRef !== undefined) {
      const target =
        ref.resourceFieldRef.containerName !== undefined && ref.resourceFieldRef.containerName !== ''
          ? (pod.spec?.containers.find((c) => c.name === ref.resourceFieldRef?.containerName) ?? container)
          : container;
      const divisor = ref.resourceFieldRef.divisor;
      vars.set(env.name, resourceValue(target, ref.resourceFieldRef.resource, divisor, node));
    } else if (ref.configMapKeyRef !== undefined) {
      const { name = '', key, optional } = ref.configMapKeyRef;
      const value = (await sources.configMap(namespace, name))?.data?.[key];
      if (value !== undefined) vars.set(env.name, value);
      else if (optional !== true) throw new ContainerConfigError(`key "${key}" of configmap "${name}" not found`);
    } else if (ref.secretKeyRef !== undefined) {
      const { name = '', key, optional } = ref.secretKeyRef;
      const value = (await sources.secret(namespace, name))?.data?.[key];
      if (value !== undefined) vars.set(env.name, Buffer.from(value, 'base64').toString('utf8'));
      else if (optional !== true) throw new ContainerConfigError(`key "${key}" of secret "${name}" not found`);
    }
  }
  return { ...base, ...Object.fromEntries(vars) };
}
