import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type ClientHttp2Session, connect as connectH2, createSecureServer } from 'node:http2';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { createCa, issueCertificate } from '../src/eaa/pki.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { meshletVersion, startMeshlet } from './lib/meshlet.ts';
import { commandLine, cpuSeconds, freePort, memoryOf, processTree, Service, tcpOpen, waitFor } from './lib/proc.ts';
import { median, percentile } from './lib/stats.ts';

/**
 * EAA (src/eaa, issue 7): notifications per second and end-to-end latency, producer → agent →
 * consumer WebSocket, with 1 and 100 consumers, on one node and across two agents.
 *
 * - "ws broker": the direct baseline. There is no OpenNESS EAA to run here, so the peer is a bare
 *   Node process (`node bench/eaa.ts --baseline`) with the same API subset over the same mutual
 *   TLS: POST /services, POST /subscriptions/{ns}, POST /notifications → the same frame sent with
 *   `ws` to each subscribed socket. No validation, persistence, limits or routing: the floor.
 * - "meshlet, same node": one agent (`meshlet agent`, eaa only); producer and consumers on it.
 * - "meshlet, across nodes": two agents (two processes on 127.0.0.1 with eaa.peers); the producer
 *   talks to node a, the consumers to node b, so every notification takes the agent-to-agent hop.
 *
 * The producers and the consumers are this process (node:http2, one connection per producer, as a
 * Go client negotiates; `ws`), so send and receive times come from one clock. The latency of a notification is measured from
 * its *scheduled* send time (open loop, no coordinated omission) to its arrival on the socket.
 */

const CONSUMERS = 100;
const NS1 = 'bench1';
const NS100 = 'bench100';
const RATE1 = 10_000;
const RATE100 = 100;
const INFLIGHT = 256;
const SOCKETS = 32;
const CLOSED_LOOP = 64;
const EVENT = '[{"name":"tick","version":"1"}]';

interface Identity {
  cn: string;
  keyPem: string;
  certPem: string;
}

interface Endpoints {
  /** EAA API port the producers use. */
  producer: number;
  /** EAA API port the consumers use. */
  consumer: number;
  /** Server process ids (CPU and RSS). */
  pids: number[];
}

// ------------------------------------------------------------------------------------------
// The baseline broker, run as its own process: node bench/eaa.ts --baseline <config.json>

async function baselineServer(configPath: string): Promise<void> {
  const c = JSON.parse(readFileSync(configPath, 'utf8')) as { port: number; keyPem: string; certPem: string; caPem: string };
  const subs = new Map<string, Set<string>>();
  const sockets = new Map<string, WebSocket>();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  // The CN once per TLS connection (meshlet does the same): getPeerCertificate() is costly per request.
  const cns = new WeakMap<TLSSocket, string>();
  const cnOf = (socket: TLSSocket) => {
    let cn = cns.get(socket);
    if (cn === undefined) {
      cn = String(socket.getPeerCertificate().subject.CN);
      cns.set(socket, cn);
    }
    return cn;
  };
  // The same transport as meshlet's EAA: HTTP/2 and HTTP/1.1 (for the WebSocket upgrade) on one TLS port.
  const server = createSecureServer(
    { key: c.keyPem, cert: c.certPem, ca: [c.caPem], requestCert: true, rejectUnauthorized: true, allowHTTP1: true },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const cn = cnOf((req.stream?.session?.socket ?? req.socket) as TLSSocket);
        const colon = cn.indexOf(':');
        const ns = cn.slice(0, colon);
        const url = req.url ?? '';
        try {
          if (req.method === 'POST' && url === '/notifications') {
            const n = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name: string; version: string; payload: unknown };
            const frame = JSON.stringify({
              name: n.name,
              version: n.version,
              payload: n.payload,
              producer: { id: cn.slice(colon + 1), namespace: ns },
            });
            for (const s of subs.get(ns) ?? []) sockets.get(s)?.send(frame);
            res.writeHead(202).end();
          } else if (req.method === 'POST' && url === '/services') {
            res.writeHead(200).end();
          } else if (req.method === 'POST' && url.startsWith('/subscriptions/')) {
            JSON.parse(Buffer.concat(chunks).toString('utf8'));
            const target = url.slice('/subscriptions/'.length);
            subs.set(target, (subs.get(target) ?? new Set()).add(cn));
            res.writeHead(201).end();
          } else res.writeHead(404).end();
        } catch {
          res.writeHead(500).end();
        }
      });
    },
  );
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      const cn = cnOf(req.socket as TLSSocket);
      sockets.get(cn)?.close(1012, 'New connection request, closing this connection');
      sockets.set(cn, ws);
      ws.on('close', () => {
        if (sockets.get(cn) === ws) sockets.delete(cn);
      });
    });
  });
  server.listen(c.port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${c.port}`));
}

// ------------------------------------------------------------------------------------------
// The client side: producers over mutual TLS, consumers over WebSocket.

function tlsOf(id: Identity, caPem: string) {
  return { key: id.keyPem, cert: id.certPem, ca: [caPem], servername: 'eaa.openness' };
}

function call(agent: Agent, port: number, method: string, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: { Host: 'eaa.openness', 'Content-Length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** What the consumers of one measurement phase collect. */
interface Phase {
  id: number;
  latencies: number[];
  received: number;
  lastAt: number;
}

/** A payload `{"p":<phase>,"t":<scheduled ms>}`: cheap to find again in the frame without parsing it. */
function payload(phase: number, t: number): string {
  return `{"name":"tick","version":"1","payload":{"p":${phase},"t":${t.toFixed(3)}}}`;
}

function onFrame(text: string, phase: Phase, now: number): void {
  const at = text.indexOf('"payload":{"p":');
  if (at < 0) return;
  const comma = text.indexOf(',', at + 15);
  if (Number(text.slice(at + 15, comma)) !== phase.id) return; // a straggler of an earlier phase
  const end = text.indexOf('}', comma);
  phase.latencies.push(now - Number(text.slice(comma + 5, end)));
  phase.received++;
  phase.lastAt = now;
}

/** A monotonic clock shared by every thread and process on the machine (CLOCK_MONOTONIC), in ms. */
function clock(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

type ProducerCommand =
  | { cmd: 'register' }
  | { cmd: 'one'; ns: string; phase: number }
  | { cmd: 'fixed'; ns: string; phase: number; rate: number; ms: number; http1?: boolean }
  | { cmd: 'max'; ns: string; phase: number; ms: number };

interface ProducerReply {
  sent: number;
  accepted: number;
  failed: number;
  /** Clock when the last request was sent. */
  end: number;
  /** Fixed rate: how late the producer sent, p99 over the run (ms after the scheduled time). */
  lateP99?: number;
}

/**
 * The producers, in a worker thread so that sending and receiving (the consumers, main thread) do
 * not queue behind each other. Each producer holds one HTTP/2 connection (ALPN h2) and multiplexes
 * its requests on it, as an OpenNESS app written in Go does (net/http negotiates h2 by itself).
 */
async function producerWorker(d: { port: number; caPem: string; p1: Identity; p100: Identity }): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const sessions = new Map<string, ClientHttp2Session>();
  for (const [ns, id] of [
    [NS1, d.p1],
    [NS100, d.p100],
  ] as const) {
    const session = connectH2(`https://127.0.0.1:${d.port}`, {
      key: id.keyPem,
      cert: id.certPem,
      ca: [d.caPem],
      servername: 'eaa.openness',
    });
    session.on('error', () => {}); // a request in flight fails with it and is counted there
    await once(session, 'connect');
    sessions.set(ns, session);
  }
  /** One POST; `done` gets the status, or 0 when the stream failed. Callbacks, not promises: it runs 10,000 times a second. */
  const send = (ns: string, path: string, body: string, done: (status: number) => void): void => {
    const stream = (sessions.get(ns) as ClientHttp2Session).request({
      ':method': 'POST',
      ':path': path,
      ':authority': 'eaa.openness',
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    let status = 0;
    stream.on('response', (h) => {
      status = h[':status'] ?? 0;
    });
    stream.on('error', () => {
      status = 0;
    });
    stream.on('close', () => done(status));
    stream.resume();
    stream.end(body);
  };
  // HTTP/1.1 as the known OpenNESS sample apps speak it (a Go http.Transport with its own TLS
  // config stays on HTTP/1.1): SOCKETS keep-alive connections per producer, no pipelining.
  const pools = new Map<string, Pool>();
  for (const [ns, id] of [
    [NS1, d.p1],
    [NS100, d.p100],
  ] as const) {
    pools.set(
      ns,
      new Pool(`https://127.0.0.1:${d.port}`, {
        connections: SOCKETS,
        pipelining: 1,
        connect: { key: id.keyPem, cert: id.certPem, ca: [d.caPem], servername: 'eaa.openness' },
      }),
    );
  }
  const send1 = (ns: string, path: string, body: string, done: (status: number) => void): void => {
    (pools.get(ns) as Pool)
      .request({ path, method: 'POST', headers: { host: 'eaa.openness', 'content-type': 'application/json' }, body })
      .then(
        (res) => res.body.dump().then(() => done(res.statusCode)),
        () => done(0),
      );
  };
  const post = (ns: string, path: string, body: string): Promise<number> =>
    new Promise((resolve, reject) =>
      send(ns, path, body, (st) => (st === 0 ? reject(new Error(`${path}: stream failed`)) : resolve(st))),
    );
  const services = '{"description":"bench producer","notifications":[{"name":"tick","version":"1"}]}';
  port.on('message', async (c: ProducerCommand) => {
    const r: ProducerReply = { sent: 0, accepted: 0, failed: 0, end: 0 };
    const count = (p: Promise<number>, want: number) =>
      p.then(
        (st) => {
          if (st === want) r.accepted++;
          else r.failed++;
        },
        () => {
          r.failed++;
        },
      );
    if (c.cmd === 'register') {
      for (const ns of [NS1, NS100]) await count(post(ns, '/services', services), 200);
      r.sent = 2;
    } else if (c.cmd === 'one') {
      r.sent = 1;
      await count(post(c.ns, '/notifications', payload(c.phase, clock())), 202);
    } else if (c.cmd === 'fixed') {
      // Open loop: notification k is due at t0 + k/rate and carries that time (no coordinated omission).
      const total = Math.round((c.rate * c.ms) / 1000);
      const t0 = clock();
      let inflight = 0;
      // How late each request left, preallocated: the generator's own share of the latency.
      const late = new Float64Array(total);
      // No promise kept per request: thousands alive for the whole run made this thread's own
      // garbage collections (and so its send times) worse than what is measured.
      let allDone: (() => void) | undefined;
      const done = (st: number) => {
        if (st === 202) r.accepted++;
        else r.failed++;
        if (--inflight === 0 && allDone !== undefined) allDone();
      };
      while (r.sent < total) {
        const due = Math.min(total, Math.floor(((clock() - t0) * c.rate) / 1000) + 1);
        while (r.sent < due && inflight < INFLIGHT) {
          const scheduled = t0 + (r.sent * 1000) / c.rate;
          late[r.sent] = clock() - scheduled;
          r.sent++;
          inflight++;
          (c.http1 ? send1 : send)(c.ns, '/notifications', payload(c.phase, scheduled), done);
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      r.end = clock();
      late.sort();
      r.lateP99 = late[Math.min(total - 1, Math.floor(total * 0.99))] ?? 0;
      if (inflight > 0)
        await new Promise<void>((resolve) => {
          allDone = resolve;
        });
    } else {
      const end = clock() + c.ms;
      const loop = async () => {
        while (clock() < end) {
          r.sent++;
          await count(post(c.ns, '/notifications', payload(c.phase, clock())), 202);
        }
      };
      await Promise.all(Array.from({ length: CLOSED_LOOP }, loop));
      r.end = clock();
    }
    port.postMessage(r);
  });
}

/** One connected set-up: 2 producers (a worker), 100 consumers (consumer 0 also subscribed to bench1). */
class Session {
  readonly #worker: Worker;
  readonly #sockets: WebSocket[] = [];
  phase: Phase = { id: 0, latencies: [], received: 0, lastAt: 0 };
  #phaseId = 0;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  #ask(c: ProducerCommand): Promise<ProducerReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`producer worker: no answer to ${c.cmd} in 60 s`)), 60_000);
      this.#worker.once('message', (r: ProducerReply) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.#worker.postMessage(c);
    });
  }

  static async open(
    ep: Endpoints,
    ids: { p1: Identity; p100: Identity; consumers: Identity[] },
    caPem: string,
  ): Promise<Session> {
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { eaaProducer: { port: ep.producer, caPem, p1: ids.p1, p100: ids.p100 } },
    });
    worker.on('error', () => {});
    const s = new Session(worker);
    try {
      const reg = await s.#ask({ cmd: 'register' });
      if (reg.accepted !== 2) throw new Error('POST /services was refused');
      for (const [i, id] of ids.consumers.entries()) {
        const ws = new WebSocket(`wss://127.0.0.1:${ep.consumer}/notifications`, {
          ...tlsOf(id, caPem),
          headers: { Host: id.cn },
          perMessageDeflate: false,
        });
        s.#sockets.push(ws);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('unexpected-response', (_q, res) => reject(new Error(`websocket refused: ${res.statusCode}`)));
          ws.once('error', reject);
        });
        ws.on('message', (data) => onFrame(data.toString(), s.phase, clock()));
        const sub = new Agent({ keepAlive: false, ...tlsOf(id, caPem) });
        for (const ns of i === 0 ? [NS1, NS100] : [NS100]) {
          const st = await call(sub, ep.consumer, 'POST', `/subscriptions/${ns}`, EVENT);
          if (st !== 201) throw new Error(`POST /subscriptions/${ns} answered ${st}`);
        }
        sub.destroy();
      }
      // Subscriptions may need to replicate (across nodes): publish until every consumer hears.
      for (const [ns, want] of [
        [NS1, 1],
        [NS100, CONSUMERS],
      ] as const) {
        await waitFor(
          `${ns}: ${want} consumers receiving`,
          async () => {
            const ph = s.newPhase();
            await s.#ask({ cmd: 'one', ns, phase: ph.id });
            await new Promise((r) => setTimeout(r, 100));
            return ph.received >= want;
          },
          { timeoutMs: 20_000, intervalMs: 100 },
        );
      }
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  newPhase(): Phase {
    this.phase = { id: ++this.#phaseId, latencies: [], received: 0, lastAt: 0 };
    return this.phase;
  }

  /** Open loop at `rate`/s for `ms`: delivered notifications/s, latency percentiles, lost frames. */
  async fixedRate(ns: string, rate: number, ms: number, consumers: number, http1 = false): Promise<Record<string, number>> {
    const ph = this.newPhase();
    const t0 = clock();
    const r = await this.#ask({ cmd: 'fixed', ns, phase: ph.id, rate, ms, http1 });
    await this.#drain(ph, r.accepted * consumers);
    if (r.failed > r.sent * 0.01) throw new Error(`${r.failed} of ${r.sent} notifications refused`);
    const seconds = (Math.max(ph.lastAt, t0 + ms) - t0) / 1000;
    return {
      rate: ph.received / consumers / seconds,
      p50: ph.latencies.length > 0 ? median(ph.latencies) : Number.NaN,
      p99: percentile(ph.latencies, 99),
      late99: r.lateP99 ?? Number.NaN,
      lost: r.accepted * consumers - ph.received,
    };
  }

  /** Closed loop: CLOSED_LOOP requests always outstanding for `ms`; delivered notifications/s. */
  async maxRate(ns: string, ms: number, consumers: number): Promise<number> {
    const ph = this.newPhase();
    const t0 = clock();
    const r = await this.#ask({ cmd: 'max', ns, phase: ph.id, ms });
    await this.#drain(ph, r.accepted * consumers);
    return ph.received / consumers / ((Math.max(ph.lastAt, r.end) - t0) / 1000);
  }

  /** Waits (at most 5 s) until every accepted notification has reached every consumer. */
  async #drain(ph: Phase, expected: number): Promise<void> {
    const deadline = clock() + 5000;
    while (clock() < deadline && ph.received < expected) await new Promise((r) => setTimeout(r, 20));
  }

  async close(): Promise<void> {
    for (const ws of this.#sockets) ws.terminate();
    await this.#worker.terminate();
  }
}

// ------------------------------------------------------------------------------------------

export const eaaBenchmark: Benchmark = {
  name: 'eaa',
  title: 'EAA: notification fan-out, meshlet vs a bare ws broker',
  debian: [],
  coredns: false,
  unavailable: (repo) => (existsSync(join(repo, 'src', 'eaa', 'module.ts')) ? undefined : 'meshlet has no eaa module yet'),
  async plan(ctx: BenchContext): Promise<Plan> {
    const dir = ctx.rawDir;
    const ms = ctx.quick ? 1500 : 2500;
    const node = join(ctx.repo, 'node_modules', '.bin', 'node');

    // One CA for everything, as the nodes of one cluster share it; app certificates are issued
    // from it directly (what POST /auth would return), so 102 apps need no openssl round trips.
    const { ca, keyPem: caKey } = await createCa('meshlet bench EAA CA');
    const caFile = join(dir, 'ca.pem');
    const caKeyFile = join(dir, 'ca-key.pem');
    writeFileSync(caFile, ca.certPem);
    writeFileSync(caKeyFile, caKey, { mode: 0o600 });
    const issue = async (cn: string): Promise<Identity> => ({ cn, ...(await issueCertificate(ca, { commonName: cn })) });
    const ids = {
      p1: await issue(`${NS1}:producer`),
      p100: await issue(`${NS100}:producer`),
      consumers: await Promise.all(Array.from({ length: CONSUMERS }, (_, i) => issue(`bench:consumer-${i}`))),
    };
    const registry = join(dir, 'registry.json');
    writeFileSync(registry, JSON.stringify({ nodes: [], services: [] }));

    const startAgent = async (name: string, ports: { api: number; auth: number; peer: number }, peers: string[]) => {
      const config = join(dir, `${name}.yaml`);
      writeFileSync(
        config,
        JSON.stringify({
          node: { name },
          source: { kind: 'file', file: { path: registry } },
          dns: { enabled: false },
          proxy: { enabled: false },
          eaa: {
            enabled: true,
            address: '127.0.0.1',
            port: ports.api,
            authPort: ports.auth,
            peerPort: ports.peer,
            ca: { certFile: caFile, keyFile: caKeyFile, generate: false },
            stateFile: '',
            maxNotificationsPerSecond: 0,
            peers,
            syncIntervalMs: 1000,
          },
        }),
      );
      const m = await startMeshlet({ repo: ctx.repo, name, config, sets: [], log: join(dir, `${name}.log`) });
      await waitFor(`${name} EAA port`, () => tcpOpen(ports.api), { timeoutMs: 10_000 });
      return { m, command: `${m.service.command}  # ${config}: ${readFileSync(config, 'utf8')}` };
    };
    const ports = async () => ({ api: await freePort(), auth: await freePort(), peer: await freePort() });

    /** One round: both fan-outs, fixed rate then flat out. */
    const measureOn = async (session: Session, pids: number[]): Promise<Record<string, number>> => {
      const trees = pids.flatMap((p) => processTree(p));
      const cpu0 = cpuSeconds(trees);
      const t0 = performance.now();
      const c1 = await session.fixedRate(NS1, RATE1, ms, 1);
      const cores = (cpuSeconds(trees) - cpu0) / ((performance.now() - t0) / 1000);
      const c1low = await session.fixedRate(NS1, RATE1 / 10, ms, 1);
      const c1h1 = await session.fixedRate(NS1, RATE1, ms, 1, true);
      const c1max = await session.maxRate(NS1, ms, 1);
      const c100 = await session.fixedRate(NS100, RATE100, ms, CONSUMERS);
      const c100max = await session.maxRate(NS100, ms, CONSUMERS);
      return {
        'c1.rate': c1.rate as number,
        'c1.p50': c1.p50 as number,
        'c1.p99': c1.p99 as number,
        'c1.late99': c1.late99 as number,
        'c1h1.p50': c1h1.p50 as number,
        'c1h1.p99': c1h1.p99 as number,
        'c1.max': c1max,
        'c1low.p50': c1low.p50 as number,
        'c1low.p99': c1low.p99 as number,
        'c1.cpu': cores,
        'c100.rate': c100.rate as number,
        'c100.p50': c100.p50 as number,
        'c100.p99': c100.p99 as number,
        'c100.max': c100max,
        lost: (c1.lost as number) + (c1low.lost as number) + (c1h1.lost as number) + (c100.lost as number),
        rss: pids.reduce((s, p) => s + memoryOf(p).rssMiB, 0),
      };
    };
    const instance = async (ep: Endpoints, commands: string[], stop: () => Promise<void>): Promise<Instance> => {
      let session: Session;
      try {
        session = await Session.open(ep, ids, ca.certPem);
      } catch (err) {
        await stop();
        throw err;
      }
      return {
        commands,
        measure: () => measureOn(session, ep.pids),
        async stop() {
          await session.close();
          await stop();
        },
      };
    };

    const contenders: ContenderDef[] = [
      {
        name: 'broker',
        label: 'bare ws broker (baseline)',
        async start() {
          const port = await freePort();
          const server = await issueCertificate(ca, { commonName: 'eaa.openness', dnsNames: ['eaa.openness'] });
          const config = join(dir, 'baseline.json');
          writeFileSync(config, JSON.stringify({ port, keyPem: server.keyPem, certPem: server.certPem, caPem: ca.certPem }));
          const s = new Service('ws-broker', node, [fileURLToPath(import.meta.url), '--baseline', config], {
            log: join(dir, 'baseline.log'),
            cwd: ctx.repo,
          });
          await waitFor('ws broker', () => tcpOpen(port), { timeoutMs: 10_000, alive: () => s.assertAlive() });
          return instance({ producer: port, consumer: port, pids: [s.pid] }, [s.command], () => s.stop());
        },
      },
      {
        name: 'local',
        label: 'meshlet, same node',
        async start() {
          const p = await ports();
          const a = await startAgent('node-a', p, []);
          return instance({ producer: p.api, consumer: p.api, pids: [a.m.service.pid] }, [a.command], () => a.m.service.stop());
        },
      },
      {
        name: 'cross',
        label: 'meshlet, across two agents',
        async start() {
          const [pa, pb] = [await ports(), await ports()];
          const peers = [`node-x=https://127.0.0.1:${pa.peer}`, `node-y=https://127.0.0.1:${pb.peer}`];
          const a = await startAgent('node-x', pa, peers);
          let b: Awaited<ReturnType<typeof startAgent>>;
          try {
            b = await startAgent('node-y', pb, peers);
          } catch (err) {
            await a.m.service.stop();
            throw err;
          }
          return instance(
            { producer: pa.api, consumer: pb.api, pids: [a.m.service.pid, b.m.service.pid] },
            [a.command, b.command],
            async () => {
              await b.m.service.stop();
              await a.m.service.stop();
            },
          );
        },
      },
    ];

    return {
      description:
        `Producers and consumers are apps with certificates from the EAA CA, using mutual TLS (ServerName eaa.openness) as OpenNESS apps do; ${CONSUMERS} consumers hold WebSockets. ` +
        `"1 consumer": producer ${NS1}:producer with one subscriber; "100 consumers": producer ${NS100}:producer with ${CONSUMERS} subscribers (namespace subscriptions). ` +
        `Each round, for each fan-out: an open-loop run at a fixed rate for ${ms / 1000} s (1 consumer: ${RATE1.toLocaleString('en-US')} notifications/s, the target, and ${(RATE1 / 10).toLocaleString('en-US')}/s, below saturation; 100 consumers: ${RATE100}/s, i.e. ${(RATE100 * CONSUMERS).toLocaleString('en-US')} frames/s), ` +
        `each POST /notifications timed from its scheduled send time to its arrival on each consumer's socket (p50/p99 over every delivery; "rate" is what arrived per second); ` +
        `then a closed-loop run (${CLOSED_LOOP} requests always outstanding, ${ms / 1000} s): "max" notifications/s delivered to every consumer. ` +
        `The client is this Node process on the same 2 cores: the producers in a worker thread, the consumers (ws) on the main thread; times come from the monotonic clock both share. ` +
        `Producers speak HTTP/2 (node:http2: one connection per producer, negotiated by ALPN, requests multiplexed on it, at most ${INFLIGHT} outstanding), as a Go client with HTTP/2 enabled does with the Go EAA, which offers h2; both servers serve h2 and HTTP/1.1 on one TLS port. ` +
        `The known OpenNESS sample apps stay on HTTP/1.1 (a Go Transport with its own TLS config does not enable h2), so the 10k/s run is repeated with HTTP/1.1 producers ("HTTP/1.1": undici, ${SOCKETS} keep-alive connections, no pipelining). ` +
        '"producer late p99" is how late the load generator itself sent at 10k/s (p99 of actual minus scheduled send time): that share of the latency is the client\'s, stalled on the same 2 cores, not the server\'s. ' +
        '"CPU" is the server processes\' CPU during the 1-consumer fixed-rate run; "RSS" the server processes after the round (both agents across nodes).',
      metrics: [
        { key: 'c1.rate', label: '1 consumer, at 10k/s offered', unit: 'notif/s', better: 'higher', chart: 'throughput' },
        { key: 'c1.max', label: '1 consumer, max', unit: 'notif/s', better: 'higher', chart: 'throughput' },
        { key: 'c100.rate', label: '100 consumers, at 100/s offered', unit: 'notif/s', better: 'higher', chart: 'throughput' },
        { key: 'c100.max', label: '100 consumers, max', unit: 'notif/s', better: 'higher', chart: 'throughput' },
        { key: 'c1.p50', label: '1 consumer p50 at 10k/s', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c1.p99', label: '1 consumer p99 at 10k/s', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        {
          key: 'c1.late99',
          label: 'producer late p99 at 10k/s',
          unit: 'ms',
          better: 'lower',
          chart: 'latency',
          digits: 2,
        },
        { key: 'c1h1.p50', label: '1 consumer p50 at 10k/s, HTTP/1.1', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c1h1.p99', label: '1 consumer p99 at 10k/s, HTTP/1.1', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c1low.p50', label: '1 consumer p50 at 1k/s', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c1low.p99', label: '1 consumer p99 at 1k/s', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c100.p50', label: '100 consumers p50', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c100.p99', label: '100 consumers p99', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'c1.cpu', label: 'CPU at 10k/s', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
        { key: 'lost', label: 'not delivered', unit: 'frames', better: 'lower', chart: 'time' },
        { key: 'rss', label: 'RSS after the round', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
      ],
      contenders,
      ratios: [
        ['c1.rate', 'local', 'broker'],
        ['c1.max', 'local', 'broker'],
        ['c1.p99', 'local', 'broker'],
        ['c100.max', 'local', 'broker'],
        ['c100.p99', 'local', 'broker'],
        ['c1low.p99', 'local', 'broker'],
        ['c1h1.p99', 'local', 'broker'],
        ['c1.max', 'cross', 'local'],
        ['c1low.p99', 'cross', 'local'],
        ['c1.p99', 'cross', 'local'],
        ['c100.max', 'cross', 'local'],
      ],
      loadCommands: [
        'POST https://127.0.0.1:<port>/notifications {"name":"tick","version":"1","payload":{"p":<phase>,"t":<ms>}} (HTTP/2 over mutual TLS, one connection per producer; or HTTP/1.1, undici Pool of 32; bench/eaa.ts producerWorker)',
        'wss://127.0.0.1:<port>/notifications with Host: <consumer CN> (ws, no compression)',
        `baseline: ${commandLine(node, ['bench/eaa.ts', '--baseline', '<config.json>'])}`,
      ],
      versions: { meshlet: meshletVersion(ctx.repo), node: process.version, ws: wsVersion(ctx.repo) },
      notes: [
        'Target (issue 7): 10,000 notifications/s fan-out to one consumer with p99 under 5 ms on the same node.',
        'There is no live OpenNESS EAA peer here (it is a Go service with its own cluster setup), so the direct baseline is a bare `ws` broker with the same API subset and frame over the same mutual TLS: what Node, TLS and `ws` cost before any EAA logic.',
        "The agents run with eaa.maxNotificationsPerSecond=0 (the default 10,000/s per-producer limit would cut the closed-loop runs) and stateFile '' (memory only).",
      ],
      rounds: ctx.quick ? 2 : 4,
      warmup: 1,
      teardown: async () => {},
    };
  },
};

function wsVersion(repo: string): string {
  const pkg = JSON.parse(readFileSync(join(repo, 'node_modules', 'ws', 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--baseline') {
  await baselineServer(process.argv[3] as string);
}
const producerData = (workerData as { eaaProducer?: Parameters<typeof producerWorker>[0] } | null)?.eaaProducer;
if (!isMainThread && producerData !== undefined) await producerWorker(producerData);
