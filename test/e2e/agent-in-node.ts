import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ControlPlane } from '../harness/control-plane.ts';
import { type NetnsNode, NODE_BIN, type TrackedProcess } from '../harness/netns.ts';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const POD_SERVER = fileURLToPath(new URL('./fixtures/pod-server.ts', import.meta.url));

/** meshlet's node-local address in the tests: DNS on :53 and every service listener. */
export const MESHLET_ADDRESS = '198.18.255.10';

/** The resolv.conf a pod on a Kubernetes node gets, pointing at meshlet. */
export const POD_RESOLV_CONF = `nameserver ${MESHLET_ADDRESS}
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:2
`;

/**
 * The agent as a node runs it: Kubernetes source, DNS on the link-local address, listeners on
 * automatic ports, iptables interception. `lo` carries the address because this kernel has no
 * dummy interfaces.
 */
export function nodeAgentConfig(nodeName: string, kubeconfig: string): ConfigInput {
  return {
    node: { name: nodeName },
    log: { level: 'info' },
    admin: { address: '127.0.0.1', port: 15090 },
    source: { kind: 'kubernetes', kubernetes: { kubeconfig } },
    registry: { coalesceMs: 10 },
    dns: { address: MESHLET_ADDRESS, port: 53, upstreams: ['127.0.0.1:5399'] },
    proxy: {
      address: MESHLET_ADDRESS,
      listenPort: 'auto',
      interception: { mode: 'iptables', interfaceName: 'lo', createDummy: false, verifyIntervalMs: 1000 },
    },
    shutdown: { gracePeriodMs: 2000 },
  };
}

/** Starts `meshlet agent` inside a node and resolves once it logs that it is running. */
export async function startAgent(node: NetnsNode, config: ConfigInput): Promise<TrackedProcess> {
  const dir = mkdtempSync(join(tmpdir(), `meshlet-agent-${node.name}-`));
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify(config));
  const agent = node.spawn(NODE_BIN, [MAIN, 'agent', '-c', file]);
  await agent.waitForOutput(/"msg":"agent running"/, 30_000);
  return agent;
}

/**
 * The agent's own identity, with only the reads the chart's RBAC grants it (services, nodes,
 * endpointslices); returns a kubeconfig for it whose server is `server` (the apiserver as the
 * nodes reach it).
 */
export async function agentKubeconfig(cp: ControlPlane, server: string): Promise<string> {
  await cp.apply(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: meshlet-agent }
rules:
  - { apiGroups: [""], resources: [services, nodes], verbs: [get, list, watch] }
  - { apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: meshlet-agent }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: meshlet-agent }
subjects: [{ apiGroup: rbac.authorization.k8s.io, kind: User, name: meshlet-agent }]
`);
  return cp.clientKubeconfig({ user: 'meshlet-agent', server });
}
