// A snapshot of the parts of the machine a real test node changes, to restore some (sysctls) and
// to check after teardown that the machine is as before: sysctls the kubelet, kube-proxy and the
// CNI bridge set, netfilter rules and tables, network links and addresses, mounts, cgroups.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tryRun } from './exec.js';

/**
 * Sysctls a node changes: the kubelet's kernel tunables (pkg/kubelet/cm: vm.overcommit_memory,
 * vm.panic_on_oom, kernel.panic, kernel.panic_on_oops, kernel.keys.*), forwarding (CNI bridge with
 * isGateway), kube-proxy's route_localnet and conntrack limits, bridge netfilter.
 */
export const NODE_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/forwarding',
  'net/ipv4/conf/all/route_localnet',
  'net/ipv6/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
] as const;

/** Cgroup names (under each hierarchy's root) a node creates: the kubelet's and containerd's. */
export const NODE_CGROUPS = ['kubepods', 'kubepods.slice', 'k8s.io', 'gmt-node'] as const;

/** What the snapshot holds; every field is comparable text. */
export interface MachineState {
  readonly sysctls: Readonly<Record<string, string>>;
  /** iptables-save / ip6tables-save without counters and comments. */
  readonly iptables: string;
  readonly ip6tables: string;
  readonly nftTables: string;
  readonly links: string;
  readonly addresses: string;
  readonly routes: string;
  /** Mount points of this process's mount namespace (the host's). */
  readonly mounts: string;
  /** `<hierarchy>/<name>` for each NODE_CGROUPS entry that exists. */
  readonly cgroups: string;
  /** Paths that exist among those checked. */
  readonly paths: string;
}

/** Paths a node could leave behind outside its own work folder. */
export const NODE_PATHS = [
  '/var/lib/kubelet',
  '/var/lib/containerd',
  '/run/containerd',
  '/etc/cni/net.d',
  '/var/log/pods',
  '/var/log/containers',
  '/run/netns',
] as const;

export async function readSysctl(key: string): Promise<string | undefined> {
  try {
    return (await readFile(join('/proc/sys', key), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * iptables-save output without counters and comments, and without tables that hold no rule, no
 * chain of their own and only ACCEPT policies: such a table filters nothing, and iptables-nft
 * instantiates them on first use (and lists them inconsistently), so present or absent is the same.
 */
export function normaliseSave(dump: string): string {
  const lines = dump
    .split('\n')
    .filter((l) => !l.startsWith('#') && l.trim() !== '')
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
  const out: string[] = [];
  let block: string[] = [];
  for (const l of lines) {
    block.push(l);
    if (l === 'COMMIT') {
      const trivial = block.every((b) => b.startsWith('*') || b === 'COMMIT' || /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/.test(b));
      if (!trivial) out.push(...block);
      block = [];
    }
  }
  out.push(...block);
  return out.join('\n');
}

/** The tables iptables-nft manages; their content is compared through iptables-save instead. */
const IPTABLES_TABLES = /^table ip6? (filter|nat|mangle|raw|security)$/;

/** Takes a snapshot. */
export async function snapshotMachine(): Promise<MachineState> {
  const sysctls: Record<string, string> = {};
  for (const k of NODE_SYSCTLS) {
    const v = await readSysctl(k);
    if (v !== undefined) sysctls[k] = v;
  }
  const cgroups: string[] = [];
  const hierarchies = await readdir('/sys/fs/cgroup').catch(() => [] as string[]);
  for (const h of hierarchies) {
    for (const name of NODE_CGROUPS) if (await exists(join('/sys/fs/cgroup', h, name))) cgroups.push(`${h}/${name}`);
  }
  const paths: string[] = [];
  for (const p of NODE_PATHS) if (await exists(p)) paths.push(p);
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return {
    sysctls,
    iptables: normaliseSave((await tryRun('iptables-save', [])) ?? ''),
    ip6tables: normaliseSave((await tryRun('ip6tables-save', [])) ?? ''),
    nftTables: ((await tryRun('nft', ['list', 'tables'])) ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !IPTABLES_TABLES.test(l))
      .join('\n'),
    links: ((await tryRun('ip', ['-o', 'link', 'show'])) ?? '')
      .split('\n')
      .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
      .filter((n) => n !== '')
      .sort()
      .join('\n'),
    addresses: ((await tryRun('ip', ['-o', 'addr', 'show'])) ?? '')
      .split('\n')
      .map((l) => l.split(/\s+/).slice(1, 4).join(' '))
      .filter((l) => l !== '')
      .sort()
      .join('\n'),
    routes: ((await tryRun('ip', ['route', 'show', 'table', 'all'])) ?? '')
      .split('\n')
      .filter((l) => l !== '')
      .sort()
      .join('\n'),
    mounts: mountinfo
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m !== '')
      .sort()
      .join('\n'),
    cgroups: cgroups.join('\n'),
    paths: paths.join('\n'),
  };
}

/** Human-readable differences between two snapshots (empty when the machine is as before). */
export function diffMachine(before: MachineState, after: MachineState): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(before.sysctls), ...Object.keys(after.sysctls)]);
  for (const k of keys) {
    if (before.sysctls[k] !== after.sysctls[k]) out.push(`sysctl ${k}: ${String(before.sysctls[k])} -> ${String(after.sysctls[k])}`);
  }
  for (const field of ['iptables', 'ip6tables', 'nftTables', 'links', 'addresses', 'routes', 'mounts', 'cgroups', 'paths'] as const) {
    if (before[field] === after[field]) continue;
    const b = new Set(before[field].split('\n'));
    const a = new Set(after[field].split('\n'));
    const gone = [...b].filter((x) => !a.has(x));
    const added = [...a].filter((x) => !b.has(x));
    out.push(`${field}: ${added.length > 0 ? `added ${JSON.stringify(added)}` : ''}${gone.length > 0 ? ` removed ${JSON.stringify(gone)}` : ''}`);
  }
  return out;
}

/** Whether `p` exists (any kind of file); false on any error. */
export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
