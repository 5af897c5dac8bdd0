// Pure parts of the real test node's harness: iptables-save parsing, the guard's rules, machine
// snapshot comparison, component configuration.

import test from 'ava';
import { buildCniConfig, buildContainerdConfig, buildKubeletConfig, buildKubeProxyConfig } from '../../harness/real-node/config.js';
import { diffMachine, type MachineState } from '../../harness/real-node/machine-state.js';
import { CNI_BRIDGE, guardRules, NODE_IP, POD_CIDR, splitRule } from '../../harness/real-node/network.js';

test('splitRule - splits iptables-save lines, honouring quotes and escapes', (t) => {
  t.deepEqual(splitRule('-A KUBE-SERVICES -m comment --comment "kubernetes service portals" -j KUBE-SVC-X'), [
    '-A',
    'KUBE-SERVICES',
    '-m',
    'comment',
    '--comment',
    'kubernetes service portals',
    '-j',
    'KUBE-SVC-X',
  ]);
  t.deepEqual(splitRule('-A X --comment "say \\"hi\\"" -j RETURN'), ['-A', 'X', '--comment', 'say "hi"', '-j', 'RETURN']);
  t.deepEqual(splitRule('-A X --comment "" -j RETURN'), ['-A', 'X', '--comment', '', '-j', 'RETURN']);
});

test('guardRules - allows only pod-to-pod forwarding and the API server port, rejects the rest of the bridge', (t) => {
  const r = guardRules(6443);
  const first = r.v4Forward[0] ?? [];
  t.deepEqual(first.slice(0, 4), ['-i', CNI_BRIDGE, '-o', CNI_BRIDGE]);
  t.is(first.at(-1), 'RETURN');
  t.true(first.includes(POD_CIDR));
  for (const rule of r.v4Forward.slice(1)) t.true(rule.includes('REJECT'));
  t.true(r.v4Input.some((x) => x.includes('6443') && x.includes(NODE_IP) && x.at(-1) === 'RETURN'));
  t.true((r.v4Input.at(-1) ?? []).includes('REJECT'));
  t.true(r.v6.every((x) => x.includes('REJECT')));
});

const base: MachineState = {
  sysctls: { 'net/ipv4/ip_forward': '0', 'vm/overcommit_memory': '0' },
  iptables: '*filter\n:INPUT ACCEPT\nCOMMIT',
  ip6tables: '',
  nftTables: '',
  links: 'eth0\nlo',
  addresses: 'lo inet 127.0.0.1/8',
  routes: 'default via 192.0.2.1 dev eth0',
  mounts: '/',
  cgroups: '',
  paths: '',
};

test('diffMachine - empty for equal snapshots, names each difference otherwise', (t) => {
  t.deepEqual(diffMachine(base, { ...base }), []);
  const after: MachineState = {
    ...base,
    sysctls: { ...base.sysctls, 'vm/overcommit_memory': '1' },
    links: 'eth0\ngmt-cni0\nlo',
    iptables: '*filter\n:INPUT ACCEPT\n:KUBE-FIREWALL -\nCOMMIT',
  };
  const d = diffMachine(base, after);
  t.is(d.length, 3);
  t.true(d.some((x) => x.startsWith('sysctl vm/overcommit_memory: 0 -> 1')));
  t.true(d.some((x) => x.startsWith('links:') && x.includes('gmt-cni0')));
  t.true(d.some((x) => x.startsWith('iptables:') && x.includes('KUBE-FIREWALL')));
});

test('configs - the settings this machine kind requires', (t) => {
  const kubelet = JSON.parse(buildKubeletConfig({ dir: '/w', caPath: '/w/ca.crt', port: 1, healthzPort: 2 })) as Record<string, unknown>;
  t.is(kubelet['cgroupDriver'], 'cgroupfs');
  t.is(kubelet['failSwapOn'], false);
  t.is(kubelet['failCgroupV1'], false);
  t.is(kubelet['oomScoreAdj'], 0);
  t.is(kubelet['resolvConf'], '');
  t.is(kubelet['address'], NODE_IP);
  const proxy = JSON.parse(buildKubeProxyConfig({ kubeconfig: '/k', healthzPort: 1, metricsPort: 2 })) as Record<string, unknown>;
  t.is(proxy['mode'], 'iptables');
  t.deepEqual(proxy['nodePortAddresses'], [`${NODE_IP}/32`]);
  const containerd = buildContainerdConfig('/w');
  t.regex(containerd, /^\s*restrict_oom_score_adj = true$/m);
  t.regex(containerd, /^\s*SystemdCgroup = false$/m);
  t.regex(containerd, /^root = "\/w\/containerd\/root"$/m);
  const cni = JSON.parse(buildCniConfig('/w')) as { plugins: { ipMasq: boolean; bridge: string }[] };
  t.is(cni.plugins[0]?.ipMasq, false);
  t.is(cni.plugins[0]?.bridge, CNI_BRIDGE);
});
