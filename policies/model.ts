/**
 * The traffic-policy model: how one service port's traffic is balanced, where the settings come
 * from, and what a picker needs to know. Pure data and parsing; the pickers live in
 * proxy/balance/. Policies come from the Service itself (spec fields and meshlet.io/
 * annotations) and from an Istio DestinationRule naming it (destination-rule.ts); see
 * policies/README.md.
 */
import type { OutlierOptions } from '../proxy/balance/outlier.ts';
import type { DestinationRule, Service } from '../src/registry/types.ts';
import { overridesFromRule } from './destination-rule.ts';

export const LB_POLICIES = ['round-robin', 'random', 'least-request', 'ring-hash'] as const;
export type LbPolicyKind = (typeof LB_POLICIES)[number];

/** What a consistent-hash policy hashes. */
export type HashKey = { from: 'header'; name: string } | { from: 'cookie'; name: string } | { from: 'source-ip' };

export const ANNOTATION_LB_POLICY = 'meshlet.io/lb-policy';
export const ANNOTATION_HASH_KEY = 'meshlet.io/hash-key';

/** Where a policy was read from. */
export type PolicySource = 'default' | 'service' | 'destination-rule';

export interface TrafficPolicy {
  lb: LbPolicyKind;
  /** Set for ring-hash; defaults to the source IP. */
  hashKey?: HashKey;
  /** Service.spec.sessionAffinity ClientIP: the affinity lifetime in ms; undefined when off. */
  clientIpAffinityMs?: number;
  /** internalTrafficPolicy: Local: only endpoints on this node. */
  nodeLocalOnly: boolean;
  /** trafficDistribution: PreferClose: same node, then same zone, then any. */
  preferClose: boolean;
  /** Outlier-ejection settings that replace config `proxy.outlier` (from a DestinationRule). */
  outlier?: Partial<OutlierOptions>;
  source: PolicySource;
}

export interface PolicyResult {
  policy: TrafficPolicy;
  /** Human-readable problems with annotations (the policy falls back to the default). */
  warnings: string[];
}

/** Parses `header:x-user`, `cookie:session` or `source-ip`. */
export function parseHashKey(text: string): HashKey | undefined {
  const value = text.trim();
  if (value === 'source-ip') return { from: 'source-ip' };
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const kind = value.slice(0, colon);
  const name = value.slice(colon + 1).trim();
  if (name === '' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return undefined;
  if (kind === 'header') return { from: 'header', name: name.toLowerCase() };
  if (kind === 'cookie') return { from: 'cookie', name };
  return undefined;
}

/**
 * The policy of one service port, from the service's spec and annotations and, when one names
 * the service, an Istio DestinationRule, which wins over the annotations (as it does for
 * EdgeMesh users). Invalid settings never fail the service: they are reported as warnings and
 * the default applies.
 */
export function policyFromService(
  service: Service,
  defaultLb: LbPolicyKind,
  rule?: DestinationRule,
  port?: number,
): PolicyResult {
  const warnings: string[] = [];
  let lb = defaultLb;
  let source: PolicySource = 'default';
  let hashKey: HashKey | undefined;

  const lbText = service.annotations[ANNOTATION_LB_POLICY];
  if (lbText !== undefined) {
    const wanted = lbText.trim() as LbPolicyKind;
    if ((LB_POLICIES as readonly string[]).includes(wanted)) {
      lb = wanted;
      source = 'service';
    } else {
      warnings.push(`${ANNOTATION_LB_POLICY}: unknown policy "${lbText}" (one of ${LB_POLICIES.join(', ')}); using ${defaultLb}`);
    }
  }
  const keyText = service.annotations[ANNOTATION_HASH_KEY];
  if (keyText !== undefined) {
    const parsed = parseHashKey(keyText);
    if (parsed === undefined) {
      warnings.push(`${ANNOTATION_HASH_KEY}: cannot parse "${keyText}" (header:<name>, cookie:<name> or source-ip)`);
    } else if (lb !== 'ring-hash') {
      warnings.push(`${ANNOTATION_HASH_KEY} is set but the policy is ${lb}, not ring-hash; ignored`);
    } else {
      hashKey = parsed;
    }
  }
  let outlier: Partial<OutlierOptions> | undefined;
  if (rule !== undefined) {
    const overrides = overridesFromRule(rule, port ?? 0);
    warnings.push(...overrides.warnings);
    if (overrides.lb !== undefined) {
      lb = overrides.lb;
      hashKey = overrides.hashKey;
      source = 'destination-rule';
    }
    if (overrides.outlier !== undefined) {
      outlier = overrides.outlier;
      source = 'destination-rule';
    }
  }
  if (lb === 'ring-hash' && hashKey === undefined) hashKey = { from: 'source-ip' };

  const policy: TrafficPolicy = {
    lb,
    nodeLocalOnly: service.internalTrafficPolicy === 'Local',
    preferClose: service.trafficDistribution === 'PreferClose' || service.trafficDistribution === 'PreferSameZone',
    source,
  };
  if (hashKey !== undefined) policy.hashKey = hashKey;
  if (outlier !== undefined) policy.outlier = outlier;
  if (service.sessionAffinity === 'ClientIP') {
    if (lb !== defaultLb && source !== 'default') {
      warnings.push(`sessionAffinity ClientIP is applied on top of ${lb}: a client stays on its first endpoint`);
    }
    policy.clientIpAffinityMs = service.sessionAffinityTimeoutSeconds * 1000;
  }
  return { policy, warnings };
}
