import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { errorMessage } from '../../src/errors.ts';
import { connectEndpoint } from '../connect/connect-endpoint.ts';
import type { RouteContext } from '../route.ts';
import { relay } from '../tcp/relay.ts';
import { upstreamHeaders } from './headers.ts';

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
      const headers = upstreamHeaders(req, true);
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i + 1 < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
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
