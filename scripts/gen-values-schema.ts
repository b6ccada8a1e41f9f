/**
 * Builds charts/meshlet/values.schema.json: the agent's (and controller's) `config` from the one
 * zod schema of the config (src/config/schema.ts, via its JSON Schema), plus a hand-written
 * schema of the chart-only values (image, resources, tolerations, ...). Helm validates values
 * against it at install, upgrade, lint and template, so a wrong value fails before anything
 * reaches the cluster.
 *
 *   node scripts/gen-values-schema.ts           # rewrite the file
 *   node scripts/gen-values-schema.ts --check   # exit 1 if the committed file is stale
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../src/config/schema-walk.ts';

export const VALUES_SCHEMA_PATH = fileURLToPath(new URL('../charts/meshlet/values.schema.json', import.meta.url));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * Defaults that describe the machine that ran this script, not meshlet: node.name defaults to
 * the build host's name. In a cluster the name comes from the downward API (spec.nodeName →
 * MESHLET_NODE_NAME), so the chart's schema carries no default for it.
 */
const MACHINE_SPECIFIC_DEFAULTS: readonly (readonly string[])[] = [['node', 'name']];

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The config's JSON Schema, as a sub-schema: no `$schema`, no machine-specific defaults. */
export function configSubschema(): JsonObject {
  const schema = structuredClone(configJsonSchema()) as unknown as JsonObject;
  delete schema.$schema;
  for (const path of MACHINE_SPECIFIC_DEFAULTS) {
    let node: Json | undefined = schema;
    for (const key of path) node = isObject(node) && isObject(node.properties) ? node.properties[key] : undefined;
    if (!isObject(node)) throw new Error(`config schema has no field ${path.join('.')}; update MACHINE_SPECIFIC_DEFAULTS`);
    delete node.default;
  }
  return schema;
}

// ---- small builders for the hand-written part ----

const str = (description: string, extra: JsonObject = {}): JsonObject => ({ type: 'string', description, ...extra });
const bool = (description: string): JsonObject => ({ type: 'boolean', description });
const int = (description: string, minimum: number, maximum?: number): JsonObject => ({
  type: 'integer',
  description,
  minimum,
  ...(maximum !== undefined && { maximum }),
});
const obj = (description: string, properties: JsonObject, extra: JsonObject = {}): JsonObject => ({
  type: 'object',
  description,
  properties,
  additionalProperties: false,
  ...extra,
});
const stringMap = (description: string): JsonObject => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string' },
});
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** A Kubernetes quantity such as 100m, 128Mi, 0.5 or 1. */
const QUANTITY = '^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$';

const quantity: JsonObject = {
  anyOf: [
    { type: 'string', pattern: QUANTITY },
    { type: 'number', minimum: 0 },
  ],
};

const resources: JsonObject = obj('CPU and memory of the container (a core/v1 ResourceRequirements).', {
  requests: { type: 'object', description: 'What the scheduler reserves.', additionalProperties: quantity },
  limits: {
    type: 'object',
    description: 'Hard caps; past the memory limit the container is killed.',
    additionalProperties: quantity,
  },
});

const toleration: JsonObject = obj('A core/v1 Toleration.', {
  key: str('Taint key; empty with operator Exists matches every taint.'),
  operator: { type: 'string', enum: ['Exists', 'Equal'], description: 'Exists or Equal (default Equal).' },
  value: str('Taint value (operator Equal).'),
  effect: {
    type: 'string',
    enum: ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'],
    description: 'Taint effect; empty matches every effect.',
  },
  tolerationSeconds: { type: ['integer', 'null'], description: 'How long a NoExecute taint is tolerated (s).' },
});

const serviceAccount = (who: string): JsonObject =>
  obj(`The ServiceAccount the ${who} runs as.`, {
    create: bool('Create it (false: use an existing one named `name`).'),
    name: str(`Its name; empty means <fullname>-${who}.`, { pattern: `^$|${DNS_SUBDOMAIN}` }),
    annotations: stringMap('Annotations on the ServiceAccount.'),
  });

const podPlacement = {
  nodeSelector: stringMap('Node labels a pod must match.'),
  tolerations: { type: 'array', description: 'Taints the pods tolerate.', items: toleration },
  affinity: { type: 'object', description: 'A core/v1 Affinity, passed through.' },
  priorityClassName: str('PriorityClass of the pods.'),
  podAnnotations: stringMap('Extra annotations on the pods.'),
  podLabels: stringMap('Extra labels on the pods.'),
};

const envVar: JsonObject = {
  type: 'object',
  description: 'A core/v1 EnvVar.',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1 } },
};

export function buildValuesSchema(): JsonObject {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $comment: 'GENERATED by scripts/gen-values-schema.ts from src/config/schema.ts; do not edit by hand.',
    title: 'meshlet Helm chart values',
    type: 'object',
    additionalProperties: false,
    $defs: { meshletConfig: configSubschema() },
    properties: {
      global: { type: 'object', description: 'Helm global values (unused by this chart).' },
      nameOverride: str('Replaces the chart name in object names.', { pattern: `^$|${DNS_LABEL}`, maxLength: 40 }),
      fullnameOverride: str('Replaces <release>-<chart> in object names.', { pattern: `^$|${DNS_LABEL}`, maxLength: 40 }),
      image: obj(
        'The meshlet image (one image for the agent and the controller).',
        {
          repository: str('Image repository.', { minLength: 1 }),
          tag: str('Image tag; empty means the chart appVersion.'),
          digest: str('Image digest (sha256:...); wins over tag when set.', { pattern: '^$|^sha256:[0-9a-f]{64}$' }),
          pullPolicy: { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'], description: 'Image pull policy.' },
        },
        { required: ['repository'] },
      ),
      imagePullSecrets: {
        type: 'array',
        description: 'Secrets for a private registry.',
        items: obj('A LocalObjectReference.', { name: str('Secret name.', { minLength: 1 }) }, { required: ['name'] }),
      },
      crds: obj('The CustomResourceDefinitions (EdgeNode).', {
        install: bool('Install the CRDs with the chart.'),
        keep: bool('Keep the CRDs (and so every EdgeNode) on helm uninstall.'),
      }),
      rbac: obj('RBAC objects.', { create: bool('Create the ClusterRoles, Roles and bindings.') }),
      witness: obj('Agents as witnesses (docs/node-status.md).', {
        keySecret: obj('The Secret with the per-cluster key that signs witness reports.', {
          create: bool('Create it with a random key on install (kept on upgrade).'),
          name: str('Its name; empty means <fullname>-witness-key.'),
        }),
      }),
      agent: obj('The per-node agent (DaemonSet).', {
        config: {
          $ref: '#/$defs/meshletConfig',
          description: "The agent's config file (see `meshlet config --print-defaults`), passed through verbatim.",
        },
        serviceAccount: serviceAccount('agent'),
        capabilities: {
          type: 'array',
          description: 'Linux capabilities the agent keeps; all others are dropped.',
          items: { type: 'string', enum: ['NET_ADMIN', 'NET_BIND_SERVICE', 'NET_RAW'] },
          uniqueItems: true,
        },
        kubernetesServiceHost: str('Real apiserver host for the agent (sets KUBERNETES_SERVICE_HOST); empty: in-cluster.'),
        kubernetesServicePort: int('Port for kubernetesServiceHost.', 1, 65535),
        apicacheImpersonateUsers: {
          type: 'array',
          description: 'Certificate users (not nodes) the apiserver cache may impersonate, e.g. system:kube-proxy on k3s.',
          items: { type: 'string', minLength: 1, not: { pattern: '^system:(node:|serviceaccount:|masters$|admin$)' } },
          uniqueItems: true,
        },
        resources,
        ...podPlacement,
        updateStrategy: obj('DaemonSet update strategy.', {
          type: { type: 'string', enum: ['RollingUpdate', 'OnDelete'], description: 'RollingUpdate or OnDelete.' },
          rollingUpdate: obj('Rolling update limits.', {
            maxUnavailable: { type: ['integer', 'string'], description: 'Nodes updated at once (number or percent).' },
            maxSurge: { type: ['integer', 'string'], description: 'Must be 0: two host-network agents cannot share ports.' },
          }),
        }),
        terminationGracePeriodSeconds: int('Time from SIGTERM to SIGKILL: drain and remove host rules (s).', 1, 3600),
        hostPaths: obj('Host directories the agent uses.', {
          state: str('Persistent state (the apiserver cache) survives pod restarts here.', { pattern: '^/' }),
          xtablesLock: str('The iptables lock file shared with kube-proxy.', { pattern: '^/' }),
        }),
        apicacheTls: obj("TLS material of the apiserver cache's edge server.", {
          secretName: str('A kubernetes.io/tls Secret mounted at mountPath; empty mounts nothing.'),
          mountPath: str('Where the Secret is mounted.', { pattern: '^/' }),
        }),
        probes: obj('Liveness and readiness probes on the admin endpoint.', {
          liveness: obj('/healthz.', {
            periodSeconds: int('Probe period (s).', 1),
            failureThreshold: int('Failures before restart.', 1),
            initialDelaySeconds: int('Delay (s).', 0),
          }),
          readiness: obj('/readyz.', {
            periodSeconds: int('Probe period (s).', 1),
            failureThreshold: int('Failures before not ready.', 1),
            initialDelaySeconds: int('Delay (s).', 0),
          }),
        }),
        extraEnv: {
          type: 'array',
          description: 'Extra environment variables (MESHLET_* override config fields).',
          items: envVar,
        },
      }),
      controller: obj('The controller (Deployment with leader election).', {
        enabled: bool('Deploy the controller.'),
        replicas: int('Replicas; one leads, the others wait.', 0, 10),
        config: {
          $ref: '#/$defs/meshletConfig',
          description: "The controller's config file, passed through verbatim.",
        },
        leaderElection: obj('Leader election on a coordination.k8s.io Lease in the release namespace.', {
          enabled: bool('Elect one active replica.'),
          leaseName: str('Name of the Lease.', { pattern: DNS_SUBDOMAIN }),
          leaseDurationSeconds: int('How long a leader holds the Lease without renewing (s).', 1, 3600),
          renewDeadlineSeconds: int('How long the leader retries renewing before giving up (s).', 1, 3600),
          retryPeriodSeconds: int('Between tries to acquire or renew (s).', 1, 3600),
        }),
        serviceAccount: serviceAccount('controller'),
        resources,
        ...podPlacement,
        extraEnv: { type: 'array', description: 'Extra environment variables.', items: envVar },
      }),
      eaa: obj('The OpenNESS-compatible Edge Application Agent endpoint (eaa.openness).', {
        enabled: bool('Create the eaa Service (and its namespace).'),
        service: obj('The Service apps reach as eaa.openness.', {
          name: str('Service name (OpenNESS: eaa).', { pattern: DNS_LABEL }),
          namespace: str('Service namespace (OpenNESS: openness).', { pattern: DNS_LABEL }),
          createNamespace: bool('Create the namespace (false if it exists already).'),
          httpsPort: int('HTTPS API port (OpenNESS: 443).', 1, 65535),
          httpPort: int('Plain-HTTP auth port (OpenNESS <= 20.09: 80); 0 leaves it out.', 0, 65535),
        }),
        ca: obj('The EAA root CA shared by every node (needed with agent.config.eaa.enabled).', {
          secretName: str('A Secret with tls.crt and tls.key (ECDSA), mounted at mountPath; empty mounts nothing.'),
          mountPath: str('Where the Secret is mounted.', { pattern: '^/' }),
        }),
      }),
    },
  };
}

/** The file's text: JSON formatted as biome formats it, so `biome check` passes on the committed file. */
export function renderValuesSchema(): string {
  const json = `${JSON.stringify(buildValuesSchema(), null, 2)}\n`;
  const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));
  try {
    return execFileSync(biome, ['format', `--stdin-file-path=${VALUES_SCHEMA_PATH}`], { input: json, encoding: 'utf8' });
  } catch {
    return json;
  }
}

/** True when the committed file holds the schema built now (compared as JSON, not as text). */
export function valuesSchemaIsFresh(): boolean {
  let committed: unknown;
  try {
    committed = JSON.parse(readFileSync(VALUES_SCHEMA_PATH, 'utf8'));
  } catch {
    return false;
  }
  return JSON.stringify(committed) === JSON.stringify(buildValuesSchema());
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    if (!valuesSchemaIsFresh()) {
      process.stderr.write(`${VALUES_SCHEMA_PATH} is stale: run node scripts/gen-values-schema.ts\n`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(VALUES_SCHEMA_PATH, renderValuesSchema());
    process.stdout.write(`wrote ${VALUES_SCHEMA_PATH}\n`);
  }
}
