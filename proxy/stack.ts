/**
 * The proxy stack, composed here in request order (one step per line):
 *
 *   1. listen   listen/service-listener.ts   one socket per service port on proxy.address
 *   2. detect   listen/detect.ts             opaque TCP, UDP datagrams or HTTP requests, by port metadata
 *   3. route    route.ts                     the port's precomputed context, swapped on registry change
 *   4. balance  balance/build.ts             outlier ejection → ClientIP affinity → locality → policy
 *   5. dial     connect/connect-endpoint.ts  the Dialer (connect/dialer.ts), retrying another endpoint
 *   6. relay    tcp/relay.ts · udp/udp-proxy.ts · http/http-proxy.ts (+ http/upgrade.ts) · h2c/h2c-proxy.ts
 *
 * Steps 3–6 run per connection, request or UDP flow; 1–2 run when the registry changes.
 */
import { createSocket } from 'node:dgram';
import type { Server } from 'node:http';
import type { Http2Server } from 'node:http2';
import { isIPv6, type Server as NetServer, createServer as netServer, type Socket } from 'node:net';
import { createH2cProxyServer } from './h2c/h2c-proxy.ts';
import type { H2Sessions } from './h2c/sessions.ts';
import { createHttpProxyServer } from './http/http-server.ts';
import type { UpstreamPools } from './http/upstream-pools.ts';
import type { RouteMode } from './listen/detect.ts';
import type { BoundServer } from './listen/service-listener.ts';
import type { RouteContext } from './route.ts';
import { handleTcpConnection } from './tcp/tcp-proxy.ts';
import { UdpProxy } from './udp/udp-proxy.ts';

export interface StackDeps {
  pools: UpstreamPools;
  h2: H2Sessions;
}

/** Step 1 + 2: the socket for a service port, wired to the handler of its mode. */
export function createBoundServer(mode: RouteMode, getRoute: () => RouteContext, deps: StackDeps): BoundServer {
  if (mode === 'udp') return udpServer(getRoute);
  if (mode === 'http') {
    const server = createHttpProxyServer(getRoute, deps.pools);
    return streamServer(server, () => server.closeIdleConnections());
  }
  if (mode === 'h2c') {
    const server = createH2cProxyServer(getRoute, deps.h2);
    return streamServer(server, () => server.closeSessions());
  }
  // pauseOnConnect: nothing is read from the client before an upstream is connected (step 5).
  const server = netServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) =>
    handleTcpConnection(getRoute(), socket),
  );
  return streamServer(server, () => {});
}

function streamServer(server: NetServer | Server | Http2Server, closeIdle: () => void): BoundServer {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    listen: (address, port) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: address, port, exclusive: true }, () => {
          server.off('error', reject);
          const bound = server.address();
          resolve(typeof bound === 'object' && bound !== null ? bound.port : port);
        });
      }),
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        closeIdle();
      }),
    connections: () => sockets.size,
  };
}

function udpServer(getRoute: () => RouteContext): BoundServer {
  let proxy: UdpProxy | undefined;
  let socket: ReturnType<typeof createSocket> | undefined;
  return {
    listen: (address, port) =>
      new Promise<number>((resolve, reject) => {
        const s = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
        s.once('error', (err) => {
          s.close();
          reject(err);
        });
        s.bind(port, address, () => {
          s.removeAllListeners('error');
          s.on('error', (err) => getRoute().log.warn({ err: err.message }, 'udp listener error'));
          socket = s;
          proxy = new UdpProxy(s, getRoute);
          proxy.start();
          resolve(s.address().port);
        });
      }),
    close: async () => {
      proxy?.close();
      await new Promise<void>((resolve) => (socket ? socket.close(() => resolve()) : resolve()));
    },
    connections: () => proxy?.flowCount ?? 0,
  };
}
