import t from 'tap';
import type { TrafficPolicy } from '../../policies/model.ts';
import { ANNOTATION_TCP_FORWARDING, kernelEndpoints } from '../../proxy/iptables/kernel-forwarding.ts';
import type { RouteContext } from '../../proxy/route.ts';
import { service } from '../proxy/helpers.ts';

// Which ports iptables may forward straight to endpoints, and to which endpoints.

const policy: TrafficPolicy = { lb: 'round-robin', nodeLocalOnly: false, preferClose: false, source: 'default' };
const endpoints = [
  { address: '198.18.1.1', port: 80, nodeName: 'a', zone: 'z1' },
  { address: '198.18.2.1', port: 80, nodeName: 'b', zone: 'z1' },
  { address: '198.18.3.1', port: 80, nodeName: 'c', zone: 'z2' },
];

/** Only the fields kernelEndpoints reads: building a whole route needs a dialer, metrics and pools. */
function route(extra: { mode?: string; protocol?: string; policy?: Partial<TrafficPolicy>; endpoints?: typeof endpoints } = {}) {
  return {
    mode: extra.mode ?? 'tcp',
    servicePort: { name: 'db', port: 5432, protocol: extra.protocol ?? 'TCP' },
    policy: { ...policy, ...extra.policy },
    endpoints: extra.endpoints ?? endpoints,
  } as unknown as RouteContext;
}

const svc = service('db', [{ name: 'db', port: 5432 }]);
const annotated = (v: string) => service('db', [{ name: 'db', port: 5432 }], { annotations: { [ANNOTATION_TCP_FORWARDING]: v } });
const addresses = (r: { address: string }[] | undefined) => r?.map((e) => e.address);

t.test('off unless asked: by config, or by the Service annotation (which wins)', async (t) => {
  t.equal(kernelEndpoints(route(), svc, 'proxy', 'a', 'z1'), undefined);
  t.same(addresses(kernelEndpoints(route(), svc, 'kernel', 'a', 'z1')), ['198.18.1.1', '198.18.2.1', '198.18.3.1']);
  t.same(addresses(kernelEndpoints(route(), annotated('kernel'), 'proxy', 'a', 'z1'))?.length, 3);
  t.equal(kernelEndpoints(route(), annotated('proxy'), 'kernel', 'a', 'z1'), undefined);
});

t.test('only opaque TCP with a policy iptables can express, and some endpoint', async (t) => {
  t.equal(kernelEndpoints(route({ mode: 'http' }), svc, 'kernel', 'a', 'z1'), undefined, 'HTTP: per request');
  t.equal(kernelEndpoints(route({ mode: 'udp', protocol: 'UDP' }), svc, 'kernel', 'a', 'z1'), undefined, 'UDP: conntrack');
  t.equal(kernelEndpoints(route({ policy: { lb: 'ring-hash' } }), svc, 'kernel', 'a', 'z1'), undefined);
  t.equal(kernelEndpoints(route({ policy: { lb: 'least-request' } }), svc, 'kernel', 'a', 'z1'), undefined);
  t.equal(kernelEndpoints(route({ policy: { clientIpAffinityMs: 1000 } }), svc, 'kernel', 'a', 'z1'), undefined);
  t.ok(kernelEndpoints(route({ policy: { lb: 'random' } }), svc, 'kernel', 'a', 'z1'));
  t.equal(kernelEndpoints(route({ endpoints: [] }), svc, 'kernel', 'a', 'z1'), undefined, 'none: the listener refuses');
});

t.test('Local and PreferClose choose the endpoints written', async (t) => {
  t.same(addresses(kernelEndpoints(route({ policy: { nodeLocalOnly: true } }), svc, 'kernel', 'b', 'z1')), ['198.18.2.1']);
  t.equal(kernelEndpoints(route({ policy: { nodeLocalOnly: true } }), svc, 'kernel', 'x', 'z1'), undefined);
  t.same(addresses(kernelEndpoints(route({ policy: { preferClose: true } }), svc, 'kernel', 'c', 'z2')), ['198.18.3.1']);
  t.same(addresses(kernelEndpoints(route({ policy: { preferClose: true } }), svc, 'kernel', 'x', 'z1')), [
    '198.18.1.1',
    '198.18.2.1',
  ]);
  t.same(addresses(kernelEndpoints(route({ policy: { preferClose: true } }), svc, 'kernel', 'x', 'z9'))?.length, 3);
});
