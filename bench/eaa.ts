import { once } from 'node:events';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type ClientHttp2Session, connect as connectH2, createSecureServer } from 'node:http2';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { WebSocket, WebSocketServer } from 'ws';
import { createCa, issueCertificate } from '../src/eaa/pki.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { meshletVersion, startMeshlet } from './lib/meshlet.ts';
import { ensureVegeta } from './lib/peers.ts';
import { commandLine, cpuSeconds, freePort, memoryOf, processTree, run, runOk, Service, tcpOpen, waitFor } from './lib/proc.ts';
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
 * The fixed-rate load comes from vegeta (a compiled open-loop generator, its own process): notification
 * k carries k in its payload and is due at t0 + k/rate by vegeta's constant pacer, so its latency is
 * its arrival on a consumer socket (this process, `ws`) minus that *scheduled* time (open loop, no
 * coordinated omission), both on the wall clock. Registration, warm-up pings and the closed-loop
 * "max" runs use node:http2 in a worker thread of this process.
 */

const CONSUMERS = 100;
const NS1 = 'bench1';
const NS100 = 'bench100';
const RATE1 = 10_000;
const RATE100 = 100;
/** HTTP/1.1 producers: at most this many keep-alive connections (vegeta -max-connections). */
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
        // The path without the query string, as meshlet and a Go mux route (vegeta's targets carry ?k=).
        const raw = req.url ?? '';
        const q = raw.indexOf('?');
        const url = q < 0 ? raw : raw.slice(0, q);
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
  /** Worker-driven phases (payload "t"): arrival minus send time, ms. */
  latencies: number[];
  /** vegeta-driven phases (payload "k"): the index of each delivery and its arrival (wall clock, ms). */
  ks: number[];
  arrivals: number[];
  received: number;
  /** Last arrival: clock() for "t" payloads, wall() for "k" payloads. */
  lastAt: number;
}

/** A payload `{"p":<phase>,"t":<send time, clock() ms>}`: cheap to find again in the frame without parsing it. */
function payload(phase: number, t: number): string {
  return `{"name":"tick","version":"1","payload":{"p":${phase},"t":${t.toFixed(3)}}}`;
}

/** The body of notification k of a vegeta phase: `{"p":<phase>,"k":<k>}`. */
function indexedPayload(phase: number, k: number): string {
  return `{"name":"tick","version":"1","payload":{"p":${phase},"k":${k}}}`;
}

function onFrame(text: string, phase: Phase): void {
  const at = text.indexOf('"payload":{"p":');
  if (at < 0) return;
  const comma = text.indexOf(',', at + 15);
  if (Number(text.slice(at + 15, comma)) !== phase.id) return; // a straggler of an earlier phase
  const end = text.indexOf('}', comma);
  const value = Number(text.slice(comma + 5, end));
  if (text.charCodeAt(comma + 2) === 107 /* k */) {
    const now = wall();
    phase.ks.push(value);
    phase.arrivals.push(now);
    phase.lastAt = now;
  } else {
    const now = clock();
    phase.latencies.push(now - value);
    phase.lastAt = now;
  }
  phase.received++;
}

/** A monotonic clock shared by every thread and process on the machine (CLOCK_MONOTONIC), in ms. */
function clock(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Wall clock with sub-millisecond precision, ms since the epoch: what vegeta's result timestamps are on. */
function wall(): number {
  return performance.timeOrigin + performance.now();
}

type ProducerCommand =
  | { cmd: 'register' }
  | { cmd: 'one'; ns: string; phase: number }
  | { cmd: 'max'; ns: string; phase: number; ms: number };

interface ProducerReply {
  sent: number;
  accepted: number;
  failed: number;
  /** Clock when the last request was sent. */
  end: number;
}

/**
 * The producers for registration, warm-up pings and the closed-loop runs, in a worker thread so
 * that sending and receiving (the consumers, main thread) do not queue behind each other. Each
 * producer holds one HTTP/2 connection (ALPN h2) and multiplexes its requests on it, as an
 * OpenNESS app written in Go does (net/http negotiates h2 by itself). The fixed-rate runs are vegeta's.
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

// ------------------------------------------------------------------------------------------
// The fixed-rate producer: vegeta, its own process.

/** What every vegeta run needs: the binary, where its files go, the PEM files of the producers. */
interface Vegeta {
  bin: string;
  dir: string;
  caFile: string;
  /** Producer certificate and key files, by namespace. */
  producers: Record<string, { cert: string; key: string }>;
}

/**
 * Each vegeta run starts with fresh connections (TLS handshakes, a new HTTP/2 session): the first
 * few hundred ms queue up behind that start on 2 busy cores and drain slowly. So every run first
 * sends at the same rate for this long, and only what is due after it counts (wrk2 does the same
 * with its calibration period); the consumers' counts (lost frames) cover the whole run.
 */
const WARMUP_MS = 1000;

/** One fixed-rate run: where, how fast, for how long (after WARMUP_MS), over which protocol. */
interface Attack {
  ns: string;
  port: number | string;
  rate: number;
  ms: number;
  http1: boolean;
}

const attackName = (a: Attack) => `${a.ns}-${a.rate}${a.http1 ? '-h1' : ''}`;

/**
 * vegeta's environment: no garbage collection during a run (it is short: ~10 KiB per request, the
 * heap stays a few hundred MiB, and GOMEMLIMIT bounds it anyway). With the default GOGC its
 * collections, on the 2 cores the servers use too, made it send several ms late at 10k/s.
 */
const VEGETA_ENV = ['GOGC=off', 'GOMEMLIMIT=1GiB'];

/**
 * The exact `vegeta attack` arguments of one run (targets and results files named after it),
 * after `env VEGETA_ENV vegeta`. The targets are read (and decoded) before the first tick, not
 * lazily during the run, and served in file order; response bodies (empty) are not kept.
 */
function attackArgs(v: Vegeta, a: Attack): string[] {
  const id = v.producers[a.ns] as { cert: string; key: string };
  const name = attackName(a);
  return [
    'attack',
    '-format=json',
    `-targets=${join(v.dir, `targets-${name}.json`)}`,
    `-rate=${a.rate}/s`,
    `-duration=${WARMUP_MS + a.ms}ms`,
    '-timeout=10s',
    '-max-body=0',
    `-cert=${id.cert}`,
    `-key=${id.key}`,
    `-root-certs=${v.caFile}`,
    `-connect-to=eaa.openness:${a.port}:127.0.0.1:${a.port}`,
    ...(a.http1 ? ['-http2=false', '-keepalive', `-max-connections=${SOCKETS}`] : ['-http2']),
    `-output=${join(v.dir, `results-${name}.bin`)}`,
  ];
}

function encodeArgs(v: Vegeta, a: Attack): string[] {
  const name = attackName(a);
  return ['encode', '--to=csv', `--output=${join(v.dir, `results-${name}.csv`)}`, join(v.dir, `results-${name}.bin`)];
}

/**
 * Writes the targets of one run, one line per notification: target k carries k in its body (what
 * the consumer sees) and in its URL's query (what vegeta's results record, next to their sequence
 * number), which pairs each notification with its hit exactly. A few more lines than the run
 * needs, so that the pacer's last tick never finds the file empty.
 */
function writeTargets(v: Vegeta, a: Attack, phase: number): { total: number; lines: number } {
  const total = Math.round((a.rate * (WARMUP_MS + a.ms)) / 1000);
  const url = `https://eaa.openness:${a.port}/notifications`;
  const lines: string[] = [];
  for (let k = 0; k < total + Math.ceil(a.rate / 100) + 10; k++) {
    const body = Buffer.from(indexedPayload(phase, k)).toString('base64');
    lines.push(`{"method":"POST","url":"${url}?k=${k}","header":{"Content-Type":["application/json"]},"body":"${body}"}`);
  }
  writeFileSync(join(v.dir, `targets-${attackName(a)}.json`), `${lines.join('\n')}\n`);
  return { total, lines: lines.length };
}

/** One vegeta result: sequence number, request timestamp (ns since the epoch), status, error, URL. */
interface Hit {
  seq: number;
  ts: bigint;
  code: number;
  error: string;
  url: string;
}

/**
 * The records of `vegeta encode --to=csv`: timestamp (ns), code, latency, bytes out, bytes in,
 * error, body, attack, seq, method, url, headers. Go's csv writer quotes a field only when it
 * holds a comma, quote or line break (an error message may).
 */
export function parseVegetaCsv(text: string): Hit[] {
  const hits: Hit[] = [];
  const token = /("(?:[^"]|"")*"|[^,\r\n"]*)(,|\r?\n|$)/y;
  let fields: string[] = [];
  token.lastIndex = 0;
  while (token.lastIndex < text.length) {
    const at = token.lastIndex;
    const m = token.exec(text);
    if (m === null) throw new Error(`vegeta csv: cannot read at offset ${at}`);
    const f = m[1] as string;
    fields.push(f.startsWith('"') ? f.slice(1, -1).replaceAll('""', '"') : f);
    if (m[2] === ',') continue;
    if (fields.length !== 12) throw new Error(`vegeta csv: a record of ${fields.length} fields at offset ${at}`);
    hits.push({
      ts: BigInt(fields[0] as string),
      code: Number(fields[1]),
      error: fields[5] as string,
      seq: Number(fields[8]),
      url: fields[10] as string,
    });
    fields = [];
    if (m[2] === '') break;
  }
  return hits;
}

/** What one vegeta run did, read from its results. */
interface AttackResult {
  /** Notifications the run was meant to send (rate × duration). */
  total: number;
  sent: number;
  accepted: number;
  failed: number;
  /** Scheduled send time of hit 0, wall clock, ms since the epoch. */
  t0: number;
  /** Per notification k: when it was due (t0 + seq/rate of the hit that carried it) and when it left, wall ms; NaN if not sent. */
  due: Float64Array;
  sentAt: Float64Array;
  /** How late each hit left (ms after its scheduled time). */
  late: number[];
  /** How long the vegeta process ran, s. */
  seconds: number;
}

/**
 * One producer's open-loop run with vegeta, then its results.
 *
 * vegeta's constant pacer releases tick n at start + (n + 1)/rate; each hit takes its sequence
 * number and its `timestamp` (wall clock, ns) in one critical section before it reads its target,
 * so hit n (by sequence number) cannot start before tick n, due at t0 + n/rate with t0 =
 * start + 1/rate. t0 is the minimum over n of (timestamp_n − n/rate): exact as soon as one hit
 * left on time. Hit n's lateness is timestamp_n − (t0 + n/rate). The targets are handed out in
 * file order, but to whichever worker gets there first, so target k is not always hit k (a few
 * swap with a neighbour at 10k/s; about 1 % with -lazy): each result's URL (?k=) says which k it carried.
 */
async function attack(v: Vegeta, a: Attack, phase: number): Promise<AttackResult> {
  const { total, lines } = writeTargets(v, a, phase);
  const args = attackArgs(v, a);
  const t = performance.now();
  const r = await run('env', [...VEGETA_ENV, v.bin, ...args], { timeoutMs: WARMUP_MS + a.ms + 30_000 });
  const seconds = (performance.now() - t) / 1000;
  if (r.timedOut || r.code !== 0) {
    throw new Error(
      `${commandLine(v.bin, args)} ${r.timedOut ? 'timed out' : `exited ${r.code}`}: ${r.stderr.trim().slice(-800)}`,
    );
  }
  const enc = encodeArgs(v, a);
  await runOk(v.bin, enc, { timeoutMs: 60_000 });
  const hits = parseVegetaCsv(readFileSync(enc[2]?.slice('--output='.length) as string, 'utf8'));
  if (hits.length === 0) throw new Error(`${commandLine(v.bin, args)}: no results`);
  // The static targeter wraps around at the end of the file: then k would not be unique.
  if (hits.length > lines) throw new Error(`${commandLine(v.bin, args)}: ${hits.length} requests for ${lines} targets`);
  const perNs = 1e9 / a.rate;
  let base = (hits[0] as Hit).ts;
  for (const h of hits) if (h.ts < base) base = h.ts;
  // base is ns since the epoch: its µs are exact in a double; everything else is ns after base.
  const baseMs = Number(base / 1000n) / 1000 + Number(base % 1000n) / 1e6;
  let t0 = Number.POSITIVE_INFINITY;
  for (const h of hits) t0 = Math.min(t0, Number(h.ts - base) - h.seq * perNs);
  // How late each hit due after the warm-up left.
  const late = hits.filter((h) => h.seq * perNs >= WARMUP_MS * 1e6).map((h) => (Number(h.ts - base) - h.seq * perNs - t0) / 1e6);
  const size = hits.reduce((n, h) => Math.max(n, h.seq + 1), 0) + 1;
  const due = new Float64Array(size).fill(Number.NaN);
  const sentAt = new Float64Array(size).fill(Number.NaN);
  let accepted = 0;
  const errors = new Map<string, number>();
  for (const h of hits) {
    const k = Number(h.url.slice(h.url.lastIndexOf('?k=') + 3));
    if (!Number.isInteger(k) || k < 0 || k >= size) throw new Error(`vegeta result with URL ${h.url}: no k`);
    due[k] = baseMs + (t0 + h.seq * perNs) / 1e6;
    sentAt[k] = baseMs + Number(h.ts - base) / 1e6;
    if (h.code === 202) accepted++;
    else {
      const why = h.error || String(h.code);
      errors.set(why, (errors.get(why) ?? 0) + 1);
    }
  }
  const swapped = hits.filter((h) => !h.url.endsWith(`?k=${h.seq}`)).length;
  appendFileSync(
    join(v.dir, 'vegeta.log'),
    `# ${new Date().toISOString()} ${commandLine(v.bin, args)}\n` +
      `sent ${hits.length} (of ${total} scheduled), accepted ${accepted}, target k ≠ seq for ${swapped}, late p99 ${percentile(late, 99).toFixed(3)} ms\n` +
      [...errors].map(([e, n]) => `${n}× ${e}\n`).join(''),
  );
  return {
    total,
    sent: hits.length,
    accepted,
    failed: hits.length - accepted,
    t0: baseMs + t0 / 1e6,
    due,
    sentAt,
    late,
    seconds,
  };
}

/**
 * One connected set-up: 2 producers (a worker for registration, pings and the closed-loop runs;
 * vegeta for the fixed-rate runs), 100 consumers (consumer 0 also subscribed to bench1).
 */
class Session {
  readonly #worker: Worker;
  readonly #ep: Endpoints;
  readonly #vegeta: Vegeta;
  readonly #sockets: WebSocket[] = [];
  phase: Phase = { id: 0, latencies: [], ks: [], arrivals: [], received: 0, lastAt: 0 };
  #phaseId = 0;

  private constructor(worker: Worker, ep: Endpoints, vegeta: Vegeta) {
    this.#worker = worker;
    this.#ep = ep;
    this.#vegeta = vegeta;
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
    vegeta: Vegeta,
  ): Promise<Session> {
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { eaaProducer: { port: ep.producer, caPem, p1: ids.p1, p100: ids.p100 } },
    });
    worker.on('error', () => {});
    const s = new Session(worker, ep, vegeta);
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
        ws.on('message', (data) => onFrame(data.toString(), s.phase));
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
    this.phase = { id: ++this.#phaseId, latencies: [], ks: [], arrivals: [], received: 0, lastAt: 0 };
    return this.phase;
  }

  /**
   * Open loop at `rate`/s for WARMUP_MS + `ms` with vegeta; over the `ms` after the warm-up:
   * delivered notifications/s, latency percentiles (arrival minus scheduled send time), how late
   * vegeta sent (p99); over the whole run: lost frames, the server processes' CPU (cores).
   */
  async fixedRate(ns: string, rate: number, ms: number, consumers: number, http1 = false): Promise<Record<string, number>> {
    const ph = this.newPhase();
    const trees = this.#ep.pids.flatMap((p) => processTree(p));
    const cpu0 = cpuSeconds(trees);
    const a: Attack = { ns, port: this.#ep.producer, rate, ms, http1 };
    const r = await attack(this.#vegeta, a, ph.id);
    const cores = (cpuSeconds(trees) - cpu0) / r.seconds;
    await this.#drain(ph, r.accepted * consumers);
    if (r.failed > r.sent * 0.01)
      throw new Error(`${r.failed} of ${r.sent} notifications refused (see ${this.#vegeta.dir}/vegeta.log)`);
    const all = ph.ks.map((k, i) => (ph.arrivals[i] as number) - (r.due[k] ?? Number.NaN));
    if (all.some(Number.isNaN)) throw new Error(`${attackName(a)}: a notification arrived that vegeta did not send`);
    // What counts: the deliveries of notifications due after the warm-up.
    const from = r.t0 + WARMUP_MS;
    const latencies = all.filter((_, i) => (r.due[ph.ks[i] as number] as number) >= from);
    const counted = latencies.length;
    // A notification cannot arrive before it left: if one does, vegeta's clock and this one disagree.
    const early = ph.ks.filter((k, i) => (ph.arrivals[i] as number) < (r.sentAt[k] as number)).length;
    if (early > 0) {
      appendFileSync(
        join(this.#vegeta.dir, 'vegeta.log'),
        `# ${attackName(a)} phase ${ph.id}: ${early} of ${all.length} deliveries before vegeta sent them (min latency ${all.reduce((m, l) => Math.min(m, l), 0).toFixed(3)} ms)\n`,
      );
      if (early > all.length * 0.001) throw new Error(`${early} notifications arrived before they were due: clock mismatch`);
    }
    // Every delivery, for a look at where the tail comes from (the last run of each kind is kept).
    writeFileSync(
      join(this.#vegeta.dir, `deliveries-${attackName(a)}.csv`),
      `k,due_ms,sent_ms,arrived_ms\n${ph.ks.map((k, i) => `${k},${((r.due[k] as number) - r.t0).toFixed(3)},${((r.sentAt[k] as number) - r.t0).toFixed(3)},${((ph.arrivals[i] as number) - r.t0).toFixed(3)}`).join('\n')}\n`,
    );
    const seconds = (Math.max(ph.lastAt, from + ms) - from) / 1000;
    return {
      rate: counted / consumers / seconds,
      p50: latencies.length > 0 ? median(latencies) : Number.NaN,
      p99: percentile(latencies, 99),
      late99: percentile(r.late, 99),
      lost: r.accepted * consumers - ph.received,
      cores,
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
    const vegetaBin = await ensureVegeta(ctx.repo, ctx.log);
    const vegetaVersion = /Version: v?(\S+)/.exec(await runOk(vegetaBin, ['-version'], { timeoutMs: 10_000 }))?.[1] ?? 'unknown';

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
    // The producers' identities as PEM files, for vegeta's -cert/-key.
    const producers: Vegeta['producers'] = {};
    for (const [ns, id] of [
      [NS1, ids.p1],
      [NS100, ids.p100],
    ] as const) {
      producers[ns] = { cert: join(dir, `producer-${ns}.pem`), key: join(dir, `producer-${ns}-key.pem`) };
      writeFileSync(producers[ns].cert, id.certPem);
      writeFileSync(producers[ns].key, id.keyPem, { mode: 0o600 });
    }
    const vegeta: Vegeta = { bin: vegetaBin, dir, caFile, producers };
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
      const c1 = await session.fixedRate(NS1, RATE1, ms, 1);
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
        'c1h1.late99': c1h1.late99 as number,
        'c1.max': c1max,
        'c1low.p50': c1low.p50 as number,
        'c1low.p99': c1low.p99 as number,
        'c1.cpu': c1.cores as number,
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
        session = await Session.open(ep, ids, ca.certPem, vegeta);
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

    /** The exact command line of one vegeta run, with the repo's path left out. */
    const vegetaLine = (label: string, a: Attack) =>
      `${label}: ${commandLine('env', [...VEGETA_ENV, 'vegeta', ...attackArgs(vegeta, a)]).replaceAll(`${ctx.repo}/`, '')}`;

    return {
      description:
        `Producers and consumers are apps with certificates from the EAA CA, using mutual TLS (ServerName eaa.openness) as OpenNESS apps do; ${CONSUMERS} consumers hold WebSockets. ` +
        `"1 consumer": producer ${NS1}:producer with one subscriber; "100 consumers": producer ${NS100}:producer with ${CONSUMERS} subscribers (namespace subscriptions). ` +
        `Each round, for each fan-out: an open-loop run at a fixed rate for ${ms / 1000} s after a ${WARMUP_MS / 1000} s warm-up (1 consumer: ${RATE1.toLocaleString('en-US')} notifications/s, the target, and ${(RATE1 / 10).toLocaleString('en-US')}/s, below saturation; 100 consumers: ${RATE100}/s, i.e. ${(RATE100 * CONSUMERS).toLocaleString('en-US')} frames/s), ` +
        `each POST /notifications timed from its scheduled send time to its arrival on each consumer's socket (p50/p99 over every delivery; "rate" is what arrived per second); ` +
        `then a closed-loop run (${CLOSED_LOOP} requests always outstanding, ${ms / 1000} s): "max" notifications/s delivered to every consumer. ` +
        `The fixed-rate runs are driven by vegeta ${vegetaVersion} (Go, its own process, on the same 2 cores, GOGC=off for the run; \`vegeta attack\` with its constant pacer, one JSON target per notification, decoded before the run and served in order; notification k carries k in its payload and in its URL's query, which both servers ignore), mutual TLS with the producer's certificate and ServerName eaa.openness. ` +
        `Every vegeta run opens fresh connections, so it first sends at the same rate for ${WARMUP_MS / 1000} s, which is not counted (like wrk2's calibration period; "lost" covers it too). ` +
        `vegeta's pacer makes its n-th request due at t0 + n/rate, and its results give each request's sequence number n, its timestamp (wall clock, ns) and its URL, hence which notification k it carried; a notification's latency is its arrival on a consumer's socket (this Node process, \`ws\`, wall clock) minus the time its request was due. ` +
        `Producers speak HTTP/2 (\`-http2\`: Go's net/http, one connection negotiated by ALPN, requests multiplexed on it), as a Go client with HTTP/2 enabled does with the Go EAA, which offers h2; both servers serve h2 and HTTP/1.1 on one TLS port. ` +
        `The known OpenNESS sample apps stay on HTTP/1.1 (a Go Transport with its own TLS config does not enable h2), so the 10k/s run is repeated with HTTP/1.1 producers ("HTTP/1.1": \`-http2=false\`, keep-alive, at most ${SOCKETS} connections). ` +
        `The closed-loop runs, registration and warm-up pings use node:http2 from a worker thread of the bench process. ` +
        '"producer late p99" is how late vegeta itself sent at 10k/s (p99 of its request timestamp minus the scheduled time, matched by its sequence number): that share of the latency is the client\'s, not the server\'s. ' +
        '"CPU" is the server processes\' CPU while vegeta ran the 1-consumer 10k/s run; "RSS" the server processes after the round (both agents across nodes).',
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
        {
          key: 'c1h1.late99',
          label: 'producer late p99 at 10k/s, HTTP/1.1',
          unit: 'ms',
          better: 'lower',
          chart: 'latency',
          digits: 2,
        },
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
        vegetaLine('1 consumer, 10k/s (HTTP/2)', { ns: NS1, port: '<port>', rate: RATE1, ms, http1: false }),
        vegetaLine('1 consumer, 10k/s (HTTP/1.1)', { ns: NS1, port: '<port>', rate: RATE1, ms, http1: true }),
        vegetaLine('1 consumer, 1k/s', { ns: NS1, port: '<port>', rate: RATE1 / 10, ms, http1: false }),
        vegetaLine('100 consumers, 100/s', { ns: NS100, port: '<port>', rate: RATE100, ms, http1: false }),
        'targets, one line per notification k (body in base64): {"method":"POST","url":"https://eaa.openness:<port>/notifications?k=<k>","header":{"Content-Type":["application/json"]},"body":<{"name":"tick","version":"1","payload":{"p":<phase>,"k":<k>}}>}',
        `results: ${commandLine('vegeta', encodeArgs(vegeta, { ns: NS1, port: '<port>', rate: RATE1, ms, http1: false }))} (per request: timestamp in ns, status, seq, URL)`.replaceAll(
          `${ctx.repo}/`,
          '',
        ),
        `closed loop ("max"), registration, warm-up: POST https://127.0.0.1:<port>/notifications {"name":"tick","version":"1","payload":{"p":<phase>,"t":<ms>}} (node:http2 over mutual TLS, one connection per producer, ${CLOSED_LOOP} requests outstanding; bench/eaa.ts producerWorker)`,
        'wss://127.0.0.1:<port>/notifications with Host: <consumer CN> (ws, no compression)',
        `baseline: ${commandLine(node, ['bench/eaa.ts', '--baseline', '<config.json>'])}`,
      ],
      versions: { meshlet: meshletVersion(ctx.repo), node: process.version, ws: wsVersion(ctx.repo), vegeta: vegetaVersion },
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
