import type { KubeConnection } from '../../src/kube/connection.ts';
import { KubeStatusError, kubeRequest } from '../../src/kube/http.ts';
import type { KeyRing } from '../../src/witness/auth.ts';
import { microTime } from '../../src/witness/module.ts';
import { type Report, reportLeaseName, signReport } from '../../src/witness/report.ts';

/** Polls until check returns a value other than undefined/false, at most timeoutMs; returns it. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface EdgeNodeObj {
  status?: {
    phase?: string;
    phaseSince?: string;
    agentVersion?: string;
    peers?: { node: string; reachable: boolean }[];
    conditions?: { type: string; status: string; reason: string }[];
  };
}

export async function edgeNode(conn: KubeConnection, name: string): Promise<EdgeNodeObj | undefined> {
  try {
    return await kubeRequest<EdgeNodeObj>(conn, 'GET', `/apis/meshlet.io/v1alpha1/edgenodes/${name}`);
  } catch (err) {
    if (err instanceof KubeStatusError && err.status === 404) return undefined;
    throw err;
  }
}

export async function phaseOf(conn: KubeConnection, name: string): Promise<string | undefined> {
  return (await edgeNode(conn, name))?.status?.phase;
}

/** Registers a Node as kubelet does (Ready, an InternalIP) and creates its Lease. */
export async function registerNode(conn: KubeConnection, name: string, ip: string): Promise<void> {
  const t = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const node = await kubeRequest<{ metadata: { uid: string } }>(conn, 'POST', '/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
  });
  await kubeRequest(
    conn,
    'PATCH',
    `/api/v1/nodes/${name}/status`,
    {
      status: {
        addresses: [{ type: 'InternalIP', address: ip }],
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'stand-in',
            lastHeartbeatTime: t,
            lastTransitionTime: t,
          },
        ],
      },
    },
    { patchType: 'strategic' },
  );
  await kubeRequest(conn, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace: 'kube-node-lease',
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata.uid }],
    },
    spec: { holderIdentity: name, leaseDurationSeconds: 10, renewTime: microTime(new Date()) },
  });
}

/** Renews a node Lease as kubelet does (read, then update with its resourceVersion). */
export async function renewLease(conn: KubeConnection, name: string): Promise<void> {
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`;
  const lease = await kubeRequest<{ spec: { renewTime?: string } }>(conn, 'GET', path);
  lease.spec.renewTime = microTime(new Date());
  await kubeRequest(conn, 'PUT', path, lease);
}

/** Writes a witness report Lease for `reporter` (signed with `keys`, or with raw annotations). */
export async function writeReport(
  conn: KubeConnection,
  namespace: string,
  reporter: string,
  content: Report | Record<string, string>,
  keys: KeyRing,
): Promise<void> {
  const annotations =
    'v' in content && content.v === 1 ? signReport(keys, content as Report) : (content as Record<string, string>);
  const name = reportLeaseName(reporter);
  const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`;
  try {
    await kubeRequest(conn, 'PATCH', path, {
      metadata: { annotations },
      spec: { holderIdentity: reporter, renewTime: microTime(new Date()) },
    });
  } catch (err) {
    if (!(err instanceof KubeStatusError && err.status === 404)) throw err;
    await kubeRequest(conn, 'POST', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, annotations },
      spec: { holderIdentity: reporter, renewTime: microTime(new Date()) },
    });
  }
}

/** A report from `reporter` saying it heard each of `heard` `agoMs` ago (absent: never). */
export function peerReport(reporter: string, peers: Record<string, number | undefined>, now = Date.now()): Report {
  return {
    v: 1,
    node: reporter,
    ts: new Date(now).toISOString(),
    agentVersion: '0.0.0-test',
    cloud: { reachable: true, known: true, since: new Date(now - 60_000).toISOString() },
    peers: Object.entries(peers).map(([node, ago]) => ({
      node,
      ...(ago !== undefined && { lastHeard: new Date(now - ago).toISOString() }),
      version: '0.0.0-test',
    })),
  };
}

export async function metricValue(adminUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
