/**
 * Istio `DestinationRule` → meshlet traffic policy, for EdgeMesh users who configure load
 * balancing that way. Only the fields meshlet can honour are mapped; the others are reported as
 * warnings on the route, never as failures. Port-level settings override the rule's own.
 */
import type { OutlierOptions } from '../proxy/balance/outlier.ts';
import type { DestinationRule, IstioTrafficPolicy } from '../src/registry/types.ts';
import type { HashKey, LbPolicyKind } from './model.ts';

export interface RuleOverrides {
  lb?: LbPolicyKind;
  hashKey?: HashKey;
  outlier?: Partial<OutlierOptions>;
  warnings: string[];
}

const SIMPLE: Record<string, LbPolicyKind | undefined> = {
  ROUND_ROBIN: 'round-robin',
  RANDOM: 'random',
  LEAST_REQUEST: 'least-request',
  LEAST_CONN: 'least-request', // Istio's deprecated alias of LEAST_REQUEST
  UNSPECIFIED: undefined,
};

/** What a DestinationRule says for one service port (port-level settings win). */
export function overridesFromRule(rule: DestinationRule, port: number): RuleOverrides {
  const out: RuleOverrides = { warnings: [] };
  const where = `DestinationRule ${rule.namespace}/${rule.name}`;
  apply(rule.trafficPolicy, out, where);
  const portLevel = rule.trafficPolicy.portLevelSettings?.find((p) => p.port?.number === port);
  if (portLevel !== undefined) apply(portLevel, out, `${where} port ${port}`);
  return out;
}

function apply(policy: Omit<IstioTrafficPolicy, 'portLevelSettings'>, out: RuleOverrides, where: string): void {
  const lb = policy.loadBalancer;
  if (lb?.simple !== undefined) {
    const mapped = SIMPLE[lb.simple];
    if (mapped !== undefined) out.lb = mapped;
    else if (!(lb.simple in SIMPLE)) out.warnings.push(`${where}: loadBalancer.simple ${lb.simple} is not supported; ignored`);
  }
  const hash = lb?.consistentHash;
  if (hash !== undefined) {
    if (hash.httpHeaderName) out.hashKey = { from: 'header', name: hash.httpHeaderName.toLowerCase() };
    else if (hash.httpCookie?.name) out.hashKey = { from: 'cookie', name: hash.httpCookie.name };
    else if (hash.useSourceIp) out.hashKey = { from: 'source-ip' };
    else if (hash.httpQueryParameterName) {
      out.warnings.push(`${where}: consistentHash.httpQueryParameterName is not supported; hashing on the source IP`);
      out.hashKey = { from: 'source-ip' };
    }
    if (out.hashKey !== undefined) out.lb = 'ring-hash';
  }
  const od = policy.outlierDetection;
  if (od !== undefined) {
    const outlier: Partial<OutlierOptions> = { ...out.outlier };
    // meshlet sees connect failures, which Istio counts as gateway errors; 5xx counts them too.
    const consecutive = od.consecutiveGatewayErrors ?? od.consecutive5xxErrors;
    if (consecutive !== undefined) outlier.consecutiveFailures = consecutive;
    if (od.baseEjectionTime !== undefined) {
      const ms = parseDuration(od.baseEjectionTime);
      if (ms === undefined)
        out.warnings.push(`${where}: outlierDetection.baseEjectionTime "${od.baseEjectionTime}" is not a duration; ignored`);
      else outlier.ejectionMs = ms;
    }
    if (od.maxEjectionPercent !== undefined) outlier.maxEjectionPercent = od.maxEjectionPercent;
    out.outlier = outlier;
  }
}

/** Istio (protobuf) durations: `30s`, `1.5s`, `100ms`, `2m`, `1h`. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2];
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1_000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(value * factor);
}
