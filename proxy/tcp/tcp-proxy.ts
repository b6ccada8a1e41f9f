import type { Socket } from 'node:net';
import { errorMessage } from '../../src/errors.ts';
import { connectEndpoint } from '../connect/connect-endpoint.ts';
import type { RouteContext } from '../route.ts';
import { relay } from './relay.ts';

/**
 * One client TCP connection: balance + dial (with retry) while the client socket is paused
 * (the listener uses pauseOnConnect, so no byte is read before an upstream exists), then relay.
 */
export function handleTcpConnection(route: RouteContext, client: Socket): void {
  const m = route.metrics;
  m.connections.inc();
  m.active.inc();
  client.once('close', () => m.active.dec());
  client.on('error', () => client.destroy());
  const clientIp = client.remoteAddress ?? '';
  connectEndpoint(route, { clientIp }, true).then(
    ({ socket: upstream, endpoint }) => {
      if (client.destroyed) upstream.destroy();
      else relay(route, client, upstream, endpoint);
    },
    (err: unknown) => {
      route.log.debug({ err: errorMessage(err), client: clientIp }, 'no upstream for connection');
      client.destroy();
    },
  );
}
