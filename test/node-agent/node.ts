// Pure builders for the agent's Node object and its status.

import { release } from 'node:os';
import type { V1Node, V1NodeCondition, V1NodeStatus } from '@kubernetes/client-node';

/** Label that marks nodes run by this agent, so tests and tolerations can select them. */
export const AGENT_NODE_LABEL = 'gmt.dev/node-agent';

/** The Node to register (status is written separately through nodes/status). */
export function buildNode(opts: { name: string; gpus: number; cpuCores: number; memoryBytes: number }): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: opts.name,
      labels: {
        'kubernetes.io/hostname': opts.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
        [AGENT_NODE_LABEL]: 'true',
      },
    },
    spec: {},
  };
}

function condition(type: string, status: 'True' | 'False', reason: string, previous: V1NodeStatus | undefined, now: Date): V1NodeCondition {
  const prev = previous?.conditions?.find((c) => c.type === type);
  return {
    type,
    status,
    reason,
    message: `reported by the gmt node agent (test infrastructure)`,
    lastHeartbeatTime: now,
    lastTransitionTime: prev?.status === status && prev.lastTransitionTime !== undefined ? prev.lastTransitionTime : now,
  };
}

/** A Ready node with the given capacity; allocatable equals capacity (nothing is reserved). */
export function computeNodeStatus(opts: { gpus: number; cpuCores: number; memoryBytes: number; previous: V1NodeStatus | undefined; now: Date }): V1NodeStatus {
  const capacity = {
    cpu: String(opts.cpuCores),
    memory: `${Math.floor(opts.memoryBytes / 1024)}Ki`,
    pods: '110',
    'ephemeral-storage': '100Gi',
    'nvidia.com/gpu': String(opts.gpus),
  };
  const { previous, now } = opts;
  return {
    capacity,
    allocatable: { ...capacity },
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', previous, now),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', previous, now),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', previous, now),
      condition('Ready', 'True', 'KubeletReady', previous, now),
    ],
    addresses: [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: 'localhost' },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
    nodeInfo: {
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      bootID: '',
      containerRuntimeVersion: 'gmt-node-agent://0',
      kernelVersion: release(),
      kubeProxyVersion: '',
      kubeletVersion: 'gmt-node-agent',
      machineID: '',
      operatingSystem: 'linux',
      osImage: 'gmt node agent (processes, test infrastructure)',
      systemUUID: '',
    },
  };
}
