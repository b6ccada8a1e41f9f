import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../src/errors.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { RouteContext } from '../route.ts';

/**
 * Relays bytes both ways between a client socket and a connected upstream until both are done:
 * pipe() gives backpressure; with allowHalfOpen on both sockets a FIN from one side is passed on
 * (pipe ends the destination) while the other direction keeps flowing. Used by TCP ports and by
 * HTTP upgrades (WebSocket).
 */
export function relay(route: RouteContext, client: Socket, upstream: Duplex, endpoint: ProxyEndpoint): void {
  endpoint.stats.active++;
  let closed = 0;
  const onClose = () => {
    if (++closed !== 2) return;
    endpoint.stats.active--;
    route.metrics.rx.inc(client.bytesRead);
    route.metrics.tx.inc(client.bytesWritten);
  };
  // When one side is gone, the other is closed once what was already written to it is flushed.
  client.once('close', () => {
    closeAfterFlush(upstream);
    onClose();
  });
  upstream.once('close', () => {
    closeAfterFlush(client);
    onClose();
  });
  upstream.on('error', (err) => {
    route.log.debug({ endpoint: endpoint.id, err: errorMessage(err) }, 'upstream connection error');
    client.destroy();
  });
  client.on('error', () => upstream.destroy());
  const idle = route.settings.tcpIdleTimeoutMs;
  if (idle > 0) {
    // Reads and writes of the client socket are the two directions of the relay.
    client.setTimeout(idle, () => {
      client.destroy();
      upstream.destroy();
    });
  }
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}

/** Destroys `peer` now if it was not ended normally (an abort passes on), else once its writes are flushed. */
function closeAfterFlush(peer: Duplex): void {
  if (peer.destroyed) return;
  if (!peer.writableEnded || peer.writableFinished) peer.destroy();
  else peer.once('finish', () => peer.destroy());
}
