import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { RouteContext } from '../route.ts';
import { ProxyExchange } from './http-proxy.ts';
import { LeanConnection } from './lean-server.ts';
import { handleUpgrade } from './upgrade.ts';
import type { UpstreamPools } from './upstream-pools.ts';

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';

/**
 * The server side of an HTTP service port. Connections start on the lean path (lean-server.ts:
 * llhttp directly, body-less HTTP/1.1 requests forwarded without IncomingMessage/ServerResponse);
 * the first unusual request hands its connection to node:http, where each request becomes a
 * ProxyExchange on the route current at that moment and Upgrade requests become relays.
 * An unparsable request gets a 400 on its own connection and the listener carries on.
 *
 * The node:http server is the listening object (stack.ts closes and counts it as before); its own
 * connection listener is taken off and called for the connections handed over.
 */
export function createHttpProxyServer(getRoute: () => RouteContext, pools: UpstreamPools): Server {
  const server = createServer({ keepAlive: true });
  const [nodeConnection, ...others] = server.listeners('connection');
  if (nodeConnection !== undefined && others.length === 0) {
    server.off('connection', nodeConnection as (socket: Socket) => void);
    const fallback = (socket: Socket) => (nodeConnection as (this: Server, socket: Socket) => void).call(server, socket);
    const lean = new Set<LeanConnection>();
    server.on('connection', (socket: Socket) => {
      const conn = new LeanConnection(socket, getRoute, pools, fallback);
      lean.add(conn);
      socket.once('close', () => lean.delete(conn));
    });
    // server.close() closes idle connections through this method: the lean ones too.
    const closeIdle = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = () => {
      closeIdle();
      for (const conn of lean) conn.closeIfIdle();
    };
  }
  server.on('request', (req, res) => new ProxyExchange(getRoute(), pools, req, res).start());
  server.on('upgrade', (req, socket, head) => handleUpgrade(getRoute(), req, socket as Socket, head));
  server.on('connection', (socket: Socket) => {
    const m = getRoute().metrics;
    m.connections.inc();
    m.active.inc();
    socket.once('close', () => m.active.dec());
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const route = getRoute();
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    route.metrics.request(400);
    route.log.debug({ err: err.message, code: err.code, client: socket.remoteAddress }, 'unparsable HTTP request');
    socket.end(BAD_REQUEST);
  });
  return server;
}
