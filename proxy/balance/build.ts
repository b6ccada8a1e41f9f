import type { TrafficPolicy } from '../../policies/model.ts';
import { ClientIpAffinityPicker } from './client-ip.ts';
import { LeastRequestPicker } from './least-request.ts';
import { LocalityPicker } from './locality.ts';
import { type OutlierOptions, OutlierPicker } from './outlier.ts';
import type { Picker } from './picker.ts';
import { RandomPicker } from './random.ts';
import { RingHashPicker } from './ring-hash.ts';
import { RoundRobinPicker } from './round-robin.ts';

export interface BalancerOptions {
  policy: TrafficPolicy;
  nodeName: string;
  zone: string | undefined;
  outlier: OutlierOptions;
}

/**
 * One service port's picker, outermost first: outlier ejection (panic fallback) → ClientIP
 * affinity → locality tiers → the policy. Built when the policy changes, then only `update`d.
 */
export function buildBalancer(opts: BalancerOptions): OutlierPicker {
  const { policy } = opts;
  const makePolicy = (): Picker => {
    switch (policy.lb) {
      case 'random':
        return new RandomPicker();
      case 'least-request':
        return new LeastRequestPicker();
      case 'ring-hash':
        return new RingHashPicker(policy.hashKey ?? { from: 'source-ip' });
      default:
        return new RoundRobinPicker();
    }
  };
  let picker: Picker = new LocalityPicker(
    { nodeName: opts.nodeName, zone: opts.zone, nodeLocalOnly: policy.nodeLocalOnly, preferClose: policy.preferClose },
    makePolicy,
  );
  if (policy.clientIpAffinityMs !== undefined) picker = new ClientIpAffinityPicker(picker, policy.clientIpAffinityMs);
  return new OutlierPicker(picker, { ...opts.outlier, ...policy.outlier });
}
