import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A demo backend: answers every request with its own name, so load balancing is visible. */
export interface DemoBackend {
  name: string;
  port: number;
  close(): Promise<void>;
}

export async function startDemoBackend(name: string, port: number, host = '127.0.0.1'): Promise<DemoBackend> {
  const server: Server = createServer((req, res) => {
    const body = `hello from ${name} (${req.method} ${req.url})\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    name,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
