import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * meshlet's whole configuration, as one schema. It is the single source for validation,
 * for `meshlet config --print-defaults`, for environment-variable names and (later) for the
 * Helm chart's values.schema.json. Every field has a default that works without root and
 * without Kubernetes (standalone mode); the chart overrides what a real node needs.
 *
 * Conventions: objects are strict (an unknown key is an error, so typos never pass silently);
 * `.describe()` comes last so the description sits on the outermost schema, where the JSON
 * Schema export finds it.
 */

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const port = z.number().int().min(0).max(65535);
const ipAddress = z.union([z.ipv4(), z.ipv6()]);
const duration = (max: number) => z.number().int().min(0).max(max);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function defaultNodeName(): string {
  const name = hostname().toLowerCase();
  return DNS_SUBDOMAIN.test(name) ? name : 'standalone';
}

const NodeConfig = z
  .strictObject({
    name: z
      .string()
      .regex(DNS_SUBDOMAIN, 'must be a DNS subdomain: lower-case letters, digits, "-" and "."')
      .max(253)
      .default(defaultNodeName)
      .describe("This node's name, as in the Kubernetes Node object (default: the host name)."),
  })
  .prefault({})
  .describe('The node this agent runs on.');

const LogConfig = z
  .strictObject({
    level: z.enum(LOG_LEVELS).default('info').describe('Lowest level written to the JSON log on stdout.'),
  })
  .prefault({})
  .describe('Structured logging (pino, one JSON object per line).');

const ClusterConfig = z
  .strictObject({
    domain: z
      .string()
      .regex(DNS_SUBDOMAIN, 'must be a DNS subdomain, e.g. cluster.local')
      .default('cluster.local')
      .describe('The cluster DNS domain: services are <svc>.<ns>.svc.<domain>.'),
  })
  .prefault({})
  .describe('Facts about the cluster shared by every module.');

const AdminConfig = z
  .strictObject({
    address: ipAddress
      .default('127.0.0.1')
      .describe('Address of the admin endpoint (/healthz, /readyz, /metrics, /debug/*). Keep it on loopback.'),
    port: port.default(15090).describe('Port of the admin endpoint; 0 picks a free port (logged at start).'),
  })
  .prefault({})
  .describe('Admin and metrics HTTP endpoint.');

const FileSourceConfig = z
  .strictObject({
    path: z
      .string()
      .min(1)
      .default('registry.yaml')
      .describe('Registry YAML (services, endpoints, nodes); relative paths are relative to the config file.'),
    watch: z.boolean().default(true).describe('Reload the file when it changes; an invalid edit keeps the last good state.'),
    debounceMs: duration(60_000).default(100).describe('Wait this long after a change before reloading (ms).'),
  })
  .prefault({})
  .describe('The file source: the registry read from a YAML file (standalone mode).');

const KubernetesSourceConfig = z
  .strictObject({
    kubeconfig: z
      .string()
      .default('')
      .describe('Path of a kubeconfig; empty means in-cluster config, then $KUBECONFIG, then ~/.kube/config.'),
    context: z.string().default('').describe('kubeconfig context to use; empty means the current context.'),
  })
  .prefault({})
  .describe('The Kubernetes source: Services, EndpointSlices and Nodes from the apiserver.');

const SourceConfig = z
  .strictObject({
    kind: z.enum(['file', 'kubernetes']).default('file').describe('Where the registry comes from.'),
    file: FileSourceConfig,
    kubernetes: KubernetesSourceConfig,
  })
  .prefault({})
  .describe('Where services, endpoints and nodes come from.');

const RegistryConfig = z
  .strictObject({
    coalesceMs: duration(10_000)
      .default(20)
      .describe('Changes arriving within this window (ms) are delivered to subscribers as one update.'),
  })
  .prefault({})
  .describe('The in-memory service registry.');

const DnsConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Serve DNS for cluster names and forward the rest.'),
    address: ipAddress
      .default('127.0.0.1')
      .describe('Address the DNS server binds (on a node: a link-local address such as 169.254.20.10).'),
    port: port.default(10053).describe('DNS port, UDP and TCP (on a node: 53).'),
  })
  .prefault({})
  .describe('The node-local DNS server.');

const ProxyConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Proxy service ports to their endpoints.'),
    address: ipAddress
      .default('127.0.0.1')
      .describe("Address of meshlet's service listeners (on a node: meshlet's link-local address)."),
  })
  .prefault({})
  .describe('The service proxy (L4/L7 load balancing).');

const ShutdownConfig = z
  .strictObject({
    gracePeriodMs: duration(600_000)
      .default(10_000)
      .describe('On SIGTERM, wait at most this long (ms) for connections to drain; a second signal exits at once.'),
  })
  .prefault({})
  .describe('Graceful shutdown.');

export const ConfigSchema = z
  .strictObject({
    node: NodeConfig,
    log: LogConfig,
    cluster: ClusterConfig,
    admin: AdminConfig,
    source: SourceConfig,
    registry: RegistryConfig,
    dns: DnsConfig,
    proxy: ProxyConfig,
    shutdown: ShutdownConfig,
  })
  .describe("meshlet's configuration.");

/** The validated, frozen configuration. */
export type Config = Readonly<z.output<typeof ConfigSchema>>;
/** What a user may write: every field optional. */
export type ConfigInput = z.input<typeof ConfigSchema>;

export type DnsSettings = Config['dns'];
export type ProxySettings = Config['proxy'];
export type AdminSettings = Config['admin'];
export type SourceSettings = Config['source'];
