import { hostname } from 'node:os';
import { z } from 'zod';
import { LB_POLICIES } from '../../policies/model.ts';

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
    initialSyncTimeoutMs: duration(600_000)
      .default(10_000)
      .describe('At start, wait at most this long (ms) for the first complete list before starting the modules anyway.'),
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
    ttl: duration(3600)
      .default(5)
      .describe('TTL (s) of cluster-zone answers, and the SOA minimum for their negative answers (CoreDNS default 5).'),
    upstreams: z
      .array(z.string().regex(/^(\[[0-9a-fA-F:.]+\]:\d+|[0-9.]+(:\d+)?|[0-9a-fA-F:]+)$/, 'must be ip, ip:port or [ipv6]:port'))
      .default([])
      .describe('Resolvers for names outside the cluster zone, tried in order; empty means the nameservers of resolvConf.'),
    resolvConf: z
      .string()
      .default('/etc/resolv.conf')
      .describe('Where to read upstream nameservers when dns.upstreams is empty.'),
    timeoutMs: duration(60_000).default(2000).describe('Wait this long (ms) for one upstream before trying the next.'),
    maxConcurrentForwards: z
      .number()
      .int()
      .min(1)
      .default(1000)
      .describe('Upstream queries in flight at once; past this, queries get REFUSED (as CoreDNS max_concurrent).'),
    maxUdpSize: z
      .number()
      .int()
      .min(512)
      .max(4096)
      .default(1232)
      .describe('Largest UDP answer sent (bytes), whatever the client advertises; larger answers are truncated (TC).'),
    cache: z
      .strictObject({
        maxEntries: z.number().int().min(0).default(10_000).describe('Forwarded answers kept (LRU); 0 disables the cache.'),
        minTtl: duration(86_400).default(0).describe('Lowest TTL (s) a forwarded answer is cached for.'),
        maxTtl: duration(604_800).default(3600).describe('Highest TTL (s) a forwarded answer is cached for.'),
        negativeTtl: duration(86_400)
          .default(300)
          .describe('Cap (s) on caching NXDOMAIN/NODATA answers (RFC 2308: SOA TTL and MINIMUM, whichever is lower).'),
        serveStale: duration(604_800)
          .default(86_400)
          .describe('How long (s) past expiry an answer may be served when every upstream fails (RFC 8767); 0 disables.'),
        staleTtl: duration(3600).default(30).describe('TTL (s) given to a stale answer (RFC 8767 suggests 30).'),
        staleAnswerTimeoutMs: duration(60_000)
          .default(1800)
          .describe(
            'When an expired answer could be served stale and the upstream has not answered within this time (ms), answer stale and keep refreshing (RFC 8767 client response timer, suggested 1800); 0 waits for the upstream.',
          ),
        staleRecheck: duration(3600)
          .default(30)
          .describe(
            'After a refresh failed, serve the stale answer without asking upstream for this long (s) (RFC 8767 failure recheck timer, suggested 30).',
          ),
      })
      .prefault({})
      .describe('Cache of forwarded answers.'),
    tcp: z
      .strictObject({
        idleTimeoutMs: duration(600_000).default(10_000).describe('Close a client TCP connection idle this long (ms).'),
        maxConnections: z.number().int().min(1).default(1000).describe('Client TCP connections open at once.'),
      })
      .prefault({})
      .describe('DNS over TCP (clients retry there after a truncated UDP answer).'),
  })
  .prefault({})
  .describe('The node-local DNS server.');

const InterceptionConfig = z
  .strictObject({
    mode: z
      .enum(['none', 'iptables'])
      .default('none')
      .describe(
        "'iptables': DNAT each clusterIP:port (and nodePort) to its listener, so pods reach services transparently (needs NET_ADMIN); 'none': clients dial the listeners themselves (standalone).",
      ),
    interfaceName: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'must be a Linux interface name (1-15 characters)')
      .default('meshlet0')
      .describe("Interface that carries proxy.address: created as a dummy interface, or an existing one such as 'lo'."),
    createDummy: z
      .boolean()
      .default(true)
      .describe(
        "Create interfaceName as a dummy interface (and delete it on shutdown); false to use an existing one (e.g. 'lo' where the kernel has no dummy interfaces).",
      ),
    serviceCidrs: z
      .array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'must be a CIDR such as 198.19.0.0/16'))
      .default([])
      .describe(
        'Service CIDRs routed to interfaceName when the node has no route for them (edge nodes without a default route).',
      ),
    iptablesBackend: z
      .enum(['auto', 'nft', 'legacy'])
      .default('auto')
      .describe(
        "Which iptables backend to write: 'auto' picks the one that already holds more rules (as kube-proxy's wrapper does).",
      ),
    ipv6: z.boolean().default(false).describe('Also manage ip6tables rules for IPv6 cluster IPs.'),
    verifyIntervalMs: duration(3_600_000)
      .default(10_000)
      .describe('Check the installed rules this often (ms) and rewrite them if someone changed them; 0 disables.'),
    tcpForwarding: z
      .enum(['proxy', 'kernel'])
      .default('proxy')
      .describe(
        "Opaque TCP service ports (no HTTP/gRPC): 'proxy' relays them through meshlet's listener (connect retry, outlier ejection, every policy); 'kernel' DNATs clusterIP:port straight to a ready endpoint, picked at random per connection by iptables (full kernel throughput, no retry or ejection; ports whose policy needs meshlet stay proxied). The Service annotation meshlet.io/tcp-forwarding overrides it.",
      ),
  })
  .prefault({})
  .describe('Transparent interception of service traffic.');

const ProxyConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Proxy service ports to their endpoints.'),
    address: ipAddress
      .default('127.0.0.1')
      .describe("Address of meshlet's service listeners (on a node: meshlet's link-local address)."),
    listenPort: z
      .enum(['service', 'auto'])
      .default('service')
      .describe(
        "Port of each service port's listener: 'service' listens on the service's own port (standalone mode); 'auto' lets the OS pick one per service port, found by listenerFor() (iptables mode).",
      ),
    connectTimeoutMs: duration(600_000).default(5_000).describe('Give up connecting to one endpoint after this long (ms).'),
    connectRetries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe('After a failed connect, try this many other endpoints before failing (only before any byte was sent).'),
    tcpIdleTimeoutMs: duration(86_400_000)
      .default(3_600_000)
      .describe('Close a proxied TCP connection after this long (ms) without traffic either way; 0 disables.'),
    udpIdleTimeoutMs: duration(86_400_000)
      .default(60_000)
      .describe('Forget a UDP flow (client addr:port to one endpoint) after this long (ms) without packets; 0 never.'),
    requestTimeoutMs: duration(3_600_000)
      .default(30_000)
      .describe(
        'HTTP: fail with 504 when the upstream sends no response headers (or no body data) for this long (ms); 0 disables.',
      ),
    httpRetries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe(
        'HTTP: retry an idempotent request without a body on another endpoint this many times after a connection failure.',
      ),
    upstreamConnections: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(64)
      .describe('HTTP: most pooled keep-alive connections per endpoint.'),
    lbPolicy: z
      .enum(LB_POLICIES)
      .default('round-robin')
      .describe('Load-balancing policy of services without a meshlet.io/lb-policy annotation.'),
    outlier: z
      .strictObject({
        consecutiveFailures: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(3)
          .describe('Eject an endpoint after this many connect failures in a row; 0 disables ejection.'),
        ejectionMs: duration(3_600_000)
          .default(10_000)
          .describe('How long (ms) an endpoint stays ejected the first time; doubles on each repeat, up to 10x.'),
        maxEjectionPercent: z
          .number()
          .int()
          .min(0)
          .max(100)
          .default(50)
          .describe("Never eject more than this share of one service port's endpoints."),
      })
      .prefault({})
      .describe('Passive outlier ejection of endpoints that fail connections.'),
    interception: InterceptionConfig,
  })
  .prefault({})
  .describe('The service proxy (L4/L7 load balancing).');

const ApicacheConfig = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Run the apiserver caching proxy (edge autonomy); needs apicache.upstreams or apicache.kubeconfig.'),
    address: ipAddress
      .default('127.0.0.1')
      .describe('Address of the HTTPS edge server that kubelet, kube-proxy and local agents use instead of the apiserver.'),
    port: port.default(8778).describe('Port of the HTTPS edge server; 0 picks a free port (logged at start).'),
    plainHttpPort: port
      .default(0)
      .describe('Port of an extra plain-HTTP listener on 127.0.0.1 for local agents (bearer tokens only); 0 = off.'),
    tlsCertFile: z
      .string()
      .default('')
      .describe('Serving certificate (PEM) of the edge server; must name apicache.address. Required when enabled.'),
    tlsKeyFile: z.string().default('').describe('Private key (PEM) of tlsCertFile.'),
    clientCaFile: z
      .string()
      .default('')
      .describe("CA (PEM) that verifies clients' certificates for impersonation; empty means the upstream cluster CA."),
    kubeconfig: z
      .string()
      .default('')
      .describe("kubeconfig with the proxy's own upstream credentials (and CA); empty means source.kubernetes.kubeconfig."),
    context: z.string().default('').describe('kubeconfig context; empty means the current context.'),
    upstreams: z
      .array(z.url({ protocol: /^https$/ }))
      .default([])
      .describe(
        "apiserver URLs (https://host:port), e.g. the three of an HA control plane; empty means the kubeconfig's server.",
      ),
    lbMode: z
      .enum(['priority', 'round-robin'])
      .default('round-robin')
      .describe("'priority': the first healthy upstream in list order; 'round-robin': rotate over the healthy ones."),
    healthCheckIntervalMs: duration(600_000).default(2_000).describe('Probe every upstream (GET /readyz) this often (ms).'),
    healthCheckTimeoutMs: duration(60_000).default(1_000).describe('A probe without an answer after this long (ms) fails.'),
    unhealthyThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(2)
      .describe('Failed probes in a row that mark an upstream down (one failed proxied connection also does).'),
    healthyThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Successful probes in a row that mark an upstream up again.'),
    cacheDir: z
      .string()
      .default('/var/lib/meshlet/apicache')
      .describe('Directory of the persistent cache (snapshots + checksummed journals), one pair per resource.'),
    maxCacheBytes: z
      .number()
      .int()
      .min(0)
      .default(256 << 20)
      .describe('Cap on the JSON bytes held by the cache; past it new objects are not cached (logged, metric).'),
    resources: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9]+(\.[a-z0-9.-]+)?$/, 'must be resource or resource.group, e.g. endpointslices.discovery.k8s.io'),
      )
      .default(['services', 'endpoints', 'endpointslices.discovery.k8s.io', 'nodes', 'pods', 'namespaces', 'configmaps'])
      .describe('Resources whose GET/LIST/WATCH are teed into the cache (resource or resource.group; never secrets by default).'),
    offlineBookmarkIntervalMs: duration(600_000)
      .default(30_000)
      .describe('While the cloud is unreachable, send watches that allow bookmarks a BOOKMARK this often (ms).'),
    resumeJitterMs: duration(60_000)
      .default(1_000)
      .describe('When the cloud returns, resume each held watch upstream after a random delay up to this long (ms).'),
    acknowledgeNodeLeaseOffline: z
      .boolean()
      .default(true)
      .describe("While offline, answer kubelet's renewals of its own node Lease locally so the node does not flap."),
    impersonation: z
      .enum(['legacy', 'constrained'])
      .default('legacy')
      .describe(
        "How certificate clients (kubelet) are forwarded: 'legacy' sends their user and groups; 'constrained' (Kubernetes >= 1.36, the chart's RBAC) impersonates a node by name only, as impersonate:associated-node requires.",
      ),
  })
  .prefault({})
  .describe('The apiserver caching proxy: serves kubelet, kube-proxy and local agents from a cache while the cloud is away.');

const EaaConfig = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve the OpenNESS Edge Application Agent API on this node (docs/eaa.md).'),
    address: ipAddress
      .default('127.0.0.1')
      .describe(
        'Address of the EAA API listeners (port, authPort). Pods reach them through the eaa Service (service), so loopback will do.',
      ),
    peerAddress: z
      .union([ipAddress, z.literal('')])
      .default('')
      .describe('Address of the agent-to-agent listener (peerPort); empty means address. Other nodes must reach it.'),
    service: z
      .string()
      .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/, 'must be namespace/name or empty')
      .default('openness/eaa')
      .describe(
        "The Service apps call as eaa.openness (namespace/name). This node's proxy sends its ports whose targetPort is port or authPort to this agent, never to another node. Empty: no such route.",
      ),
    port: port.default(443).describe('Port of the EAA HTTPS (mutual TLS) API, as OpenNESS TlsEndpoint; 0 picks a free port.'),
    authPort: port
      .default(80)
      .describe('Port of the plain-HTTP POST /auth endpoint (OpenNESS ≤ 20.09 OpenEndpoint); 0 picks a free port.'),
    authEnabled: z
      .boolean()
      .default(true)
      .describe('Serve POST /auth (CSR in, certificate out); false when apps get certificates elsewhere.'),
    serverNames: z
      .array(z.string().min(1).max(253))
      .default(['eaa.openness'])
      .describe('DNS names in the EAA server certificate; the first is its CN (apps verify eaa.openness).'),
    ca: z
      .strictObject({
        certFile: z.string().default('/var/lib/meshlet/eaa/ca.pem').describe('Root CA certificate (PEM), shared by all nodes.'),
        keyFile: z.string().default('/var/lib/meshlet/eaa/ca-key.pem').describe('Root CA key (PEM, ECDSA); stays with meshlet.'),
        generate: z
          .boolean()
          .default(true)
          .describe('Create the CA when neither file exists (standalone); false in a cluster, where a Secret provides it.'),
        certTtlMs: duration(10 * 365 * 86_400_000)
          .default(365 * 86_400_000)
          .describe('Lifetime (ms) of certificates issued by POST /auth, capped by the CA expiry.'),
      })
      .prefault({})
      .describe('The CA that signs app certificates and verifies their TLS client certificates.'),
    stateFile: z
      .string()
      .default('/var/lib/meshlet/eaa/state.json')
      .describe('Where registrations and subscriptions are persisted (atomic rewrite); empty keeps them in memory only.'),
    errorStatus: z
      .enum(['openness', 'http'])
      .default('openness')
      .describe("Status for bad bodies and CSRs: 'openness' answers 500 as OpenNESS does, 'http' answers 400."),
    maxBodyBytes: z
      .number()
      .int()
      .min(64)
      .max(64 << 20)
      .default(1 << 20)
      .describe('Largest request body (bytes); larger gets 413 and changes nothing.'),
    maxNotificationsPerSecond: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe('Per producer (token bucket, burst = 1 s); past it POST /notifications gets 429. 0 disables the limit.'),
    maxSocketBufferBytes: z
      .number()
      .int()
      .min(1024)
      .default(4 << 20)
      .describe('A consumer WebSocket with more unsent bytes than this misses notifications (counted as dropped).'),
    peerPort: port.default(15443).describe('Port of the agent-to-agent replication and notification API (mutual TLS).'),
    peers: z
      .array(z.string().regex(/^[a-z0-9.-]+=https:\/\/\S+$/, 'must be node=https://host:port'))
      .default([])
      .describe('Static peers as node=https://host:port; empty means every node of the registry at its InternalIP:peerPort.'),
    syncIntervalMs: duration(3_600_000)
      .default(5_000)
      .describe('Pull the full state from every peer this often (ms), repairing what a lost push missed.'),
    peerTimeoutMs: duration(600_000).default(3_000).describe('Give up on one peer request after this long (ms).'),
    peerQueueLimit: z
      .number()
      .int()
      .min(1)
      .default(10_000)
      .describe('Notifications queued per unreachable peer before the oldest are dropped (counted).'),
  })
  .prefault({})
  .describe('The OpenNESS EAA API (producers, consumers, notifications), served on every node and routed between nodes.');

const WitnessConfig = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Probe peer agents and publish what this node saw of them (docs/node-status.md).'),
    address: ipAddress.default('0.0.0.0').describe('Address of the UDP witness listener (the node network).'),
    port: port.default(15091).describe('UDP port of the witness listener on every node; 0 picks a free port (tests).'),
    keyFile: z
      .string()
      .default('/etc/meshlet/witness/key')
      .describe('Per-cluster HMAC key (a Secret, >= 32 bytes); probes, acks and reports are signed with keys derived from it.'),
    probeIntervalMs: duration(600_000).min(100).default(2_000).describe('Probe each witnessed peer this often (ms).'),
    probeTimeoutMs: duration(60_000)
      .min(50)
      .default(1_000)
      .describe('A probe without a valid acknowledgement after this long (ms) failed.'),
    reportIntervalMs: duration(3_600_000)
      .min(200)
      .default(10_000)
      .describe('Publish the report (one Lease write) this often (ms).'),
    maxPeers: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(5)
      .describe('Probe at most this many peers (the next ones on a hash ring of node names); 0 probes every node.'),
    peers: z
      .array(z.string().regex(/^[a-z0-9.-]+=[0-9a-fA-F:.]+$/, 'must be node=ip'))
      .default([])
      .describe("Static peers as node=ip; empty means the registry's nodes at their InternalIP."),
    namespace: z
      .string()
      .regex(DNS_SUBDOMAIN)
      .max(63)
      .default('meshlet-system')
      .describe('Namespace of the report Leases (witness-<node>), read by the controller.'),
    kubeconfig: z
      .string()
      .default('')
      .describe('kubeconfig for writing reports (point it at the apiserver cache); empty means source.kubernetes.kubeconfig.'),
  })
  .prefault({})
  .describe('Agents as witnesses: authenticated peer probes and reports through the apiserver.');

const ControllerConfig = z
  .strictObject({
    kubeconfig: z.string().default('').describe('kubeconfig of the controller; empty means source.kubernetes.kubeconfig.'),
    installCrd: z.boolean().default(false).describe('Create or update the EdgeNode CRD at start (needs CRD write rights).'),
    leaderElection: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Elect one active replica on a Lease.'),
        identity: z.string().default('').describe('This replica in the Lease; empty means $MESHLET_POD_NAME, else host-pid.'),
        leaseName: z.string().regex(DNS_SUBDOMAIN).default('meshlet-controller').describe('Name of the leader Lease.'),
        leaseNamespace: z.string().regex(DNS_SUBDOMAIN).default('meshlet-system').describe('Namespace of the leader Lease.'),
        leaseDurationMs: duration(600_000).min(1_000).default(15_000).describe('A leader silent this long (ms) loses the lease.'),
        renewDeadlineMs: duration(600_000)
          .min(500)
          .default(10_000)
          .describe('The leader steps down when it cannot renew within this (ms).'),
        retryPeriodMs: duration(60_000)
          .min(100)
          .default(2_000)
          .describe('Candidates try, and the leader renews, this often (ms).'),
      })
      .prefault({})
      .describe('Leader election (two replicas, one acts).'),
    syncIntervalMs: duration(60_000).min(50).default(1_000).describe('Decide every EdgeNode phase this often (ms).'),
    cloudGraceMs: duration(3_600_000)
      .min(100)
      .default(20_000)
      .describe(
        "The cloud stops hearing a node when kubelet's Lease is older than this (ms); keep it below node-monitor-grace-period.",
      ),
    peerGraceMs: duration(3_600_000).min(100).default(15_000).describe('Peers hear a node when one heard it within this (ms).'),
    reportMaxAgeMs: duration(3_600_000).min(100).default(40_000).describe('Ignore witness reports older than this (ms).'),
    maxClockSkewMs: duration(3_600_000).default(30_000).describe('Reject reports dated further than this (ms) in the future.'),
    statusRefreshMs: duration(3_600_000)
      .default(30_000)
      .describe('Rewrite an unchanged EdgeNode status (last-heard times) at most this often (ms); changes are written at once.'),
    protectCutOff: z
      .boolean()
      .default(true)
      .describe("Renew a CutOff node's Lease (and Ready) on its behalf, so it is not evicted nor its pods marked not-ready."),
    renewIntervalMs: duration(600_000).min(100).default(5_000).describe("Renew a CutOff node's Lease this often (ms)."),
    outOfService: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe('Taint nodes Unreachable for afterMs with node.kubernetes.io/out-of-service.'),
        afterMs: duration(86_400_000).default(300_000).describe('How long (ms) a node stays Unreachable before the taint.'),
      })
      .prefault({})
      .describe('Faster failover of presumed-dead nodes (off by default).'),
  })
  .prefault({})
  .describe('`meshlet controller`: EdgeNode phases, eviction guard for CutOff nodes, optional failover.');

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
    apicache: ApicacheConfig,
    eaa: EaaConfig,
    witness: WitnessConfig,
    controller: ControllerConfig,
    shutdown: ShutdownConfig,
  })
  .describe("meshlet's configuration.");

/** The validated, frozen configuration. */
export type Config = Readonly<z.output<typeof ConfigSchema>>;
/** What a user may write: every field optional. */
export type ConfigInput = z.input<typeof ConfigSchema>;

export type ProxySettings = Config['proxy'];
