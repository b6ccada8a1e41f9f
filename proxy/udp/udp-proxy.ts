import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { errorMessage } from '../../src/errors.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import { recordConnectFailure } from '../connect/connect-endpoint.ts';
import type { DatagramChannel } from '../connect/dialer.ts';
import type { RouteContext } from '../route.ts';

/** Datagrams held per flow while its upstream channel opens; more are dropped. */
const MAX_PENDING = 64;

interface Flow {
  route: RouteContext;
  endpoint: ProxyEndpoint | undefined;
  channel: DatagramChannel | undefined;
  pending: Buffer[] | undefined;
  lastSeen: number;
  closed: boolean;
}

/**
 * One UDP service port: a flow per client `addr:port`, each with its own upstream channel (one
 * connected socket, so replies are told apart by socket, as conntrack does). A flow is forgotten
 * after `udpIdleTimeoutMs` without packets either way; one sweep timer per listener checks them,
 * so a packet costs a Map lookup, not a timer reset. The default (60 s) keeps slow protocols
 * alive where EdgeMesh's 250 ms did not.
 */
export class UdpProxy {
  readonly #socket: UdpSocket;
  readonly #getRoute: () => RouteContext;
  readonly #flows = new Map<string, Flow>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(socket: UdpSocket, getRoute: () => RouteContext) {
    this.#socket = socket;
    this.#getRoute = getRoute;
    socket.on('message', (message, rinfo) => this.#onMessage(message, rinfo));
  }

  get flowCount(): number {
    return this.#flows.size;
  }

  /** Starts the idle sweep; the period follows the route's idle timeout. */
  start(): void {
    const idle = this.#getRoute().settings.udpIdleTimeoutMs;
    if (idle === 0) return; // 0: flows live until the listener closes
    const period = Math.max(10, Math.min(1000, Math.floor(idle / 4)));
    this.#sweep = setInterval(() => this.#expire(Date.now()), period);
    this.#sweep.unref();
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const [key, flow] of this.#flows) this.#closeFlow(key, flow);
  }

  #onMessage(message: Buffer, rinfo: RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}`;
    const now = Date.now();
    let flow = this.#flows.get(key);
    if (flow === undefined) {
      flow = this.#openFlow(key, rinfo, now);
      if (flow === undefined) return;
    }
    flow.lastSeen = now;
    flow.route.metrics.rx.inc(message.length);
    if (flow.channel !== undefined) flow.channel.send(message);
    else if (flow.pending !== undefined && flow.pending.length < MAX_PENDING) flow.pending.push(message);
  }

  #openFlow(key: string, client: RemoteInfo, now: number): Flow | undefined {
    const route = this.#getRoute();
    const endpoint = route.picker.pick({ clientIp: client.address });
    if (endpoint === undefined) {
      route.metrics.noEndpoint.inc();
      return undefined;
    }
    const flow: Flow = { route, endpoint, channel: undefined, pending: [], lastSeen: now, closed: false };
    this.#flows.set(key, flow);
    route.metrics.connections.inc();
    route.metrics.udpFlows.inc();
    endpoint.stats.active++;
    route.dialer.datagram(endpoint).then(
      (channel) => {
        if (flow.closed) {
          channel.close();
          return;
        }
        route.picker.success(endpoint);
        flow.channel = channel;
        channel.onMessage((reply) => {
          flow.lastSeen = Date.now();
          route.metrics.tx.inc(reply.length);
          this.#socket.send(reply, client.port, client.address);
        });
        // ICMP port unreachable and the like: the next packet from this client opens a new flow.
        channel.onError((err) => {
          route.log.debug({ endpoint: endpoint.id, err: errorMessage(err) }, 'udp upstream error');
          if (!flow.closed) this.#closeFlow(key, flow);
        });
        for (const message of flow.pending ?? []) channel.send(message);
        flow.pending = undefined;
      },
      (err: unknown) => {
        recordConnectFailure(route, endpoint, err);
        this.#closeFlow(key, flow);
      },
    );
    return flow;
  }

  #expire(now: number): void {
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastSeen >= flow.route.settings.udpIdleTimeoutMs) this.#closeFlow(key, flow);
    }
  }

  #closeFlow(key: string, flow: Flow): void {
    if (flow.closed) return;
    flow.closed = true;
    if (this.#flows.get(key) === flow) this.#flows.delete(key);
    flow.channel?.close();
    flow.route.metrics.udpFlows.dec();
    if (flow.endpoint !== undefined) flow.endpoint.stats.active--;
  }
}
