import { createSocket } from 'node:dgram';
import { isIPv6, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, MeshletError } from '../../src/errors.ts';
import type { ConnectOptions, DatagramChannel, Dialer, DialTarget } from './dialer.ts';

/** Dials the endpoint address itself: pods on this node and pods routable from it. */
export class DirectDialer implements Dialer {
  connect(target: DialTarget, opts: ConnectOptions): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      const socket: Socket = netConnect({
        host: target.address,
        port: target.port,
        allowHalfOpen: opts.allowHalfOpen,
        noDelay: true,
      });
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const onError = (err: Error) =>
        fail(
          new MeshletError(ErrorCodes.PROXY_CONNECT, `connect to ${target.address}:${target.port} failed: ${err.message}`, {
            cause: err,
          }),
        );
      if (opts.timeoutMs > 0) {
        timer = setTimeout(
          () =>
            fail(
              new MeshletError(
                ErrorCodes.PROXY_TIMEOUT,
                `connect to ${target.address}:${target.port} timed out after ${opts.timeoutMs} ms`,
              ),
            ),
          opts.timeoutMs,
        );
      }
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(socket);
      });
    });
  }

  datagram(target: DialTarget): Promise<DatagramChannel> {
    return new Promise<DatagramChannel>((resolve, reject) => {
      const socket = createSocket(isIPv6(target.address) ? 'udp6' : 'udp4');
      const onError = (err: Error) => {
        socket.close();
        reject(
          new MeshletError(ErrorCodes.PROXY_CONNECT, `udp connect to ${target.address}:${target.port} failed`, { cause: err }),
        );
      };
      socket.once('error', onError);
      // A connected UDP socket only receives from the endpoint, and ICMP errors reach us.
      socket.connect(target.port, target.address, () => {
        socket.off('error', onError);
        let closed = false;
        const errorListeners: ((err: Error) => void)[] = [];
        socket.on('error', (err) => {
          for (const listener of errorListeners) listener(err);
        });
        resolve({
          send: (message) => {
            if (!closed) socket.send(message);
          },
          onMessage: (listener) => socket.on('message', listener),
          onError: (listener) => errorListeners.push(listener),
          close: () => {
            if (closed) return;
            closed = true;
            socket.close();
          },
        });
      });
    });
  }
}
