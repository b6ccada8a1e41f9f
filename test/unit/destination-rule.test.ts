import t from 'tap';
import { overridesFromRule, parseDuration } from '../../policies/destination-rule.ts';
import { policyFromService } from '../../policies/model.ts';
import { ruleTarget } from '../../src/registry/registry.ts';
import type { DestinationRule } from '../../src/registry/types.ts';
import { service } from './fixtures.ts';

const rule = (trafficPolicy: DestinationRule['trafficPolicy'], host = 'web'): DestinationRule => ({
  namespace: 'default',
  name: 'web-dr',
  host,
  trafficPolicy,
});

t.test('host names the service: short or fully qualified', async (t) => {
  t.equal(ruleTarget(rule({}, 'web')), 'default/web');
  t.equal(ruleTarget(rule({}, 'web.shop')), undefined, 'two labels are a host name, not svc.ns (as in Istio)');
  t.equal(ruleTarget(rule({}, 'web.shop.svc.cluster.local')), 'shop/web');
  t.equal(ruleTarget(rule({}, 'Web.Shop.svc.edge.example')), 'shop/web', 'any cluster domain, any case');
  t.equal(ruleTarget(rule({}, '*.shop.svc.cluster.local')), undefined, 'wildcards name no single service');
  t.equal(ruleTarget(rule({}, 'example.org')), undefined, 'an external host is not a service');
});

t.test('simple load balancers map onto meshlet policies', async (t) => {
  t.equal(overridesFromRule(rule({ loadBalancer: { simple: 'RANDOM' } }), 80).lb, 'random');
  t.equal(overridesFromRule(rule({ loadBalancer: { simple: 'LEAST_REQUEST' } }), 80).lb, 'least-request');
  t.equal(overridesFromRule(rule({ loadBalancer: { simple: 'LEAST_CONN' } }), 80).lb, 'least-request');
  t.equal(overridesFromRule(rule({ loadBalancer: { simple: 'ROUND_ROBIN' } }), 80).lb, 'round-robin');
  const passthrough = overridesFromRule(rule({ loadBalancer: { simple: 'PASSTHROUGH' } }), 80);
  t.equal(passthrough.lb, undefined);
  t.match(passthrough.warnings, [/PASSTHROUGH is not supported/]);
});

t.test('consistent hash keys become ring-hash', async (t) => {
  t.same(overridesFromRule(rule({ loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } }), 80), {
    lb: 'ring-hash',
    hashKey: { from: 'header', name: 'x-user' },
    warnings: [],
  });
  t.same(overridesFromRule(rule({ loadBalancer: { consistentHash: { httpCookie: { name: 'sid' } } } }), 80).hashKey, {
    from: 'cookie',
    name: 'sid',
  });
  t.same(overridesFromRule(rule({ loadBalancer: { consistentHash: { useSourceIp: true } } }), 80).hashKey, { from: 'source-ip' });
  const query = overridesFromRule(rule({ loadBalancer: { consistentHash: { httpQueryParameterName: 'u' } } }), 80);
  t.same(query.hashKey, { from: 'source-ip' });
  t.match(query.warnings, [/httpQueryParameterName is not supported/]);
});

t.test('port-level settings win over the rule-wide ones; outlier detection maps', async (t) => {
  const r = rule({
    loadBalancer: { simple: 'RANDOM' },
    outlierDetection: { consecutive5xxErrors: 7, baseEjectionTime: '45s', maxEjectionPercent: 30 },
    portLevelSettings: [
      { port: { number: 9090 }, loadBalancer: { simple: 'LEAST_REQUEST' }, outlierDetection: { consecutiveGatewayErrors: 2 } },
    ],
  });
  t.same(overridesFromRule(r, 80), {
    lb: 'random',
    outlier: { consecutiveFailures: 7, ejectionMs: 45_000, maxEjectionPercent: 30 },
    warnings: [],
  });
  t.same(overridesFromRule(r, 9090), {
    lb: 'least-request',
    outlier: { consecutiveFailures: 2, ejectionMs: 45_000, maxEjectionPercent: 30 },
    warnings: [],
  });
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('100ms'), 100);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('soon'), undefined);
});

t.test('a DestinationRule wins over the meshlet annotations', async (t) => {
  const svc = service('web', { annotations: { 'meshlet.io/lb-policy': 'random' } });
  const { policy, warnings } = policyFromService(svc, 'round-robin', rule({ loadBalancer: { simple: 'LEAST_REQUEST' } }), 80);
  t.equal(policy.lb, 'least-request');
  t.equal(policy.source, 'destination-rule');
  t.same(warnings, []);
  t.equal(policyFromService(svc, 'round-robin').policy.lb, 'random', 'without a rule the annotation applies');
});
