import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The proxy's metrics, `meshlet_proxy_*`, registered once per module. Routes take labelled
 * children once, when they are built (route.ts), so the data path only increments.
 * Labels: service = `namespace/name`, port = the service port's name or number.
 */
export class ProxyMetrics {
  readonly connections: Counter<'service' | 'port' | 'protocol'>;
  readonly activeConnections: Gauge<'service' | 'port' | 'protocol'>;
  readonly requests: Counter<'service' | 'port' | 'code'>;
  readonly connectFailures: Counter<'service' | 'port' | 'reason'>;
  readonly bytes: Counter<'service' | 'port' | 'direction'>;
  readonly udpFlows: Gauge<'service' | 'port'>;
  readonly noEndpoint: Counter<'service' | 'port'>;
  readonly listeners: Gauge<'state'>;
  readonly ejections: Counter<'service' | 'port'>;

  constructor(registry: Registry, listenerStates: () => { listening: number; failed: number }) {
    const registers = [registry];
    this.connections = new Counter({
      name: 'meshlet_proxy_connections_total',
      help: 'Client connections accepted (UDP: flows opened), by service port.',
      labelNames: ['service', 'port', 'protocol'],
      registers,
    });
    this.activeConnections = new Gauge({
      name: 'meshlet_proxy_connections_active',
      help: 'Client connections open now (TCP and HTTP), by service port.',
      labelNames: ['service', 'port', 'protocol'],
      registers,
    });
    this.requests = new Counter({
      name: 'meshlet_proxy_requests_total',
      help: 'HTTP requests by response code (502/503/504 when meshlet answered itself, 400 for unparsable requests).',
      labelNames: ['service', 'port', 'code'],
      registers,
    });
    this.connectFailures = new Counter({
      name: 'meshlet_proxy_upstream_connect_failures_total',
      help: 'Failed connects to endpoints, by reason (refused, timeout, other).',
      labelNames: ['service', 'port', 'reason'],
      registers,
    });
    this.bytes = new Counter({
      name: 'meshlet_proxy_bytes_total',
      help: 'Bytes relayed at L4 (TCP, WebSocket, UDP); direction rx = from clients, tx = to clients.',
      labelNames: ['service', 'port', 'direction'],
      registers,
    });
    this.udpFlows = new Gauge({
      name: 'meshlet_proxy_udp_flows_active',
      help: 'UDP flows (client addr:port to one endpoint) open now.',
      labelNames: ['service', 'port'],
      registers,
    });
    this.noEndpoint = new Counter({
      name: 'meshlet_proxy_no_endpoint_total',
      help: 'Connections or requests refused because the service port had no usable endpoint.',
      labelNames: ['service', 'port'],
      registers,
    });
    this.listeners = new Gauge({
      name: 'meshlet_proxy_listeners',
      help: 'Service-port listeners by state (listening, failed: e.g. a port clash).',
      labelNames: ['state'],
      registers,
      collect() {
        const { listening, failed } = listenerStates();
        this.set({ state: 'listening' }, listening);
        this.set({ state: 'failed' }, failed);
      },
    });
    this.ejections = new Counter({
      name: 'meshlet_proxy_outlier_ejections_total',
      help: 'Endpoints ejected by passive outlier detection.',
      labelNames: ['service', 'port'],
      registers,
    });
  }

  /** The children one route increments, taken once per route build. */
  forRoute(service: string, port: string, protocol: string): RouteMetrics {
    const labels = { service, port };
    const codes = new Map<number, Counter.Internal>();
    return {
      connections: this.connections.labels({ ...labels, protocol }),
      active: this.activeConnections.labels({ ...labels, protocol }),
      connectRefused: this.connectFailures.labels({ ...labels, reason: 'refused' }),
      connectTimeout: this.connectFailures.labels({ ...labels, reason: 'timeout' }),
      connectOther: this.connectFailures.labels({ ...labels, reason: 'other' }),
      rx: this.bytes.labels({ ...labels, direction: 'rx' }),
      tx: this.bytes.labels({ ...labels, direction: 'tx' }),
      udpFlows: this.udpFlows.labels(labels),
      noEndpoint: this.noEndpoint.labels(labels),
      ejections: this.ejections.labels(labels),
      request: (code: number) => {
        let child = codes.get(code);
        if (child === undefined) {
          child = this.requests.labels({ ...labels, code: String(code) });
          codes.set(code, child);
        }
        child.inc();
      },
    };
  }
}

export interface RouteMetrics {
  connections: Counter.Internal;
  active: Gauge.Internal<string>;
  connectRefused: Counter.Internal;
  connectTimeout: Counter.Internal;
  connectOther: Counter.Internal;
  rx: Counter.Internal;
  tx: Counter.Internal;
  udpFlows: Gauge.Internal<string>;
  noEndpoint: Counter.Internal;
  ejections: Counter.Internal;
  request(code: number): void;
}
