/**
 * Generated registries for the benchmarks, in the standalone file format
 * (src/sources/file-format.ts). Addresses come only from 198.18.0.0/15 (RFC 2544 benchmarking
 * space): service cluster IPs from 198.18.0.0/16, endpoint (pod) addresses from 198.19.0.0/16.
 */

export interface GeneratedService {
  name: string;
  namespace: string;
  clusterIP: string;
  endpoints: { address: string; hostname: string }[];
}

export const NAMESPACES = 10;

function ipFrom(base: string, n: number): string {
  return `${base}.${(n >> 8) & 255}.${n & 255}`;
}

export function clusterIP(i: number): string {
  return ipFrom('198.18', i + 1);
}

/** `services` services spread over 10 namespaces, each with `perService` endpoints. */
export function generateServices(services: number, perService: number): GeneratedService[] {
  const out: GeneratedService[] = [];
  let pod = 1;
  for (let i = 0; i < services; i++) {
    const endpoints = [];
    for (let j = 0; j < perService; j++) endpoints.push({ address: ipFrom('198.19', pod++), hostname: `pod-${j}` });
    out.push({ name: `svc-${i}`, namespace: `ns-${i % NAMESPACES}`, clusterIP: clusterIP(i), endpoints });
  }
  return out;
}

/** The registry file (JSON is valid YAML; the file source parses it as YAML). */
export function registryFile(
  services: readonly GeneratedService[],
  opts: { port?: number; targetPort?: number; appProtocol?: string } = {},
): string {
  const port = opts.port ?? 80;
  return JSON.stringify({
    nodes: [{ name: 'bench', addresses: ['127.0.0.1'] }],
    services: services.map((s) => ({
      name: s.name,
      namespace: s.namespace,
      clusterIP: s.clusterIP,
      ports: [
        {
          name: 'http',
          port,
          targetPort: opts.targetPort ?? 8080,
          ...(opts.appProtocol !== undefined && { appProtocol: opts.appProtocol }),
        },
      ],
      endpoints: s.endpoints.map((e) => ({ addresses: [e.address], hostname: e.hostname, nodeName: 'bench' })),
    })),
  });
}

/**
 * The same names as an /etc/hosts file for CoreDNS's `hosts` plugin and dnsmasq: one line per
 * service (`<svc>.<ns>.svc.<domain>`) and, with `withEndpoints`, one per endpoint
 * (`<hostname>.<svc>.<ns>.svc.<domain>`, as for a headless service).
 */
export function hostsFile(services: readonly GeneratedService[], withEndpoints: boolean, domain = 'cluster.local'): string {
  const lines: string[] = [];
  for (const s of services) {
    lines.push(`${s.clusterIP} ${s.name}.${s.namespace}.svc.${domain}`);
    if (withEndpoints) {
      for (const e of s.endpoints) lines.push(`${e.address} ${e.hostname}.${s.name}.${s.namespace}.svc.${domain}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
