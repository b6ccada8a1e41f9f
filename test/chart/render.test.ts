import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { buildValuesSchema, VALUES_SCHEMA_PATH } from '../../scripts/gen-values-schema.ts';
import { loadConfig } from '../../src/config/load.ts';
import { bins } from '../harness/binaries.ts';
import { requireOrSkip } from '../harness/requirements.ts';

/**
 * The chart without a cluster: values.schema.json is up to date with the config schema, `helm
 * lint` is clean, `helm template` renders with default and non-default values, the rendered
 * ConfigMaps pass the agent's real config loader, and bad values fail with the schema's message.
 */

const CHART = new URL('../../charts/meshlet', import.meta.url).pathname;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function docs(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((d): d is K8sObject => d !== null);
}

function find(objs: K8sObject[], kind: string, name?: string): K8sObject | undefined {
  return objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

/** Loads a rendered ConfigMap's config.yaml with the agent's own loader (no environment). */
function loadRendered(cm: K8sObject | undefined, dir: string) {
  const data = (cm as { data?: Record<string, string> } | undefined)?.data?.['config.yaml'];
  if (data === undefined) throw new Error('no config.yaml in the ConfigMap');
  const file = join(dir, `${cm?.metadata.name}.yaml`);
  writeFileSync(file, data);
  return loadConfig({ file, env: {} });
}

/** Values a user with an HA control plane and the apiserver cache would write. */
export const NON_DEFAULT_VALUES = `
fullnameOverride: edge
image: {repository: registry.example/meshlet, digest: "sha256:${'a'.repeat(64)}", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
crds: {install: true, keep: true}
agent:
  config:
    log: {level: debug}
    cluster: {domain: edge.example}
    dns: {address: 169.254.20.10, port: 53, upstreams: ["198.18.0.53", "198.18.0.54:5353"]}
    proxy: {enabled: false}
    apicache:
      enabled: true
      upstreams: ["https://198.18.0.1:6443", "https://198.18.0.2:6443", "https://198.18.0.3:6443"]
      lbMode: priority
  apicacheTls: {secretName: meshlet-apicache-tls}
  apicacheImpersonateUsers: [system:kube-proxy]
  capabilities: [NET_ADMIN, NET_BIND_SERVICE]
  kubernetesServiceHost: 198.18.0.1
  resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: "1", memory: 512Mi}}
  nodeSelector: {node-role.kubernetes.io/edge: ""}
  tolerations: [{key: node-role.kubernetes.io/edge, operator: Exists, effect: NoSchedule}]
  extraEnv: [{name: MESHLET_DNS_TTL, value: "10"}]
controller:
  replicas: 3
  leaderElection: {leaseName: edge-leader, leaseDurationSeconds: 20}
eaa:
  service: {namespace: edge, createNamespace: false, httpPort: 0}
`;

if (requireOrSkip(t, { executables: [bins.helm] })) {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const helmEnv = {
    HELM_CACHE_HOME: join(dir, 'cache'),
    HELM_CONFIG_HOME: join(dir, 'config'),
    HELM_DATA_HOME: join(dir, 'data'),
  };
  const helm = (args: string[]) => run(bins.helm, args, helmEnv);
  const valuesFile = join(dir, 'values.yaml');
  writeFileSync(valuesFile, NON_DEFAULT_VALUES);

  t.test('values.schema.json is generated from the current config schema', async (t) => {
    const committed = readFileSync(VALUES_SCHEMA_PATH, 'utf8');
    // Compared as JSON: formatting is biome's business.
    t.same(JSON.parse(committed), buildValuesSchema(), 'stale: run node scripts/gen-values-schema.ts');
    const schema = JSON.parse(committed) as {
      $defs: { meshletConfig: { properties: Record<string, { properties?: Record<string, unknown> }> } };
    };
    const config = schema.$defs.meshletConfig.properties;
    t.ok(config.dns, 'the config part comes from ConfigSchema');
    const nodeName = JSON.stringify(config.node?.properties?.name);
    t.notMatch(nodeName, /"default"/, 'no machine-specific default for node.name');
    t.notMatch(nodeName, JSON.stringify(hostname().toLowerCase()), "the build machine's name is not in it");
  });

  t.test('helm lint is clean, with default and non-default values', async (t) => {
    for (const extra of [[], ['-f', valuesFile]]) {
      const r = await helm(['lint', '--strict', CHART, ...extra]);
      t.equal(r.code, 0, `lint ${extra.join(' ')}: ${r.stdout}${r.stderr}`);
      t.match(r.stdout, /0 chart\(s\) failed/);
      t.notMatch(r.stdout, /\[(WARNING|ERROR)\]/);
    }
  });

  t.test('default values render and the agent config loads', async (t) => {
    const r = await helm(['template', 'meshlet', CHART, '-n', 'meshlet-system']);
    t.equal(r.code, 0, r.stderr);
    const objs = docs(r.stdout);
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    t.same(kinds, [
      'ClusterRole/meshlet-agent',
      'ClusterRole/meshlet-controller',
      'ClusterRoleBinding/meshlet-agent',
      'ClusterRoleBinding/meshlet-controller',
      'ConfigMap/meshlet-agent',
      'ConfigMap/meshlet-controller',
      'CustomResourceDefinition/edgenodes.meshlet.io',
      'DaemonSet/meshlet-agent',
      'Deployment/meshlet-controller',
      'Namespace/openness',
      'Role/meshlet-controller-leader-election',
      'Role/meshlet-controller-node-leases',
      'RoleBinding/meshlet-controller-leader-election',
      'RoleBinding/meshlet-controller-node-leases',
      'Secret/meshlet-witness-key',
      'Service/eaa',
      'ServiceAccount/meshlet-agent',
      'ServiceAccount/meshlet-controller',
    ]);
    const config = loadRendered(find(objs, 'ConfigMap', 'meshlet-agent'), dir);
    t.equal(config.source.kind, 'kubernetes');
    t.equal(config.dns.port, 53);
    t.equal(config.dns.address, '169.254.20.10');
    t.equal(config.proxy.interception.mode, 'iptables');
    t.equal(config.apicache.enabled, false);
    const controllerConfig = loadRendered(find(objs, 'ConfigMap', 'meshlet-controller'), dir);
    t.equal(controllerConfig.admin.address, '0.0.0.0', 'the controller admin endpoint is reachable by kubelet probes');

    const ds = find(objs, 'DaemonSet') as unknown as {
      spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } };
    };
    const pod = ds.spec.template.spec;
    t.equal(pod.hostNetwork, true);
    t.equal(pod.dnsPolicy, 'Default');
    t.same(pod.tolerations, [{ operator: 'Exists' }]);
    const c = pod.containers[0] as {
      env: { name: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
      securityContext: { privileged: boolean; capabilities: { drop: string[]; add: string[] } };
      livenessProbe: { httpGet: { host: string; path: string; port: number } };
      readinessProbe: { httpGet: { path: string } };
    };
    t.same(c.env[0], { name: 'MESHLET_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    t.equal(c.securityContext.privileged, false);
    t.same(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_BIND_SERVICE', 'NET_RAW'] });
    t.same(c.livenessProbe.httpGet, { host: '127.0.0.1', path: '/healthz', port: 15090 });
    t.equal(c.readinessProbe.httpGet.path, '/readyz');

    const agentRole = find(objs, 'ClusterRole', 'meshlet-agent') as unknown as { rules: { verbs: string[] }[] };
    t.notOk(
      agentRole.rules.some((r) => r.verbs.some((v) => v.startsWith('impersonate'))),
      'no impersonation without the apiserver cache',
    );
  });

  t.test('non-default values render and the agent config loads', async (t) => {
    const r = await helm(['template', 'meshlet', CHART, '-n', 'edge', '-f', valuesFile]);
    t.equal(r.code, 0, r.stderr);
    const objs = docs(r.stdout);
    const config = loadRendered(find(objs, 'ConfigMap', 'edge-agent'), dir);
    t.equal(config.log.level, 'debug');
    t.equal(config.cluster.domain, 'edge.example');
    t.same(config.apicache.upstreams, ['https://198.18.0.1:6443', 'https://198.18.0.2:6443', 'https://198.18.0.3:6443']);
    t.equal(config.proxy.enabled, false);
    t.notOk(find(objs, 'Namespace'), 'eaa namespace not created when createNamespace=false');

    const crd = find(objs, 'CustomResourceDefinition') as unknown as { metadata: { annotations: Record<string, string> } };
    t.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep');
    const svc = find(objs, 'Service', 'eaa') as unknown as { spec: { ports: unknown[]; selector?: unknown } };
    t.equal(svc.spec.ports.length, 1, 'no port 80 with httpPort 0');
    t.ok(svc.spec.selector, 'same namespace as the agents: the Service selects them');

    const deploy = find(objs, 'Deployment', 'edge-controller') as unknown as {
      spec: {
        replicas: number;
        template: { spec: { containers: { image: string; env: { name: string; value?: string }[] }[] } };
      };
    };
    t.equal(deploy.spec.replicas, 3);
    const cc = deploy.spec.template.spec.containers[0];
    t.equal(cc?.image, `registry.example/meshlet@sha256:${'a'.repeat(64)}`);
    t.ok(cc?.env.some((e) => e.name === 'MESHLET_CONTROLLER_LEADER_ELECTION_LEASE_DURATION_MS' && e.value === '20000'));
    const role = find(objs, 'Role', 'edge-controller-leader-election') as unknown as { rules: { resourceNames?: string[] }[] };
    t.same(role.rules[1]?.resourceNames, ['edge-leader']);

    const agentRole = find(objs, 'ClusterRole', 'edge-agent') as unknown as {
      rules: { verbs: string[]; resources?: string[]; resourceNames?: string[] }[];
    };
    t.ok(agentRole.rules.some((r) => r.verbs.includes('impersonate:associated-node')));
    t.same(agentRole.rules.find((r) => r.verbs.includes('impersonate:user-info'))?.resourceNames, ['system:kube-proxy']);

    const ds = find(objs, 'DaemonSet') as unknown as {
      spec: {
        template: {
          spec: {
            volumes: { name: string }[];
            containers: { env: { name: string; value?: string }[]; securityContext: { capabilities: { add: string[] } } }[];
          };
        };
      };
    };
    const pod = ds.spec.template.spec;
    t.same(
      pod.volumes.map((v) => v.name),
      ['config', 'xtables-lock', 'tmp', 'state', 'apicache-tls'],
    );
    t.same(pod.containers[0]?.securityContext.capabilities.add, ['NET_ADMIN', 'NET_BIND_SERVICE']);
    const env = Object.fromEntries((pod.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    t.equal(env.KUBERNETES_SERVICE_HOST, '198.18.0.1');
    t.equal(env.MESHLET_DNS_TTL, '10');
  });

  t.test('a bad value fails with the schema message', async (t) => {
    const cases: [string[], RegExp][] = [
      [['--set', 'agent.config.dns.port=fifty-three'], /at '\/agent\/config\/dns\/port': got string, want integer/],
      [['--set', 'agent.config.dns.port=70000'], /at '\/agent\/config\/dns\/port': maximum: got 70,000, want 65,535/],
      [['--set', 'agent.config.dns.bogus=1'], /at '\/agent\/config\/dns': additional properties 'bogus' not allowed/],
      [['--set', 'agent.config.log.level=loud'], /at '\/agent\/config\/log\/level': value must be one of/],
      [['--set', 'agent.config.cluster.domain=Not_A_Domain'], /at '\/agent\/config\/cluster\/domain'/],
      [['--set', 'agnet.config.log.level=debug'], /additional properties 'agnet' not allowed/],
      [['--set', 'image.tagg=1'], /at '\/image': additional properties 'tagg' not allowed/],
      [['--set', 'agent.capabilities={SYS_ADMIN}'], /at '\/agent\/capabilities\/0': value must be one of/],
      [['--set', 'agent.resources.limits.memory=lots'], /at '\/agent\/resources\/limits\/memory'/],
      [['--set', 'controller.replicas=two'], /at '\/controller\/replicas': got string, want integer/],
      [['--set', 'agent.tolerations[0].operator=Maybe'], /at '\/agent\/tolerations\/0\/operator'/],
    ];
    for (const [args, message] of cases) {
      const r = await helm(['template', 'meshlet', CHART, ...args]);
      t.not(r.code, 0, `${args.join(' ')} fails`);
      t.match(r.stderr, /values don't meet the specifications of the schema/);
      t.match(r.stderr, message, args.join(' '));
    }
  });
}
