import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bins } from '../test/harness/binaries.ts';
import { createCa, issueCert } from '../test/harness/certs.ts';
import { type ControlPlane, startControlPlane } from '../test/harness/control-plane.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { toolVersion } from './lib/machine.ts';
import { meshletVersion, type RunningMeshlet, startMeshlet } from './lib/meshlet.ts';
import { freePort, memoryOf, waitFor } from './lib/proc.ts';
import { median, percentile } from './lib/stats.ts';

/**
 * The apiserver cache (src/apicache, issue 6) against direct access to a real kube-apiserver
 * (test/harness/control-plane.ts: etcd + kube-apiserver from scripts/build-k8s-binaries.sh), side
 * by side in one run:
 *
 * - "apiserver": the client talks to kube-apiserver directly.
 * - "meshlet online": through a meshlet agent (apicache only) whose upstream is the apiserver:
 *   pass-through, teeing into its cache. Its rounds also interleave direct and proxied requests
 *   one by one, so "added p50" is a paired difference measured within the round.
 * - "meshlet offline": a second agent whose upstream is a TCP relay in this process; the cache
 *   is filled through it online, then the relay is closed (connections refused) and the agent
 *   serves from its cache while the real apiserver keeps serving the "apiserver" contender.
 * - "meshlet 10k": a fresh agent each round that caches a LIST of 10,000 pods; its RSS growth
 *   against the compact JSON size of those pods.
 *
 * The client is this process (node:https, keep-alive, the admin client certificate); each
 * request is timed from send to the last byte of the body.
 */

const NODE_PODS = 1000;
const MEM_PODS = 10_000;
const NODE_NAME = 'edge-1';
const NODE_LIST = `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE_NAME}`;
const MEM_LIST = '/api/v1/namespaces/bench-10k/pods';
const ONE_POD = '/api/v1/namespaces/bench-edge/pods/web-0';
const CONCURRENCY = 4;

interface Tls {
  ca: Buffer[];
  cert: Buffer;
  key: Buffer;
}

interface Timed {
  ms: number;
  status: number;
  bytes: number;
  body?: Buffer;
}

/** One GET, timed from send to the last byte of the body. */
function timedGet(agent: Agent, port: number, path: string, keepBody = false): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: { Accept: 'application/json' }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (keepBody || res.statusCode !== 200) chunks.push(c);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const done: Timed = { ms: performance.now() - t0, status, bytes };
          if (chunks.length > 0) done.body = Buffer.concat(chunks);
          if (status !== 200)
            reject(new Error(`GET ${path} on :${port} answered ${status}: ${done.body?.toString().slice(0, 300)}`));
          else resolve(done);
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on :${port}: no answer in 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** n requests one after the other, stopping early at the deadline. */
async function sequential(agent: Agent, port: number, path: string, n: number, budgetMs: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + budgetMs;
  for (let i = 0; i < n && performance.now() < end; i++) out.push((await timedGet(agent, port, path)).ms);
  return out;
}

/** `total` requests over `conc` parallel loops (stopping at the deadline): requests/s and latencies. */
async function concurrent(
  agent: Agent,
  port: number,
  path: string,
  total: number,
  conc: number,
  budgetMs: number,
): Promise<{ rps: number; ms: number[] }> {
  const ms: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  const end = t0 + budgetMs;
  const loop = async () => {
    while (issued < total && performance.now() < end) {
      issued++;
      ms.push((await timedGet(agent, port, path)).ms);
    }
  };
  await Promise.all(Array.from({ length: conc }, loop));
  return { rps: ms.length / ((performance.now() - t0) / 1000), ms };
}

/** Items of a LIST body and their total compact JSON size (what a cache of them must hold). */
function listItems(body: Buffer): { count: number; jsonBytes: number } {
  const doc = JSON.parse(body.toString('utf8')) as { items?: unknown[] };
  const items = doc.items ?? [];
  return { count: items.length, jsonBytes: items.reduce<number>((s, i) => s + Buffer.byteLength(JSON.stringify(i)), 0) };
}

/** A TCP relay standing for the node's link to the apiserver; close() makes it unreachable (refused). */
class Relay {
  readonly #server: Server;
  readonly #conns = new Set<Socket>();
  port = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      const up = connect(target, '127.0.0.1');
      for (const s of [client, up]) {
        this.#conns.add(s);
        s.on('close', () => this.#conns.delete(s));
        s.on('error', () => {});
      }
      client.pipe(up).pipe(client);
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', () => resolve()));
    const a = this.#server.address();
    this.port = typeof a === 'object' && a !== null ? a.port : 0;
    return this;
  }

  close(): Promise<void> {
    for (const s of this.#conns) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function podJson(i: number, namespace: string, name: string, nodeName: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: { app: `app-${i % 50}`, tier: i % 3 === 0 ? 'front' : 'back', 'pod-template-hash': (1e6 + i).toString(16) },
      annotations: { 'bench.meshlet.io/index': String(i) },
    },
    spec: {
      nodeName,
      automountServiceAccountToken: false,
      containers: [
        {
          name: 'app',
          image: 'registry.example/bench/app:1.0',
          ports: [{ name: 'http', containerPort: 8080 }],
          env: [{ name: 'MODE', value: 'bench' }],
          resources: { requests: { cpu: '10m', memory: '16Mi' } },
        },
      ],
    },
  });
}

function post(agent: Agent, port: number, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        timeout: 30_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Namespace, its `default` ServiceAccount (no controller-manager here) and `count` pods, 32 POSTs at a time. */
async function createPods(
  agent: Agent,
  port: number,
  namespace: string,
  count: number,
  node: (i: number) => string,
  log: (m: string) => void,
): Promise<void> {
  const ok = (s: number, what: string) => {
    if (s !== 201 && s !== 409) throw new Error(`creating ${what} answered ${s}`);
  };
  ok(await post(agent, port, '/api/v1/namespaces', JSON.stringify({ metadata: { name: namespace } })), namespace);
  ok(
    await post(agent, port, `/api/v1/namespaces/${namespace}/serviceaccounts`, JSON.stringify({ metadata: { name: 'default' } })),
    'serviceaccount',
  );
  let next = 0;
  const t0 = performance.now();
  const loop = async () => {
    while (next < count) {
      const i = next++;
      const name = namespace === 'bench-edge' ? `web-${i}` : `pod-${i}`;
      ok(await post(agent, port, `/api/v1/namespaces/${namespace}/pods`, podJson(i, namespace, name, node(i))), name);
      if ((i + 1) % 2500 === 0) log(`  ${i + 1}/${count} pods in ${namespace}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, loop));
  log(`${count} pods in ${namespace} created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function cloudState(adminUrl: string): Promise<string> {
  const res = await fetch(`${adminUrl}/debug/status`);
  const body = (await res.json()) as { modules?: { name: string; cloud?: string }[] };
  return body.modules?.find((m) => m.name === 'apicache')?.cloud ?? 'unknown';
}

async function cachedBytes(adminUrl: string): Promise<number> {
  const res = await fetch(`${adminUrl}/debug/status`);
  const body = (await res.json()) as { modules?: { name: string; cache?: { bytes?: number } }[] };
  return body.modules?.find((m) => m.name === 'apicache')?.cache?.bytes ?? Number.NaN;
}

/** V8 heap in use plus memory held outside it (Buffers), from the agent's /metrics. */
async function heapBytes(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return value('nodejs_heap_size_used_bytes') + value('nodejs_external_memory_bytes');
}

const MiB = 1024 * 1024;

export const apicacheBenchmark: Benchmark = {
  name: 'apicache',
  title: 'Apiserver cache: LIST through meshlet vs direct kube-apiserver',
  debian: [],
  coredns: false,
  unavailable(repo) {
    if (!existsSync(join(repo, 'src', 'apicache', 'module.ts'))) return 'meshlet has no apicache module yet';
    const missing = [bins.kubeApiserver, bins.etcd].filter((b) => !existsSync(b));
    if (missing.length > 0) return `${missing.join(', ')} not built: run scripts/build-k8s-binaries.sh`;
    return undefined;
  },
  async plan(ctx: BenchContext): Promise<Plan> {
    const dir = ctx.rawDir;
    const quick = ctx.quick;
    const listN = quick ? 15 : 30;
    const concN = quick ? 24 : 60;
    const getN = quick ? 100 : 300;
    const budgetMs = quick ? 10_000 : 20_000;

    // The control plane: a tap-like collector of its teardown functions, run at the end.
    const teardowns: (() => unknown)[] = [];
    const runTeardowns = async () => {
      for (const fn of teardowns.reverse()) await fn();
    };
    ctx.log('starting etcd + kube-apiserver (test/harness/control-plane.ts)');
    let cp: ControlPlane;
    try {
      cp = await startControlPlane({ teardown: (fn) => teardowns.push(fn) });
    } catch (err) {
      await runTeardowns();
      throw err;
    }
    try {
      const pki = join(cp.dir, 'pki');
      const clusterCa = readFileSync(cp.caPath);
      const edgeCa = createCa(dir, 'edge-ca', 'meshlet-bench-edge-ca');
      const serving = issueCert(edgeCa, dir, 'edge', { cn: 'meshlet-apicache', sans: ['127.0.0.1'], usage: 'server' });
      const tls: Tls = {
        ca: [clusterCa, readFileSync(edgeCa.certPath)],
        cert: readFileSync(join(pki, 'admin.crt')),
        key: readFileSync(join(pki, 'admin.key')),
      };
      const newAgent = (maxSockets: number) => new Agent({ keepAlive: true, maxSockets, ...tls });
      const setupAgent = newAgent(32);
      await createPods(setupAgent, cp.port, 'bench-edge', NODE_PODS, () => NODE_NAME, ctx.log);
      await createPods(setupAgent, cp.port, 'bench-10k', MEM_PODS, (i) => `other-${i % 10}`, ctx.log);
      setupAgent.destroy();

      const registry = join(dir, 'registry.json');
      writeFileSync(registry, JSON.stringify({ nodes: [], services: [] }));
      let seq = 0;
      const startAgent = async (name: string, upstream: number, extra: Record<string, unknown> = {}) => {
        const port = await freePort();
        const cacheDir = join(dir, `cache-${name}-${seq++}`);
        rmSync(cacheDir, { recursive: true, force: true });
        mkdirSync(cacheDir, { recursive: true });
        const config = join(dir, `${name}.yaml`);
        const apicache = {
          enabled: true,
          address: '127.0.0.1',
          port,
          tlsCertFile: serving.certPath,
          tlsKeyFile: serving.keyPath,
          kubeconfig: cp.kubeconfigPath,
          upstreams: [`https://127.0.0.1:${upstream}`],
          cacheDir: '<cacheDir>',
          ...extra,
        };
        // The config as written for the results shows <cacheDir>; the file itself has the path.
        writeFileSync(
          config,
          JSON.stringify({
            source: { kind: 'file', file: { path: registry } },
            dns: { enabled: false },
            proxy: { enabled: false },
            apicache: { ...apicache, cacheDir },
          }),
        );
        writeFileSync(`${config}.shown`, JSON.stringify({ apicache }));
        const m = await startMeshlet({ repo: ctx.repo, name, config, sets: [], log: join(dir, `${name}.log`) });
        return { m, port, cacheDir, config };
      };

      const apiserverAgent = newAgent(CONCURRENCY);
      /** The figures every contender reports, against one port. */
      const figures = async (agent: Agent, port: number, pid: number): Promise<Record<string, number>> => {
        const first = await timedGet(agent, port, NODE_LIST, true);
        const got = listItems(first.body as Buffer);
        if (got.count !== NODE_PODS) throw new Error(`LIST on :${port} returned ${got.count} pods, not ${NODE_PODS}`);
        const get = await sequential(agent, port, ONE_POD, getN, budgetMs);
        const list = await sequential(agent, port, NODE_LIST, listN, budgetMs);
        const conc = await concurrent(agent, port, NODE_LIST, concN, CONCURRENCY, budgetMs);
        return {
          'get.p50': median(get),
          'list.p50': median(list),
          'list.p99': percentile(list, 99),
          'conc.rps': conc.rps,
          'conc.p50': median(conc.ms),
          rss: memoryOf(pid).rssMiB,
        };
      };

      const contenders: ContenderDef[] = [
        {
          name: 'apiserver',
          label: 'kube-apiserver, direct',
          async start(): Promise<Instance> {
            return {
              commands: [`${bins.kubeApiserver} … (test/harness/control-plane.ts; etcd ${bins.etcd})`],
              measure: () => figures(apiserverAgent, cp.port, cp.pids.apiserver),
              stop: async () => apiserverAgent.destroy(),
            };
          },
        },
        {
          name: 'online',
          label: 'meshlet, online (pass-through)',
          async start(): Promise<Instance> {
            const { m, port, config } = await startAgent('meshlet-online', cp.port);
            const agent = newAgent(CONCURRENCY);
            const direct = newAgent(1);
            return {
              commands: [m.service.command, `config: ${readFileSync(`${config}.shown`, 'utf8')}`],
              async measure() {
                m.service.assertAlive();
                const f = await figures(agent, port, m.service.pid);
                // Paired: proxied and direct requests interleaved one by one (order swapped every pair).
                const viaGet: number[] = [];
                const dirGet: number[] = [];
                const viaList: number[] = [];
                const dirList: number[] = [];
                const end = performance.now() + budgetMs;
                for (let i = 0; i < getN && performance.now() < end; i++) {
                  const [a, b] = i % 2 === 0 ? [port, cp.port] : [cp.port, port];
                  const ra = await timedGet(a === port ? agent : direct, a, ONE_POD);
                  const rb = await timedGet(b === port ? agent : direct, b, ONE_POD);
                  (a === port ? viaGet : dirGet).push(ra.ms);
                  (b === port ? viaGet : dirGet).push(rb.ms);
                }
                const endList = performance.now() + budgetMs;
                for (let i = 0; i < listN && performance.now() < endList; i++) {
                  const first = i % 2 === 0;
                  const ra = await timedGet(first ? agent : direct, first ? port : cp.port, NODE_LIST);
                  const rb = await timedGet(first ? direct : agent, first ? cp.port : port, NODE_LIST);
                  (first ? viaList : dirList).push(ra.ms);
                  (first ? dirList : viaList).push(rb.ms);
                }
                return {
                  ...f,
                  'get.added': median(viaGet) - median(dirGet),
                  'list.added': median(viaList) - median(dirList),
                };
              },
              async stop() {
                agent.destroy();
                direct.destroy();
                await m.service.stop();
              },
            };
          },
        },
        {
          name: 'offline',
          label: 'meshlet, offline (from cache)',
          async start(): Promise<Instance> {
            const relay = await new Relay(cp.port).start();
            let m: RunningMeshlet;
            let port: number;
            let config: string;
            try {
              ({ m, port, config } = await startAgent('meshlet-offline', relay.port, {
                healthCheckIntervalMs: 250,
                healthCheckTimeoutMs: 400,
                unhealthyThreshold: 1,
              }));
            } catch (err) {
              await relay.close();
              throw err;
            }
            const agent = newAgent(CONCURRENCY);
            // Online once through the relay: fills the cache and records this client's grants.
            await timedGet(agent, port, NODE_LIST);
            await timedGet(agent, port, ONE_POD);
            await relay.close();
            const offlineMs = await waitFor(
              'meshlet-offline: cloud unreachable',
              async () => (await cloudState(m.adminUrl)) === 'unreachable',
              {
                timeoutMs: 30_000,
                intervalMs: 50,
              },
            );
            ctx.log(`relay closed; meshlet-offline saw the cloud unreachable after ${Math.round(offlineMs)} ms`);
            return {
              commands: [m.service.command, `config: ${readFileSync(`${config}.shown`, 'utf8')}`],
              async measure() {
                m.service.assertAlive();
                if ((await cloudState(m.adminUrl)) !== 'unreachable') throw new Error('meshlet-offline sees the cloud again');
                return figures(agent, port, m.service.pid);
              },
              async stop() {
                agent.destroy();
                await m.service.stop();
              },
            };
          },
        },
        {
          name: 'cache10k',
          label: `meshlet, ${MEM_PODS.toLocaleString('en-US')} pods cached (fresh process each round)`,
          async start(): Promise<Instance> {
            const commands: string[] = [];
            return {
              commands,
              async measure() {
                const { m, port, config, cacheDir } = await startAgent('meshlet-10k', cp.port);
                if (commands.length === 0) commands.push(m.service.command, `config: ${readFileSync(`${config}.shown`, 'utf8')}`);
                const agent = newAgent(1);
                try {
                  await sleep(quick ? 1000 : 2000);
                  const before = memoryOf(m.service.pid).rssMiB;
                  const heapBefore = await heapBytes(m.adminUrl);
                  const r = await timedGet(agent, port, MEM_LIST, true);
                  const got = listItems(r.body as Buffer);
                  if (got.count !== MEM_PODS) throw new Error(`LIST returned ${got.count} pods, not ${MEM_PODS}`);
                  await waitFor('10k pods cached', async () => (await cachedBytes(m.adminUrl)) > 0, { timeoutMs: 10_000 });
                  await sleep(quick ? 2000 : 3000);
                  m.service.assertAlive();
                  const after = memoryOf(m.service.pid);
                  const growth = after.rssMiB - before;
                  return {
                    'mem.json': got.jsonBytes / MiB,
                    'mem.cached': (await cachedBytes(m.adminUrl)) / MiB,
                    'mem.growth': growth,
                    'mem.peakGrowth': after.peakMiB - before,
                    'mem.heapGrowth': ((await heapBytes(m.adminUrl)) - heapBefore) / MiB,
                    'mem.ratio': growth / (got.jsonBytes / MiB),
                    'mem.listMs': r.ms,
                  };
                } finally {
                  agent.destroy();
                  await m.service.stop();
                  rmSync(cacheDir, { recursive: true, force: true });
                }
              },
              stop: async () => {},
            };
          },
        },
      ];

      return {
        description:
          `A real kube-apiserver (etcd + kube-apiserver ${toolVersion(bins.kubeApiserver, ['--version'], /v([\d.]+)/)}, test/harness/control-plane.ts) holds ${NODE_PODS.toLocaleString('en-US')} pods on node ${NODE_NAME} ` +
          `and ${MEM_PODS.toLocaleString('en-US')} pods on other nodes (plain objects POSTed, about 2 KiB of JSON each as the apiserver returns them). ` +
          `"LIST" is kubelet's list of its node's pods (\`GET ${NODE_LIST}\`, ${NODE_PODS.toLocaleString('en-US')} items); "GET" is one pod. ` +
          `Each round: ${listN} sequential LISTs, ${concN} LISTs over ${CONCURRENCY} parallel connections, ${getN} sequential GETs (each phase cut at ${budgetMs / 1000} s), ` +
          'timed from send to the last byte with node:https keep-alive and the admin client certificate (which meshlet verifies and impersonates upstream). ' +
          '"added" is measured inside the online round by interleaving proxied and direct requests one by one: median(proxied) − median(direct). ' +
          'The offline agent filled its cache online through a TCP relay that was then closed (connections refused), so it serves from cache while the apiserver keeps serving the direct contender. ' +
          `"10k": a fresh agent per round LISTs the ${MEM_PODS.toLocaleString('en-US')} pods once through the cache; RSS growth (VmRSS after 3 s − before the LIST) is compared with the compact JSON size of the items. ` +
          'RSS of "kube-apiserver, direct" is the apiserver process (not etcd).',
        metrics: [
          { key: 'list.p50', label: 'LIST 1k p50', unit: 'ms', better: 'lower', chart: 'latency', digits: 1 },
          { key: 'list.p99', label: 'LIST 1k p99', unit: 'ms', better: 'lower', chart: 'latency', digits: 1 },
          {
            key: 'conc.p50',
            label: `LIST 1k p50, ${CONCURRENCY} parallel`,
            unit: 'ms',
            better: 'lower',
            chart: 'latency',
            digits: 1,
          },
          { key: 'get.p50', label: 'GET 1 pod p50', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
          {
            key: 'conc.rps',
            label: `LIST 1k, ${CONCURRENCY} parallel`,
            unit: 'lists/s',
            better: 'higher',
            chart: 'throughput',
            digits: 1,
          },
          { key: 'get.added', label: 'added p50, GET', unit: 'ms', better: 'lower', chart: 'time', digits: 2 },
          { key: 'list.added', label: 'added p50, LIST 1k', unit: 'ms', better: 'lower', chart: 'time', digits: 2 },
          { key: 'rss', label: 'RSS after the round', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.json', label: 'JSON of the cached pods', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.cached', label: 'cache bytes (meshlet)', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.growth', label: 'RSS growth', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.peakGrowth', label: 'peak RSS growth', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.heapGrowth', label: 'heap + external growth', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
          { key: 'mem.ratio', label: 'RSS growth / JSON', unit: 'x', better: 'lower', chart: 'memory', digits: 2 },
        ],
        contenders,
        ratios: [
          ['list.p50', 'offline', 'apiserver'],
          ['conc.rps', 'offline', 'apiserver'],
          ['list.p50', 'online', 'apiserver'],
          ['conc.rps', 'online', 'apiserver'],
          ['get.p50', 'online', 'apiserver'],
        ],
        loadCommands: [
          `GET https://127.0.0.1:<port>${NODE_LIST} (node:https, Accept: application/json, keep-alive; bench/apicache.ts timedGet)`,
          `GET https://127.0.0.1:<port>${ONE_POD}`,
          `GET https://127.0.0.1:<port>${MEM_LIST} (10k contender, once per round)`,
        ],
        versions: {
          meshlet: meshletVersion(ctx.repo),
          node: process.version,
          'kube-apiserver': toolVersion(bins.kubeApiserver, ['--version'], /(v[\d.]+)/),
          etcd: toolVersion(bins.etcd, ['--version'], /etcd Version: ([\d.]+)/),
        },
        notes: [
          'Targets (issue 6): pass-through adds under 1 ms p50; an offline LIST of 1,000 pods is served faster than the apiserver serves it; memory under 2× the JSON size of what is cached.',
          'While online, meshlet passes every read through (it tees into the cache, it does not answer from it), so "online" measures the proxy path and "offline" the cache path.',
          'Next: the OpenYurt YurtHub peer (it builds here, shared/reference/platform.md) as a third contender for the online and offline LISTs.',
        ],
        rounds: quick ? 2 : 5,
        warmup: 1,
        teardown: runTeardowns,
      };
    } catch (err) {
      await runTeardowns();
      throw err;
    }
  },
};
