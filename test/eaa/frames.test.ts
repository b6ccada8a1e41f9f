import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import t from 'tap';
import { WebSocket, WebSocketServer } from 'ws';
import { encodeTextFrames } from '../../src/eaa/consumers.ts';

// The EAA writes notification frames itself onto the socket under `ws` (src/eaa/consumers.ts);
// a `ws` client must read them back unchanged, at every length class of RFC 6455 §5.2.
t.test('text frames of every length class, written on the socket, read back by a ws client in order', async (t) => {
  const frames = ['', 'a', 'x'.repeat(125), 'y'.repeat(126), 'é€😀'.repeat(30), 'z'.repeat(65535), 'w'.repeat(65536), '{"k":1}'];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    const sock = (ws as unknown as { _socket: Duplex })._socket;
    const wire = encodeTextFrames(frames);
    // In pieces at odd places: the reader must not need a frame in one chunk.
    for (let at = 0; at < wire.length; at += 7919) sock.write(wire.subarray(at, Math.min(wire.length, at + 7919)));
  });
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, { perMessageDeflate: false });
  t.teardown(() => client.terminate());
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on('error', reject);
    client.on('message', (data, isBinary) => {
      t.equal(isBinary, false);
      got.push(data.toString());
      if (got.length === frames.length) resolve();
    });
  });
  t.same(got, frames);
});

t.test('headers: unmasked, FIN + text, 7/16/64-bit lengths', async (t) => {
  t.same([...encodeTextFrames(['hi'])], [0x81, 2, 0x68, 0x69]);
  const mid = encodeTextFrames(['a'.repeat(300)]);
  t.same([...mid.subarray(0, 4)], [0x81, 126, 1, 44]);
  const big = encodeTextFrames(['b'.repeat(70000)]);
  t.same([...big.subarray(0, 10)], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
  t.equal(big.length, 10 + 70000);
});
