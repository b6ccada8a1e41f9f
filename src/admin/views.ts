import type { ServiceRegistry } from '../registry/registry.ts';
import type { Service } from '../registry/types.ts';

/** One row of `meshlet status` / `GET /debug/services`: a service and its endpoints at a glance. */
export interface ServiceSummary {
  namespace: string;
  name: string;
  type: Service['type'];
  clusterIPs: string[];
  headless: boolean;
  externalName?: string;
  ports: string[];
  endpoints: { ready: number; serving: number; total: number };
  addresses: string[];
}

export function summarizeServices(registry: ServiceRegistry): ServiceSummary[] {
  const rows: ServiceSummary[] = [];
  for (const svc of registry.services()) {
    const counts = { ready: 0, serving: 0, total: 0 };
    const addresses: string[] = [];
    for (const slice of registry.endpointSlicesOf(svc.namespace, svc.name)) {
      const ports = slice.ports.map((p) => p.port).join(',');
      for (const ep of slice.endpoints) {
        counts.total++;
        if (ep.conditions.ready) counts.ready++;
        if (ep.conditions.serving) counts.serving++;
        for (const address of ep.addresses) addresses.push(ports ? `${address}:${ports}` : address);
      }
    }
    rows.push({
      namespace: svc.namespace,
      name: svc.name,
      type: svc.type,
      clusterIPs: svc.clusterIPs,
      headless: svc.headless,
      ...(svc.externalName !== undefined && { externalName: svc.externalName }),
      ports: svc.ports.map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol}→${p.targetPort}`),
      endpoints: counts,
      addresses,
    });
  }
  return rows.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}
