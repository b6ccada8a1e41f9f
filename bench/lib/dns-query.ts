import { createSocket } from 'node:dgram';

/** One A query over UDP; resolves to the answer count (−1 for an error rcode, e.g. NXDOMAIN). */
export function queryA(port: number, name: string, timeoutMs = 500, host = '127.0.0.1'): Promise<number> {
  const id = Math.floor(Math.random() * 0xffff);
  const labels = name
    .replace(/\.$/, '')
    .split('.')
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const question = Buffer.concat([...labels, Buffer.from([0, 0, 1, 0, 1])]); // root, A, IN
  const packet = Buffer.concat([header, question]);
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no DNS answer for ${name} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      socket.close();
      const rcode = msg.readUInt16BE(2) & 0x0f;
      resolve(rcode === 0 ? msg.readUInt16BE(6) : -1);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
    socket.send(packet, port, host);
  });
}
