/** Shared fixtures of the proxy tests: a registry, a started ProxyModule and small backends on loopback. */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, type Server as NetServer, createServer as netServer } from 'node:net';
import { Registry } from 'prom-client';
import { ProxyModule } from '../../proxy/module.ts';
import { type ConfigInput, ConfigSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import type { Endpoint, EndpointSlice, Protocol, Service, ServicePort } from '../../src/registry/types.ts';

export interface Tap {
  teardown(fn: () => unknown): void;
}

export function service(name: string, ports: Partial<ServicePort>[], extra: Partial<Service> = {}): Service {
  return {
    namespace: 'default',
    name,
    type: 'ClusterIP',
    clusterIPs: ['198.19.0.10'],
    headless: false,
    ports: ports.map((p) => ({ name: '', port: 0, protocol: 'TCP' as Protocol, targetPort: 0, ...p })),
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    internalTrafficPolicy: 'Cluster',
    externalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    labels: {},
    annotations: {},
    ...extra,
  };
}

export function endpoint(address: string, extra: Partial<Endpoint> = {}): Endpoint {
  return { addresses: [address], conditions: { ready: true, serving: true, terminating: false }, ...extra };
}

/** One slice per backend port (a slice shares its ports), all for port name `portName`. */
export function slices(
  svc: string,
  portName: string,
  backends: { port: number; ep?: Partial<Endpoint> }[],
  protocol: Protocol = 'TCP',
): EndpointSlice[] {
  return backends.map((b, i) => ({
    namespace: 'default',
    name: `${svc}-${i}-${b.port}`,
    serviceName: svc,
    addressType: 'IPv4',
    ports: [{ name: portName, port: b.port, protocol }],
    endpoints: [endpoint('127.0.0.1', b.ep)],
  }));
}

export interface Harness {
  registry: ServiceRegistry;
  proxy: ProxyModule;
  metrics: Registry;
  /** Replaces the registry state and waits until the proxy applied it. */
  set(services: Service[], endpointSlices: EndpointSlice[]): Promise<void>;
}

export async function startProxy(t: Tap, proxy: ConfigInput['proxy'] = {}, nodeName = 'node-a'): Promise<Harness> {
  const config = ConfigSchema.parse({
    node: { name: nodeName },
    proxy: { listenPort: 'auto', ...proxy },
    shutdown: { gracePeriodMs: 200 },
  });
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const metrics = new Registry();
  const module = new ProxyModule({ config, registry, metrics, logger: silentLogger() });
  await module.start();
  t.teardown(() => module.stop());
  const set = async (services: Service[], endpointSlices: EndpointSlice[]) => {
    registry.replaceAll({
      services,
      endpointSlices,
      nodes: [{ name: nodeName, addresses: [], ready: 'True', zone: 'zone-a', labels: {} }],
    });
    registry.flush();
    await module.settled();
  };
  return { registry, proxy: module, metrics, set };
}

/** The listener of a service port (auto mode). */
export function listenerPort(h: Harness, port: number, proto: Protocol = 'TCP', clusterIP = '198.19.0.10'): number {
  const l = h.proxy.listenerFor(clusterIP, port, proto);
  if (l === undefined) throw new Error(`no listener for ${clusterIP}:${port}/${proto}`);
  return l.port;
}

export async function httpBackend(
  t: Tap,
  name: string,
  handler?: Parameters<typeof createServer>[1],
): Promise<{ port: number; server: Server; hits: number }> {
  const state = { port: 0, server: undefined as unknown as Server, hits: 0 };
  const server = createServer((req, res) => {
    state.hits++;
    if (handler) {
      handler(req, res);
      return;
    }
    res.setHeader('x-backend', name);
    res.setHeader('x-seen-xff', String(req.headers['x-forwarded-for'] ?? ''));
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.server = server;
  state.port = (server.address() as AddressInfo).port;
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return state;
}

/** A TCP backend: `onSocket` gets each connection; defaults to echo with its name prefixed once. */
export async function tcpBackend(
  t: Tap,
  onSocket: Parameters<typeof netServer>[1],
  allowHalfOpen = true,
): Promise<{ port: number; server: NetServer }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = netServer({ allowHalfOpen }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    onSocket?.(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port, server };
}

/** A UDP backend that answers each datagram with `<name>:<payload>`. */
export async function udpBackend(t: Tap, name: string): Promise<{ port: number; socket: UdpSocket; peers: Set<string> }> {
  const socket = createSocket('udp4');
  const peers = new Set<string>();
  socket.on('message', (msg, rinfo) => {
    peers.add(`${rinfo.address}:${rinfo.port}`);
    socket.send(`${name}:${msg.toString()}`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => socket.close(() => r())));
  return { port: socket.address().port, socket, peers };
}

/** A port on loopback that refuses connections (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = netServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
