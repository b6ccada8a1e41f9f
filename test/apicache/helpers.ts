import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ApicacheModule } from '../../src/apicache/module.ts';
import { type ConfigInput, ConfigSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log.ts';
import { createMetricsRegistry } from '../../src/metrics.ts';
import { bins } from '../harness/binaries.ts';

/**
 * A TCP relay standing for the node's link to one apiserver. cut() behaves like a partition,
 * not a refusal: bytes stop flowing both ways and new connections are accepted but never
 * reach the apiserver, so only timeouts and health checks can tell. restore() drops the stalled
 * connections (as TCP would after its timeouts) and forwards again.
 */
export class LinkRelay {
  readonly #server: Server;
  readonly #target: number;
  #cut = false;
  readonly #conns = new Set<Socket>();
  port = 0;

  constructor(targetPort: number) {
    this.#target = targetPort;
    this.#server = createServer((client) => this.#accept(client));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    const a = this.#server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this;
  }

  cut(): void {
    this.#cut = true;
  }

  restore(): void {
    this.#cut = false;
    for (const s of this.#conns) s.destroy();
    this.#conns.clear();
  }

  async stop(): Promise<void> {
    for (const s of this.#conns) s.destroy();
    await new Promise((r) => this.#server.close(r));
  }

  #accept(client: Socket): void {
    this.#conns.add(client);
    client.on('close', () => this.#conns.delete(client));
    client.on('error', () => {});
    if (this.#cut) return; // accepted, never forwarded: a black hole
    const up = connect(this.#target, '127.0.0.1');
    this.#conns.add(up);
    up.on('close', () => {
      this.#conns.delete(up);
      client.destroy();
    });
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    client.on('data', (d) => {
      if (!this.#cut) up.write(d);
    });
    up.on('data', (d) => {
      if (!this.#cut) client.write(d);
    });
  }
}

export interface EdgeOptions {
  dir: string;
  kubeconfig: string;
  upstreams: string[];
  certPath: string;
  keyPath: string;
  cacheDir: string;
  extra?: NonNullable<ConfigInput['apicache']>;
}

export async function startEdge(
  o: EdgeOptions,
): Promise<{ module: ApicacheModule; metrics: ReturnType<typeof createMetricsRegistry> }> {
  const config = ConfigSchema.parse({
    apicache: {
      enabled: true,
      address: '127.0.0.1',
      port: 0,
      tlsCertFile: o.certPath,
      tlsKeyFile: o.keyPath,
      kubeconfig: o.kubeconfig,
      upstreams: o.upstreams,
      cacheDir: o.cacheDir,
      healthCheckIntervalMs: 250,
      healthCheckTimeoutMs: 400,
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      resumeJitterMs: 300,
      offlineBookmarkIntervalMs: 500,
      ...o.extra,
    },
  });
  const metrics = createMetricsRegistry();
  const module = new ApicacheModule({ config, metrics, logger: silentLogger(), plainHttpPortOverride: -1 });
  await module.start();
  return { module, metrics };
}

/** A copy of a kubeconfig whose server is the edge server and whose CA is the edge server's CA. */
export function edgeKubeconfig(src: string, dir: string, name: string, port: number, caPath: string): string {
  const doc = parseYaml(readFileSync(src, 'utf8')) as {
    clusters: { cluster: Record<string, string> }[];
  };
  for (const c of doc.clusters) {
    c.cluster.server = `https://127.0.0.1:${port}`;
    c.cluster['certificate-authority-data'] = readFileSync(caPath).toString('base64');
  }
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(path, toYaml(doc), { mode: 0o600 });
  return path;
}

/** Polls check every 50 ms until true or timeoutMs passes (then rejects with what). */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A long-running kubectl (e.g. get -w) whose output is collected. */
export function spawnKubectl(
  kubeconfig: string,
  cacheDir: string,
  args: string[],
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(bins.kubectl, [`--kubeconfig=${kubeconfig}`, `--cache-dir=${cacheDir}`, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { child, out: () => out, err: () => err };
}

/** The value of a gauge/counter (no labels, or the given labels) in the registry. */
export async function metricValue(
  registry: ReturnType<typeof createMetricsRegistry>,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  if (!m) return undefined;
  const data = await m.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value;
}
