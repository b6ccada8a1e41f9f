import type { ServiceSummary } from '../admin/views.ts';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Node } from '../registry/types.ts';
import { renderTable } from './table.ts';

interface AgentStatus {
  node: string;
  version: string;
  state: string;
  uptimeSeconds: number;
  ready: boolean;
  notReady: string[];
  source: { kind: string; synced: boolean; lastSyncAt?: string; lastError?: string };
  registry: { version: number; services: number; endpointSlices: number; endpoints: number; nodes: number };
  /** `cloud` comes from the apiserver cache (apicache): reachable / unreachable / unknown. */
  modules: { name: string; started: boolean; cloud?: string }[];
}

async function getJson<T>(base: string, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(5_000) });
  } catch (err) {
    throw new MeshletError(
      ErrorCodes.ADMIN_UNREACHABLE,
      `cannot reach the agent's admin endpoint at ${base}: ${errorMessage(err)} (is \`meshlet agent\` running? use --admin)`,
      { cause: err },
    );
  }
  if (!res.ok) throw new MeshletError(ErrorCodes.ADMIN_UNREACHABLE, `${base}${path} answered ${res.status}`);
  return (await res.json()) as T;
}

/** `meshlet status`: what a running agent knows, as readable tables (or JSON). */
export async function renderStatus(adminUrl: string, json: boolean): Promise<string> {
  const [status, services, nodes] = await Promise.all([
    getJson<AgentStatus>(adminUrl, '/debug/status'),
    getJson<ServiceSummary[]>(adminUrl, '/debug/services'),
    getJson<Node[]>(adminUrl, '/debug/nodes'),
  ]);
  if (json) return `${JSON.stringify({ status, services, nodes }, null, 2)}\n`;
  const out: string[] = [];
  const r = status.registry;
  out.push(
    `node ${status.node}   meshlet ${status.version}   ${status.state}   ${status.ready ? 'ready' : `NOT READY (${status.notReady.join('; ')})`}   up ${status.uptimeSeconds}s`,
    `source ${status.source.kind}: ${status.source.synced ? `synced ${status.source.lastSyncAt ?? ''}` : 'not synced'}${status.source.lastError ? `   last error: ${status.source.lastError.split('\n')[0]}` : ''}`,
    `registry v${r.version}: ${r.services} services, ${r.endpointSlices} endpoint slices, ${r.endpoints} endpoints, ${r.nodes} nodes`,
    `modules: ${status.modules.map((m) => `${m.name}${m.started ? '' : ' (stopped)'}${m.cloud ? ` (cloud ${m.cloud})` : ''}`).join(', ') || 'none'}`,
    '',
    renderTable(
      ['NAMESPACE', 'NAME', 'TYPE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
      services.map((s) => [
        s.namespace,
        s.name,
        s.type,
        s.headless ? 'None' : s.externalName ? `→ ${s.externalName}` : s.clusterIPs.join(',') || '-',
        s.ports.join(' ') || '-',
        `${s.endpoints.ready}/${s.endpoints.total} ready`,
      ]),
    ),
  );
  if (nodes.length > 0) {
    out.push(
      '',
      renderTable(
        ['NODE', 'READY', 'ZONE', 'ADDRESSES'],
        nodes.map((n) => [n.name, n.ready, n.zone ?? '-', n.addresses.map((a) => a.address).join(',') || '-']),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}
