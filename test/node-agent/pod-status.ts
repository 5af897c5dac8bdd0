// Pure derivation of a pod's status from what the agent knows about its containers, following the
// kubelet's rules (pkg/kubelet/kubelet_pods.go getPhase): Pending until every container has
// started once; Succeeded/Failed only when all containers have terminated and none will restart
// (restartPolicy Never: any non-zero exit means Failed; OnFailure: all must have exited 0).

import type { V1ContainerState, V1ContainerStatus, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';

/** Where one container is in its life. */
export type ContainerState =
  | { readonly kind: 'waiting'; readonly reason: string; readonly message?: string }
  | { readonly kind: 'running'; readonly startedAt: Date }
  | {
      readonly kind: 'terminated';
      readonly exitCode: number;
      readonly signal?: number;
      readonly reason: string;
      readonly message?: string;
      readonly startedAt: Date;
      readonly finishedAt: Date;
    };

/** The agent's record of one container (init or regular). */
export interface ContainerRecord {
  readonly name: string;
  readonly image: string;
  readonly restartCount: number;
  readonly state: ContainerState;
  readonly lastTerminated?: Extract<ContainerState, { kind: 'terminated' }>;
  /** True once the container will not be started again (policy, success of an init container, or deletion). */
  readonly final: boolean;
  /** Identifies this run of the container in containerID fields. */
  readonly runId: string;
}

/** Inputs for computePodStatus. */
export interface PodView {
  readonly init: readonly ContainerRecord[];
  readonly containers: readonly ContainerRecord[];
  readonly podIP: string;
  readonly hostIP: string;
  readonly startTime: Date;
  /** Status currently stored on the server: transition times and fields we don't own are kept. */
  readonly previous: V1PodStatus | undefined;
  readonly now: Date;
}

function toApiState(s: ContainerState, containerID: string): V1ContainerState {
  switch (s.kind) {
    case 'waiting':
      return { waiting: { reason: s.reason, ...(s.message !== undefined ? { message: s.message } : {}) } };
    case 'running':
      return { running: { startedAt: s.startedAt } };
    case 'terminated':
      return {
        terminated: {
          exitCode: s.exitCode,
          reason: s.reason,
          startedAt: s.startedAt,
          finishedAt: s.finishedAt,
          containerID,
          ...(s.signal !== undefined ? { signal: s.signal } : {}),
          ...(s.message !== undefined ? { message: s.message } : {}),
        },
      };
  }
}

/** The status entry for one container. */
export function computeContainerStatus(c: ContainerRecord): V1ContainerStatus {
  const containerID = `gmt-agent://${c.runId}`;
  return {
    name: c.name,
    image: c.image,
    imageID: `gmt-agent://${c.image}`,
    ...(c.state.kind !== 'waiting' ? { containerID } : {}),
    ready: c.state.kind === 'running',
    started: c.state.kind === 'running',
    restartCount: c.restartCount,
    state: toApiState(c.state, containerID),
    ...(c.lastTerminated !== undefined ? { lastState: toApiState(c.lastTerminated, containerID) } : {}),
  };
}

/** The pod phase per the kubelet's getPhase. */
export function computePhase(view: Pick<PodView, 'init' | 'containers'>): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  const initFailed = view.init.some((c) => c.final && c.state.kind === 'terminated' && c.state.exitCode !== 0);
  if (initFailed) return 'Failed';
  const initDone = view.init.every((c) => c.state.kind === 'terminated' && c.state.exitCode === 0);
  if (!initDone) return 'Pending';
  const cs = view.containers;
  if (cs.some((c) => c.state.kind === 'waiting' && c.restartCount === 0 && c.lastTerminated === undefined)) return 'Pending';
  if (cs.some((c) => !c.final || c.state.kind === 'running')) return 'Running';
  return cs.every((c) => c.state.kind === 'terminated' && c.state.exitCode === 0) ? 'Succeeded' : 'Failed';
}

function condition(type: string, ok: boolean, previous: V1PodStatus | undefined, now: Date, reason?: string): V1PodCondition {
  const status = ok ? 'True' : 'False';
  const prev = previous?.conditions?.find((c) => c.type === type);
  return {
    type,
    status,
    lastTransitionTime: prev !== undefined && prev.status === status && prev.lastTransitionTime !== undefined ? prev.lastTransitionTime : now,
    ...(reason !== undefined && !ok ? { reason } : {}),
  };
}

const OWN_CONDITIONS = new Set(['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready']);

/** The full status to write; fields owned by others (qosClass, PodScheduled, …) are kept. */
export function computePodStatus(view: PodView): V1PodStatus {
  const phase = computePhase(view);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const initialized = view.init.every((c) => c.state.kind === 'terminated' && c.state.exitCode === 0);
  const allRunning = view.containers.every((c) => c.state.kind === 'running');
  const ready = allRunning && !terminal;
  const reason = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const conditions: V1PodCondition[] = [
    ...(view.previous?.conditions ?? []).filter((c) => !OWN_CONDITIONS.has(c.type)),
    condition('PodReadyToStartContainers', !terminal, view.previous, view.now),
    condition('Initialized', initialized, view.previous, view.now, 'ContainersNotInitialized'),
    condition('ContainersReady', ready, view.previous, view.now, reason),
    condition('Ready', ready, view.previous, view.now, reason),
  ];
  return {
    ...(view.previous ?? {}),
    phase,
    conditions,
    hostIP: view.hostIP,
    hostIPs: [{ ip: view.hostIP }],
    podIP: view.podIP,
    podIPs: [{ ip: view.podIP }],
    startTime: view.startTime,
    ...(view.init.length > 0 ? { initContainerStatuses: view.init.map(computeContainerStatus) } : {}),
    containerStatuses: view.containers.map(computeContainerStatus),
  };
}
