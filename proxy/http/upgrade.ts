import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { errorMessage } from '../../src/errors.ts';
import { connectEndpoint } from '../connect/connect-endpoint.ts';
import type { RouteContext } from '../route.ts';
import { relay } from '../tcp/relay.ts';
import { requestHead, upstreamHeaders } from './headers.ts';

/**
 * An HTTP/1.1 Upgrade (WebSocket, h2c upgrade): balanced like a request, then the request head
 * is replayed to the endpoint and the connection becomes an L4 relay; the endpoint's 101 (or
 * refusal) reaches the client unchanged.
 */
export function handleUpgrade(route: RouteContext, req: IncomingMessage, client: Socket, head: Buffer): void {
  // The connection itself is counted by the HTTP server (http-server.ts).
  client.on('error', () => client.destroy());
  client.pause();
  const clientIp = client.remoteAddress ?? '';
  connectEndpoint(route, { clientIp, headers: req.headers }, true).then(
    ({ socket: upstream, endpoint }) => {
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      upstream.write(requestHead(req.method ?? 'GET', req.url ?? '/', upstreamHeaders(req, true), endpoint.id));
      if (head.length > 0) upstream.write(head);
      route.metrics.request(101);
      relay(route, client, upstream, endpoint);
    },
    (err: unknown) => {
      route.log.debug({ err: errorMessage(err), client: clientIp }, 'no upstream for upgrade');
      route.metrics.request(503);
      client.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    },
  );
}
