// The real test node's addresses and the pod egress guard.
//
// Network safety is part of the design: this machine's egress accepts connections to any address,
// and no test may send traffic off the machine. So every address a pod can use is answered on this
// node (pods, Services through kube-proxy, DNS through CoreDNS as a pod, the API server and test
// servers such as a nats-server on a host-local address), and before the first pod starts the
// harness installs a guard in iptables that rejects every packet arriving from the pod bridge
// except pod-to-pod traffic, traffic to the node address (NODE_IP, which exists only on this
// machine: the API server, and servers a test binds there), and replies on connections the node
// opened (kubelet probes, Prometheus scrapes). Service traffic is DNATed by kube-proxy in PREROUTING, before the guard sees it, so a
// Service that resolves to a pod passes and one that resolves to nothing on this node is rejected.
// The guard is removed at teardown, only after every pod process is gone.

import { run, tryRun } from './exec.js';

/** The node's name in the cluster. */
export const NODE_NAME = 'gmt-node';
/**
 * The node's address: host-local (a /32 on a port-less bridge of its own), so that pods can reach
 * the API server and the kubelet can be reached by the API server, without using a real NIC.
 */
export const NODE_IP = '10.250.0.1';
/** Host-local link that holds NODE_IP. */
export const NODE_LINK = 'gmt-node0';
/** Pod network (one /24 on one bridge, the CNI bridge plugin with host-local IPAM). */
export const POD_CIDR = '10.244.0.0/24';
/** The CNI bridge pods are attached to. */
export const CNI_BRIDGE = 'gmt-cni0';
/** ClusterIP of the cluster DNS Service (CoreDNS). Inside the control plane's Service CIDR. */
export const DNS_SERVICE_IP = '10.96.0.10';
/** iptables chains of the guard (filter table): FORWARD and INPUT jump to them first. */
export const GUARD_CHAINS = { forward: 'GMT-POD-GUARD', input: 'GMT-POD-GUARD-IN' } as const;

/** Creates NODE_LINK holding NODE_IP. Idempotent. */
export async function addNodeAddress(): Promise<void> {
  if ((await tryRun('ip', ['link', 'show', NODE_LINK])) === undefined) {
    await run('ip', ['link', 'add', NODE_LINK, 'type', 'bridge']);
  }
  const addrs = await run('ip', ['-4', '-o', 'addr', 'show', 'dev', NODE_LINK]);
  if (!addrs.includes(`${NODE_IP}/32`)) await run('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', NODE_LINK]);
  await run('ip', ['link', 'set', NODE_LINK, 'up']);
}

/** Removes NODE_LINK (and with it NODE_IP) and the CNI bridge, if present. */
export async function removeLinks(): Promise<void> {
  for (const link of [CNI_BRIDGE, NODE_LINK]) {
    if ((await tryRun('ip', ['link', 'show', link])) !== undefined) await run('ip', ['link', 'del', link]);
  }
}

/** The guard's rules, in order, as iptables arguments after `-A CHAIN`. */
export function guardRules(): { v4Forward: string[][]; v4Input: string[][]; v6: string[][] } {
  const reject = ['-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'];
  return {
    v4Forward: [
      // Pod to pod on the bridge (also after kube-proxy DNATed a Service address to a pod).
      ['-i', CNI_BRIDGE, '-o', CNI_BRIDGE, '-s', POD_CIDR, '-d', POD_CIDR, '-j', 'RETURN'],
      ['-i', CNI_BRIDGE, '-m', 'comment', '--comment', 'gmt: pods reach nothing beyond this node', ...reject],
      ['-s', POD_CIDR, '-m', 'comment', '--comment', 'gmt: pod source on any other interface', ...reject],
    ],
    v4Input: [
      ['-i', CNI_BRIDGE, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN'],
      // The API server, and servers tests bind to the node address (never to a real NIC's).
      ['-i', CNI_BRIDGE, '-d', `${NODE_IP}/32`, '-j', 'RETURN'],
      ['-i', CNI_BRIDGE, '-m', 'comment', '--comment', 'gmt: pods reach only the node address on this node', ...reject],
    ],
    // Pods get no IPv6 addresses; reject whatever they send anyway.
    v6: [['-i', CNI_BRIDGE, '-j', 'REJECT']],
  };
}

async function chainExists(tool: string, chain: string): Promise<boolean> {
  return (await tryRun(tool, ['-w', '-t', 'filter', '-S', chain])) !== undefined;
}

/** Installs the guard (see the file comment). Must run before the kubelet starts any pod. */
export async function installGuard(): Promise<void> {
  await removeGuard();
  const rules = guardRules();
  const add = async (tool: string, chain: string, hook: string, list: string[][]): Promise<void> => {
    await run(tool, ['-w', '-t', 'filter', '-N', chain]);
    for (const r of list) await run(tool, ['-w', '-t', 'filter', '-A', chain, ...r]);
    await run(tool, ['-w', '-t', 'filter', '-I', hook, '1', '-j', chain]);
  };
  await add('iptables', GUARD_CHAINS.forward, 'FORWARD', rules.v4Forward);
  await add('iptables', GUARD_CHAINS.input, 'INPUT', rules.v4Input);
  await add('ip6tables', GUARD_CHAINS.forward, 'FORWARD', rules.v6);
  await add('ip6tables', GUARD_CHAINS.input, 'INPUT', rules.v6);
}

/**
 * True when both IPv4 guard chains are hooked into FORWARD and INPUT with nothing before them but
 * kube-proxy's and the kubelet's own jumps (they prepend theirs once they start). Those come first
 * by design: they only DNAT, drop, or accept replies and packets kube-proxy marked after DNAT to a
 * Service endpoint (pods or this node), so every new connection from a pod still meets the guard.
 */
export async function guardInstalled(): Promise<boolean> {
  for (const [hook, chain] of [
    ['FORWARD', GUARD_CHAINS.forward],
    ['INPUT', GUARD_CHAINS.input],
  ] as const) {
    const rules = (await run('iptables', ['-w', '-t', 'filter', '-S', hook])).split('\n').filter((l) => l.startsWith('-A '));
    const at = rules.indexOf(`-A ${hook} -j ${chain}`);
    if (at < 0) return false;
    if (!rules.slice(0, at).every((r) => / -j KUBE-[A-Z-]+$/.test(r))) return false;
  }
  return true;
}

/** Removes the guard's jumps and chains (IPv4 and IPv6). Idempotent. */
export async function removeGuard(): Promise<void> {
  for (const tool of ['iptables', 'ip6tables']) {
    for (const [hook, chain] of [
      ['FORWARD', GUARD_CHAINS.forward],
      ['INPUT', GUARD_CHAINS.input],
    ] as const) {
      while ((await tryRun(tool, ['-w', '-t', 'filter', '-D', hook, '-j', chain])) !== undefined);
      if (await chainExists(tool, chain)) {
        await run(tool, ['-w', '-t', 'filter', '-F', chain]);
        await run(tool, ['-w', '-t', 'filter', '-X', chain]);
      }
    }
  }
}

/** Splits one iptables-save rule line into arguments (iptables-save double-quotes arguments with spaces). */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let has = false;
  const chars = [...line];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] ?? '';
    if (quoted) {
      if (c === '\\' && i + 1 < chars.length) cur += chars[++i] ?? '';
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      has = true;
    } else if (c === ' ') {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has || cur !== '') out.push(cur);
  return out;
}

/**
 * Removes every chain whose name starts with one of `prefixes` (kube-proxy's and the kubelet's
 * KUBE-*, the CNI plugins' CNI-*), and every rule that jumps to one, from all tables, IPv4 and
 * IPv6. Chains and rules of anything else are left alone.
 */
export async function sweepChains(prefixes: readonly string[]): Promise<void> {
  const ours = (name: string): boolean => prefixes.some((p) => name.startsWith(p));
  for (const [save, tool] of [
    ['iptables-save', 'iptables'],
    ['ip6tables-save', 'ip6tables'],
  ] as const) {
    const dump = (await tryRun(save, [])) ?? '';
    let table = '';
    const chains = new Map<string, string[]>();
    const deletes: string[][] = [];
    for (const line of dump.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1).trim();
      else if (line.startsWith(':')) {
        const name = line.slice(1).split(' ')[0] ?? '';
        if (ours(name)) chains.set(table, [...(chains.get(table) ?? []), name]);
      } else if (line.startsWith('-A ')) {
        const args = splitRule(line);
        const chain = args[1] ?? '';
        const j = args.indexOf('-j');
        const g = args.indexOf('-g');
        const target = j >= 0 ? args[j + 1] : g >= 0 ? args[g + 1] : undefined;
        if (!ours(chain) && target !== undefined && ours(target)) deletes.push(['-t', table, '-D', ...args.slice(1)]);
      }
    }
    for (const d of deletes) await tryRun(tool, ['-w', ...d]);
    for (const [t, names] of chains) {
      for (const n of names) await tryRun(tool, ['-w', '-t', t, '-F', n]);
      for (const n of names) await tryRun(tool, ['-w', '-t', t, '-X', n]);
    }
  }
}

/** `nft list tables` lines ("table ip filter"), to find the tables a node created. */
export async function nftTables(): Promise<string[]> {
  return ((await tryRun('nft', ['list', 'tables'])) ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('table '));
}

/**
 * Deletes nftables tables that did not exist in `before` and now hold no rule: the empty iptables
 * tables that iptables-nft instantiates on first use, and kube-proxy's `kube-proxy` tables.
 */
export async function removeNewEmptyTables(before: readonly string[]): Promise<void> {
  for (const line of await nftTables()) {
    if (before.includes(line)) continue;
    const [, family, name] = line.split(/\s+/);
    if (family === undefined || name === undefined) continue;
    if (name === 'kube-proxy') {
      await tryRun('nft', ['delete', 'table', family, name]);
      continue;
    }
    const save = family === 'ip' ? 'iptables-save' : family === 'ip6' ? 'ip6tables-save' : undefined;
    if (save === undefined) continue;
    const dump = (await tryRun(save, ['-t', name])) ?? '-A';
    if (!dump.split('\n').some((l) => l.startsWith('-A '))) await tryRun('nft', ['delete', 'table', family, name]);
  }
}
