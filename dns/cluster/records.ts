import type { EndpointSlice, Service } from '../../src/registry/types.ts';
import { isEncodableName, reverseName } from '../wire/names.ts';

/**
 * Which names and records one Service publishes, per the Kubernetes DNS-Based Service
 * Discovery specification (kubernetes/dns docs/specification.md, schema 1.1.0). The section
 * numbers below are the spec's.
 */

export interface SrvTarget {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** The records of one name, as one contributor (a service, or the zone apex) sees them. */
export interface RecordSet {
  a: string[];
  aaaa: string[];
  srv: SrvTarget[];
  ptr: string[];
  cname: string | undefined;
  txt: string[];
}

/** name (lower case, no trailing dot) → records; an empty set is an empty non-terminal (RFC 8020). */
export type Contribution = Map<string, RecordSet>;

export function emptyRecordSet(): RecordSet {
  return { a: [], aaaa: [], srv: [], ptr: [], cname: undefined, txt: [] };
}

export function serviceRecords(service: Service, slices: EndpointSlice[], zone: string): Contribution {
  const out: Contribution = new Map();
  const base = `${service.name}.${service.namespace}.svc.${zone}`.toLowerCase();
  const add = (name: string): RecordSet => {
    let set = out.get(name);
    if (!set) {
      set = emptyRecordSet();
      out.set(name, set);
    }
    return set;
  };
  // The namespace exists as soon as it holds a service: `<ns>.svc.<zone>` is NODATA, not NXDOMAIN.
  add(`${service.namespace}.svc.${zone}`.toLowerCase());
  if (!isEncodableName(base)) return out;

  if (service.type === 'ExternalName') {
    // §2.5: a CNAME to the external name.
    const target = (service.externalName ?? '').replace(/\.$/, '').toLowerCase();
    if (target && isEncodableName(target)) add(base).cname = target;
    return out;
  }

  if (!service.headless) {
    // §2.3.1 A/AAAA of the cluster IPs, §2.3.2 SRV per named port, §2.3.3 PTR.
    if (service.clusterIPs.length === 0) return out;
    const set = add(base);
    for (const ip of service.clusterIPs) {
      (ip.includes(':') ? set.aaaa : set.a).push(ip);
      const rev = reverseName(ip);
      if (rev) add(rev).ptr.push(base);
    }
    for (const port of service.ports) {
      if (port.name === '') continue; // unnamed ports have no SRV record
      const name = `_${port.name}._${port.protocol}.${base}`.toLowerCase();
      if (!isEncodableName(name)) continue;
      add(`_${port.protocol}.${base}`.toLowerCase());
      add(name).srv.push({ priority: 0, weight: 100, port: port.port, target: base });
    }
    return out;
  }

  // §2.4 headless: the ready endpoints themselves (§2.1 "ready", or publishNotReadyAddresses).
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const endpoint of slice.endpoints) {
      if (!endpoint.conditions.ready && !service.publishNotReadyAddresses) continue;
      const first = endpoint.addresses[0];
      if (first === undefined) continue;
      // §2.1: the endpoint's hostname, else a unique system-assigned name (CoreDNS: the dashed IP).
      const host = (endpoint.hostname ?? dashedIP(first)).toLowerCase();
      const hostName = `${host}.${base}`;
      const hostValid = isEncodableName(hostName) && !host.includes('.');
      for (const ip of endpoint.addresses) {
        const family = ip.includes(':') ? 'aaaa' : 'a';
        if (!seen.has(ip)) {
          seen.add(ip);
          add(base)[family].push(ip); // §2.4.1
        }
        if (!hostValid) continue;
        const hostSet = add(hostName); // §2.4.1 <hostname>.<svc>...
        if (!hostSet[family].includes(ip)) hostSet[family].push(ip);
        const rev = reverseName(ip);
        if (rev) add(rev).ptr.push(hostName); // §2.4.3
      }
      if (!hostValid) continue;
      for (const port of slice.ports) {
        if (port.name === '') continue; // §2.4.2: named ports only
        const name = `_${port.name}._${port.protocol}.${base}`.toLowerCase();
        if (!isEncodableName(name)) continue;
        add(`_${port.protocol}.${base}`.toLowerCase());
        const srv = add(name).srv;
        if (!srv.some((s) => s.target === hostName && s.port === port.port)) {
          srv.push({ priority: 0, weight: 100, port: port.port, target: hostName });
        }
      }
    }
  }
  // §2.4.1: a headless service without ready endpoints does not exist (NXDOMAIN), and neither do
  // the `_<proto>` names under it.
  return out;
}

/** CoreDNS's name for an endpoint without a hostname: 10-11-12-13; IPv6 2001:db8:: → 2001-db8--0. */
export function dashedIP(ip: string): string {
  const dashed = ip.replace(/[.:]/g, '-');
  return dashed.endsWith('-') ? `${dashed}0` : dashed;
}
