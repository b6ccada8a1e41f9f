import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { type ClientHttp2Session, connect as connectH2 } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Registry as MetricsRegistry } from 'prom-client';
import { WebSocket } from 'ws';
import { type ConfigInput, ConfigSchema } from '../../src/config/schema.ts';
import { createEaaModule, type EaaModule } from '../../src/eaa/module.ts';
import { createCa } from '../../src/eaa/pki.ts';
import { silentLogger } from '../../src/log.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';

/**
 * A client that does what the OpenNESS sample apps do (docs/eaa.md §Clients): an ECDSA P-256 key
 * and a CSR made with `openssl req`, POST /auth over plain HTTP, then mutual TLS to the API with
 * ServerName eaa.openness and the CA from `ca_pool`, and a WebSocket whose Host header is the CN.
 */

const run = promisify(execFile);

export interface TapT {
  teardown(fn: () => unknown): void;
}

export async function tempDir(t: TapT, prefix = 'meshlet-eaa-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A CA written to files, so several agents share it as nodes of one cluster do. */
export async function sharedCa(dir: string): Promise<{ certFile: string; keyFile: string; certPem: string }> {
  const { ca, keyPem } = await createCa();
  const certFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'ca-key.pem');
  await writeFile(certFile, ca.certPem);
  await writeFile(keyFile, keyPem, { mode: 0o600 });
  return { certFile, keyFile, certPem: ca.certPem };
}

export interface NodeOptions {
  name?: string;
  dir: string;
  ca: { certFile: string; keyFile: string };
  peers?: string[];
  peerPort?: number;
  eaa?: NonNullable<ConfigInput['eaa']>;
}

export interface TestNode {
  module: EaaModule;
  metrics: MetricsRegistry;
  port: number;
  authPort: number;
  peerPort: number;
  stop(): Promise<void>;
}

/** One agent's EAA module on loopback with free ports; stopped at teardown. */
export async function startNode(t: TapT, o: NodeOptions): Promise<TestNode> {
  const name = o.name ?? 'node-a';
  const config = Object.freeze(
    ConfigSchema.parse({
      node: { name },
      eaa: {
        enabled: true,
        port: 0,
        authPort: 0,
        peerPort: o.peerPort ?? 0,
        stateFile: join(o.dir, `${name}-state.json`),
        ca: { certFile: o.ca.certFile, keyFile: o.ca.keyFile, generate: false },
        peers: o.peers ?? [],
        syncIntervalMs: 500,
        peerTimeoutMs: 1000,
        ...o.eaa,
      },
    }),
  );
  const metrics = new MetricsRegistry();
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const module = createEaaModule({ config, registry, metrics, logger: silentLogger() });
  await module.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await module.stop();
  };
  t.teardown(stop);
  return {
    module,
    metrics,
    port: module.server?.port ?? 0,
    authPort: module.server?.authPort ?? 0,
    peerPort: module.peers?.port ?? 0,
    stop,
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Plain HTTP, as the apps call POST http://eaa.openness/auth. */
export function httpCall(port: number, method: string, path: string, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = { Host: 'eaa.openness', ...(body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) }) };
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface AppIdentity {
  cn: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  /** The raw /auth answer. */
  auth: Record<string, unknown>;
}

/** An ECDSA P-256 key and a CSR for `cn` made with the openssl CLI. */
export async function makeCsr(
  dir: string,
  cn: string,
  keyType: 'ec' | 'rsa' = 'ec',
): Promise<{ keyPem: string; csrPem: string }> {
  const base = join(dir, `app-${Math.random().toString(36).slice(2)}`);
  const keyArgs = keyType === 'ec' ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-algorithm', 'RSA'];
  await run('openssl', ['genpkey', ...keyArgs, '-out', `${base}.key`]);
  await run('openssl', ['req', '-new', '-key', `${base}.key`, '-subj', `/CN=${cn}`, '-out', `${base}.csr`]);
  return { keyPem: await readFile(`${base}.key`, 'utf8'), csrPem: await readFile(`${base}.csr`, 'utf8') };
}

/** POST /auth with a fresh CSR; the certificate and the CA pool come from the answer. */
export async function authenticate(authPort: number, dir: string, cn: string): Promise<AppIdentity> {
  const { keyPem, csrPem } = await makeCsr(dir, cn);
  const r = await httpCall(authPort, 'POST', '/auth', JSON.stringify({ csr: csrPem }));
  if (r.status !== 200) throw new Error(`/auth answered ${r.status} ${String(r.headers['x-meshlet-error'])}`);
  const auth = JSON.parse(r.body) as { certificate: string; ca_pool: string[] };
  return { cn, keyPem, certPem: auth.certificate, caPem: auth.ca_pool[0] as string, auth };
}

/** authenticate, once per CN: later calls for the same app reuse its certificate. */
export function identities(authPort: number, dir: string): (cn: string) => Promise<AppIdentity> {
  const ids = new Map<string, AppIdentity>();
  return async (cn) => {
    let id = ids.get(cn);
    if (!id) {
      id = await authenticate(authPort, dir, cn);
      ids.set(cn, id);
    }
    return id;
  };
}

export interface EaaClient {
  call(method: string, path: string, body?: string | Buffer, headers?: Record<string, string>): Promise<Reply>;
  socket(opts?: { host?: string; headers?: Record<string, string> }): Promise<Consumer>;
}

/** The mutual-TLS client of one app (ServerName eaa.openness, like every OpenNESS client). */
export function client(port: number, id: AppIdentity): EaaClient {
  const tls = { key: id.keyPem, cert: id.certPem, ca: [id.caPem], servername: 'eaa.openness' };
  return {
    call(method, path, body, headers = {}) {
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            method,
            path,
            ...tls,
            agent: false,
            // Go's client frames every body with Content-Length; Node would send a DELETE body unframed.
            headers: {
              Host: 'eaa.openness',
              ...(body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) }),
              ...headers,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    },
    socket(opts = {}) {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/notifications`, {
        ...tls,
        headers: { Host: opts.host ?? id.cn, ...opts.headers },
        perMessageDeflate: false,
      });
      return Consumer.open(ws);
    },
  };
}

export interface H2Client {
  session: ClientHttp2Session;
  /** The protocol ALPN chose: 'h2'. */
  alpn: string | false | undefined;
  call(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

/**
 * An app speaking HTTP/2 as a Go client does with the OpenNESS EAA (ALPN h2, one connection,
 * requests multiplexed on it, `:authority` eaa.openness). Rejects when the handshake fails.
 */
export async function h2Client(
  port: number,
  tls: { key?: string; cert?: string; ca: string[] },
  opts: { authority?: string } = {},
): Promise<H2Client> {
  const session = connectH2(`https://127.0.0.1:${port}`, { ...tls, servername: 'eaa.openness' });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
    session.once('close', () => reject(new Error('HTTP/2 session closed before it was up')));
  });
  session.on('error', () => {}); // surfaces on the streams
  return {
    session,
    alpn: session.alpnProtocol,
    call(method, path, body, headers = {}) {
      return new Promise((resolve, reject) => {
        const stream = session.request(
          {
            ':method': method,
            ':path': path,
            ':authority': opts.authority ?? 'eaa.openness',
            ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
            ...headers,
          },
          // Node ends GET, HEAD and DELETE streams at once unless told; a DELETE may carry a body here.
          { endStream: false },
        );
        let status = 0;
        let head: Record<string, string | string[] | undefined> = {};
        const chunks: Buffer[] = [];
        stream.on('response', (h) => {
          status = Number(h[':status'] ?? 0);
          head = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':')));
        });
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () =>
          status === 0
            ? reject(new Error(`${method} ${path}: no response headers`))
            : resolve({ status, headers: head, body: Buffer.concat(chunks).toString('utf8') }),
        );
        stream.on('error', reject);
        // A refused handshake (TLS 1.3 lets the client finish first) closes the stream unanswered.
        stream.on('close', () => reject(new Error(`${method} ${path}: stream closed without an answer`)));
        stream.end(body);
      });
    },
    close() {
      if (session.closed || session.destroyed) return Promise.resolve();
      return new Promise((resolve) => session.close(() => resolve()));
    },
  };
}

/** A consumer's WebSocket that collects the text frames it receives. */
export class Consumer {
  readonly ws: WebSocket;
  readonly messages: string[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.messages.push(data.toString());
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  static open(ws: WebSocket): Promise<Consumer> {
    const c = new Consumer(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (_req, res) => {
        reject(Object.assign(new Error(`websocket refused: ${res.statusCode}`), { status: res.statusCode }));
        res.resume();
      });
      ws.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `n` messages arrived (or the socket closed), or after `timeoutMs`. */
  async waitFor(n: number, timeoutMs = 3000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < n && this.closed === undefined && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages;
  }

  async waitClosed(timeoutMs = 3000): Promise<{ code: number; reason: string } | undefined> {
    await this.waitFor(Number.POSITIVE_INFINITY, timeoutMs);
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
