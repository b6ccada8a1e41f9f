import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { Registry } from 'prom-client';
import { createDnsModule } from '../../dns/module.ts';
import { type DecodedMessage, decodeMessage, MessageWriter } from '../../dns/wire/message.ts';
import { type ConfigInput, ConfigSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import { RegistryFileSchema, registryStateFromFile } from '../../src/sources/file-format.ts';

/** The parts of tap's Test these helpers use. */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export type DnsInput = NonNullable<ConfigInput['dns']>;

/** A registry file (the standalone YAML shape) as an object. */
export type RegistryInput = Record<string, unknown>;

/** Starts the DNS module on 127.0.0.1 and a free port, over an in-memory registry. */
export async function startDns(t: Teardown, registryInput: RegistryInput, dns: DnsInput = {}, domain = 'cluster.local') {
  const config = ConfigSchema.parse({ cluster: { domain }, dns: { address: '127.0.0.1', port: 0, upstreams: [], ...dns } });
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  registry.replaceAll(registryStateFromFile(RegistryFileSchema.parse(registryInput)));
  registry.flush();
  const metrics = new Registry();
  const module = createDnsModule({ config, registry, metrics, logger: silentLogger() });
  await module.start();
  t.teardown(() => module.stop());
  return { module, registry, metrics, port: module.server.port };
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: string[];
  authority: string[];
  additional: string[];
  raw: string;
}

/** Runs the real dig against 127.0.0.1:port (asynchronously: the server runs in this process). */
export function dig(port: number, ...args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'dig',
      ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+nocmd', '+noquestion', '+nostats', ...args],
      { encoding: 'utf8', timeout: 15_000 },
      (err, stdout) => {
        if (err && !stdout) {
          reject(err);
          return;
        }
        resolve(parseDig(stdout));
      },
    );
  });
}

export function parseDig(out: string): DigResult {
  const result: DigResult = { status: '', flags: [], answer: [], authority: [], additional: [], raw: out };
  let section: 'answer' | 'authority' | 'additional' | undefined;
  for (const line of out.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status?.[1]) result.status = status[1];
    const flags = /;; flags: ([^;]*);/.exec(line);
    if (flags?.[1]) result.flags = flags[1].trim().split(/\s+/);
    if (line.startsWith(';; ANSWER SECTION')) section = 'answer';
    else if (line.startsWith(';; AUTHORITY SECTION')) section = 'authority';
    else if (line.startsWith(';; ADDITIONAL SECTION')) section = 'additional';
    else if (line.trim() === '') section = undefined;
    else if (section && !line.startsWith(';')) result[section].push(line.replace(/\s+/g, ' ').trim());
  }
  return result;
}

/** Sends one datagram and waits for one reply (undefined on timeout). */
export function udpExchange(port: number, msg: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(msg, port, '127.0.0.1');
  });
}

/** A port free for both UDP and TCP on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const p = (server.address() as { port: number }).port;
        server.close(() => resolve(p));
      });
    });
    const free = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** Runs the real dnsmasq as a fake upstream on a free loopback port; returns the port and a stop function. */
export async function startDnsmasq(t: Teardown, args: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    '/usr/sbin/dnsmasq',
    [
      '--no-daemon',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--pid-file=',
      '--user=root',
      '--cache-size=0',
      ...args,
    ],
    { stdio: 'ignore' },
  );
  let exited = false;
  const done = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    await done;
  };
  t.teardown(stop);
  // Wait until it answers (bounded: 50 × 100 ms).
  const probe = new MessageWriter(0xabcd, 0x0100).question('probe.test', 1, 1).finish();
  for (let i = 0; i < 50; i++) {
    if (await udpExchange(port, probe, 100)) return { port, stop };
    if (exited) break;
  }
  throw new Error('dnsmasq did not start');
}

/**
 * A scripted upstream on UDP and TCP (same port): `answer` gets the decoded query and the
 * transport and returns the reply bytes, or undefined to stay silent.
 */
export async function startFakeUpstream(
  t: Teardown,
  answer: (query: DecodedMessage, transport: 'udp' | 'tcp') => Buffer | undefined,
): Promise<{ port: number; queries: { name: string; transport: 'udp' | 'tcp'; fromPort: number }[] }> {
  const queries: { name: string; transport: 'udp' | 'tcp'; fromPort: number }[] = [];
  const port = await freePort();
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const q = decodeMessage(msg);
    if (!q?.question) return;
    queries.push({ name: q.question.name, transport: 'udp', fromPort: rinfo.port });
    const reply = answer(q, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', () => resolve()));
  const tcp = createServer((socket) => {
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      const q = decodeMessage(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = Buffer.alloc(0);
      if (!q?.question) return;
      queries.push({ name: q.question.name, transport: 'tcp', fromPort: socket.remotePort ?? 0 });
      const reply = answer(q, 'tcp');
      if (!reply) return;
      const frame = Buffer.alloc(reply.length + 2);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', () => resolve()));
  t.teardown(async () => {
    udp.close();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  });
  return { port, queries };
}

/** Sum of a metric's samples (`_count`/`_sum` names of histograms too) whose labels match `labels`. */
export async function metricValue(metrics: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const metric of await metrics.getMetricsAsJSON()) {
    for (const v of metric.values as { value: number; metricName?: string; labels: Record<string, string | number> }[]) {
      if ((v.metricName ?? metric.name) !== name) continue;
      if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
    }
  }
  return sum;
}
