import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { RouteContext } from '../route.ts';
import { ProxyExchange } from './http-proxy.ts';
import { handleUpgrade } from './upgrade.ts';
import type { UpstreamPools } from './upstream-pools.ts';

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';

/**
 * The server side of an HTTP service port: node:http parses requests (llhttp), each request
 * becomes a ProxyExchange on the route current at that moment; Upgrade requests become relays.
 * An unparsable request gets a 400 on its own connection and the listener carries on.
 */
export function createHttpProxyServer(getRoute: () => RouteContext, pools: UpstreamPools): Server {
  const server = createServer({ keepAlive: true });
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
