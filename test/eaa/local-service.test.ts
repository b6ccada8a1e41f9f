import t from 'tap';
import { type ConfigInput, ConfigSchema } from '../../src/config/schema.ts';
import { eaaLocalSlices, LOCAL_SLICE_NAME } from '../../src/eaa/local-service.ts';
import type { Service, ServicePort } from '../../src/registry/types.ts';

// The EAA Service is node-local: the proxy gets one synthetic slice naming this node's EAA
// listeners for the ports whose targetPort is eaa.port or eaa.authPort, and nothing else changes.

const config = (eaa: NonNullable<ConfigInput['eaa']>) =>
  ConfigSchema.parse({ node: { name: 'node-a' }, eaa: { enabled: true, port: 15444, authPort: 15080, ...eaa } });
const port = (name: string, p: number, targetPort: number | string): ServicePort => ({
  name,
  port: p,
  protocol: 'TCP',
  targetPort,
});
const service = (namespace: string, name: string, ports: ServicePort[]): Service => ({
  namespace,
  name,
  type: 'ClusterIP',
  clusterIPs: ['198.19.0.40'],
  headless: false,
  ports,
  sessionAffinity: 'None',
  sessionAffinityTimeoutSeconds: 10800,
  internalTrafficPolicy: 'Local',
  externalTrafficPolicy: 'Cluster',
  publishNotReadyAddresses: false,
  labels: {},
  annotations: {},
});
const eaaService = service('openness', 'eaa', [port('https', 443, 15444), port('http', 80, 15080), port('x', 9, 9)]);

t.test('the EAA Service: this node, the EAA ports only', async (t) => {
  const local = eaaLocalSlices(config({}));
  if (local === undefined) throw new Error('no provider');
  t.same(local(eaaService), [
    {
      namespace: 'openness',
      name: LOCAL_SLICE_NAME,
      serviceName: 'eaa',
      addressType: 'IPv4',
      ports: [
        { name: 'https', port: 15444, protocol: 'TCP' },
        { name: 'http', port: 15080, protocol: 'TCP' },
      ],
      endpoints: [
        { addresses: ['127.0.0.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-a' },
      ],
    },
  ]);
  t.equal(local(service('default', 'eaa', eaaService.ports)), undefined, 'another namespace: the registry decides');
  t.equal(local(service('openness', 'other', eaaService.ports)), undefined, 'another name: the registry decides');
});

t.test('settings', async (t) => {
  t.equal(eaaLocalSlices(config({ enabled: false })), undefined, 'EAA off: no local route');
  t.equal(eaaLocalSlices(config({ service: '' })), undefined, "service '': no local route");
  const noAuth = eaaLocalSlices(config({ authEnabled: false }))?.(eaaService)?.[0];
  t.same(
    noAuth?.ports.map((p) => p.name),
    ['https'],
    'no /auth listener: port 80 gets no endpoint',
  );
  const any = eaaLocalSlices(config({ address: '0.0.0.0' }))?.(eaaService)?.[0];
  t.same(any?.endpoints[0]?.addresses, ['127.0.0.1'], 'listening on every address: dialled on loopback');
  const v6 = eaaLocalSlices(config({ address: '::' }))?.(eaaService)?.[0];
  t.same([v6?.addressType, v6?.endpoints[0]?.addresses], ['IPv6', ['::1']]);
  const custom = eaaLocalSlices(config({ service: 'edge/eaa-api' }))?.(service('edge', 'eaa-api', eaaService.ports));
  t.equal(custom?.[0]?.serviceName, 'eaa-api', 'another Service name from config');
  const unrelated = eaaLocalSlices(config({}))?.(service('openness', 'eaa', [port('https', 443, 'https')]))?.[0];
  t.same(unrelated?.endpoints, [], 'named or foreign target ports: no endpoint (nothing else on the node is reached)');
  t.throws(() => config({ service: 'no-slash' }), 'service must be namespace/name');
});
