// Configuration files of the real test node's components (pure builders). Each setting that this
// machine kind requires says why; see docs/testing.md ("The real node").

import { CNI_BRIDGE, DNS_SERVICE_IP, NODE_IP, NODE_NAME, POD_CIDR } from './network.js';
import { NODE_IMAGES } from './images.js';

/** containerd 1.6 (Debian bookworm) configuration with its own root, state and socket under `dir`. */
export function buildContainerdConfig(dir: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[grpc]
  address = "${dir}/containerd/containerd.sock"
[ttrpc]
  address = "${dir}/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${NODE_IMAGES.pause}"
  disable_apparmor = true
  # Without CAP_SYS_RESOURCE (this VM) runc cannot lower oom_score_adj below its parent's:
  # "nsexec: failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  # The CRI streaming server (exec, attach, port-forward) on loopback.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni/net.d"
`;
}

/** The CNI network: one bridge, host-local IPAM over POD_CIDR, no masquerade (nothing leaves the node). */
export function buildCniConfig(dir: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'gmt-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: CNI_BRIDGE,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir: `${dir}/cni/ipam`, ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
      ],
    },
    null,
    2,
  );
}

/** KubeletConfiguration. */
export function buildKubeletConfig(opts: { dir: string; caPath: string; port: number; healthzPort: number }): string {
  const cfg = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    containerRuntimeEndpoint: `unix://${opts.dir}/containerd/containerd.sock`,
    // No systemd here; cgroup v1 (hybrid) is deprecated upstream and must be allowed explicitly.
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    // Without CAP_SYS_RESOURCE the kubelet cannot set its own oom_score_adj to -999.
    oomScoreAdj: 0,
    address: NODE_IP,
    port: opts.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: opts.healthzPort,
    // Only the API server (client certificate from the cluster CA) may use the kubelet API; pods
    // cannot reach it anyway (egress guard), but anonymous access stays off.
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: opts.caPath } },
    authorization: { mode: 'Webhook' },
    clusterDomain: 'cluster.local',
    clusterDNS: [DNS_SERVICE_IP],
    // Pods with dnsPolicy Default get no nameserver at all rather than the host's (which are
    // outside this machine); cluster names come from CoreDNS.
    resolvConf: '',
    podLogsDir: '/var/log/pods',
    serializeImagePulls: false,
    // A test machine's disk is often fuller than the kubelet's defaults allow.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    maxPods: 110,
    registerNode: true,
    rotateCertificates: false,
    serverTLSBootstrap: false,
  };
  return JSON.stringify(cfg, null, 2);
}

/** KubeProxyConfiguration (iptables mode) touching no conntrack sysctl and no real NIC. */
export function buildKubeProxyConfig(opts: { kubeconfig: string; healthzPort: number; metricsPort: number }): string {
  const cfg = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: opts.kubeconfig },
    hostnameOverride: NODE_NAME,
    bindAddress: NODE_IP,
    healthzBindAddress: `127.0.0.1:${opts.healthzPort}`,
    metricsBindAddress: `127.0.0.1:${opts.metricsPort}`,
    mode: 'iptables',
    clusterCIDR: POD_CIDR,
    // NodePorts only on the host-local node address: never on the machine's real NIC.
    nodePortAddresses: [`${NODE_IP}/32`],
    // Loopback NodePorts would need net.ipv4.conf.all.route_localnet=1.
    iptables: { localhostNodePorts: false, masqueradeAll: false, syncPeriod: '10s', minSyncPeriod: '0s' },
    // 0 = leave the machine's conntrack sysctls as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
  return JSON.stringify(cfg, null, 2);
}
