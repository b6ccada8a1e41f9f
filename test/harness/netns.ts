import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ETC_NETNS, listNetns, removeRun, STATE_ROOT, sweepDeadRuns, tool } from './netns-cleanup.ts';

/**
 * A network-namespace topology for tests that need real sockets between "nodes": N node
 * namespaces on one bridge that lives in its own namespace, an optional control-plane namespace,
 * relays between the host's loopback and the bridge, and iptables cuts that simulate partitions
 * and NAT. Nothing is added to the host's own network namespace: no link, no address, no route,
 * no rule. See test/README.md ("Network-namespace topology") for the design and an example.
 *
 * Addresses (all in 198.18.0.0/16 inside this run's own namespaces, so concurrent runs never clash):
 *   198.18.0.1       the gateway: the bridge itself; host-loopback services published by
 *                    exposeHostPort() listen here (the "cloud": kube-apiserver)
 *   198.18.0.2       the optional control-plane namespace
 *   198.18.0.3       the harness: source address of exposeNodePort() traffic; never cut
 *   198.18.0.(10+i)  node i
 * Nodes also get an on-link route for the Service CIDR (default 198.19.0.0/16) so that connections
 * to Service IPs pass routing and reach whatever intercepts them in the node (iptables nat
 * OUTPUT); no namespace has a default route.
 */

export const GATEWAY_ADDRESS = '198.18.0.1';
export const CONTROL_PLANE_ADDRESS = '198.18.0.2';
export const HARNESS_ADDRESS = '198.18.0.3';
export const NODE_PREFIX_LENGTH = 16;
export const DEFAULT_SERVICE_CIDR = '198.19.0.0/16';
/** The project's Node 24 (absolute path), for Node-based servers run inside a namespace. */
export const NODE_BIN = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
const CLEANUP_SCRIPT = fileURLToPath(new URL('./netns-cleanup.ts', import.meta.url));
const MAX_NODES = 50;
const CUT_CHAIN = 'ML-CUT';

export function nodeAddress(index: number): string {
  return `198.18.0.${10 + index}`;
}

/** What createTopology needs of a tap test: somewhere to register teardown. */
export interface TeardownHost {
  teardown(fn: () => void | Promise<void>): void;
}

export interface TopologyOptions {
  /** How many nodes (named node0, node1, …) or their names (lower-case letters, digits, '-'). 1–50. */
  nodes: number | readonly string[];
  /** Also create the control-plane namespace at 198.18.0.2 (topology.controlPlane). */
  controlPlane?: boolean;
  /**
   * Content of each namespace's /etc/netns/<netns>/resolv.conf, which `ip netns exec` bind-mounts
   * over /etc/resolv.conf. Default: `nameserver 127.0.0.1` with a 1 s timeout and one attempt, so
   * lookups fail fast and never leave the namespace. Change it later with node.setResolvConf().
   */
  resolvConf?: string | ((node: { name: string; address: string }) => string);
  /** On-link route for Service IPs in each node (within 198.18.0.0/15); false for none. */
  serviceCidr?: string | false;
}

export interface ExecOptions {
  /** Killed (SIGKILL) after this long; default 15 s. */
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface CutOptions {
  /**
   * NAT-like instead of a full cut: the first argument (the node "behind NAT") can still open
   * connections to the other side and gets its replies, but nothing new gets in from there.
   * Implemented with conntrack state, without address translation.
   */
  nat?: boolean;
}

export interface Endpoint {
  address: string;
  port: number;
}

const OUTPUT_CAP = 1 << 20;

function envWithSbin(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const dir of ['/usr/sbin', '/sbin']) if (!path.includes(dir)) path.push(dir);
  return { ...process.env, PATH: path.join(':'), ...extra };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A long-running process started by the fixture; killed (with its process group) on teardown. */
export class TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly description: string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #output = '';
  #running = true;
  #listeners = new Set<() => void>();

  constructor(child: ChildProcess, description: string) {
    if (child.pid === undefined) throw new Error(`netns: could not start ${description}`);
    this.child = child;
    this.pid = child.pid;
    this.description = description;
    const append = (chunk: string) => {
      this.#output = (this.#output + chunk).slice(-OUTPUT_CAP);
      for (const listener of this.#listeners) listener();
    };
    child.stdout?.setEncoding('utf8').on('data', append);
    child.stderr?.setEncoding('utf8').on('data', append);
    child.on('error', (err) => append(`\n[spawn error: ${err.message}]\n`));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#running = false;
        for (const listener of this.#listeners) listener();
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return this.#running;
  }

  /** Everything it printed so far (stdout and stderr interleaved; the last 1 MiB). */
  output(): string {
    return this.#output;
  }

  /** Waits until the output matches; rejects (with the output's tail) on exit or timeout. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, match?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        if (err) reject(err);
        else if (match) resolve(match);
      };
      const fail = (why: string) =>
        new Error(`netns: ${this.description} ${why} before printing ${re}; output:\n${this.#output.slice(-2000)}`);
      const check = () => {
        const match = this.#output.match(re);
        if (match) finish(undefined, match);
        else if (!this.#running) finish(fail('exited'));
      };
      const timer = setTimeout(() => finish(fail(`took over ${timeoutMs} ms`)), timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /** SIGTERM to its process group, SIGKILL after graceMs; resolves once it has exited. */
  async kill(graceMs = 2000): Promise<void> {
    if (!this.#running) return;
    this.#signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (first !== 'timeout') return;
    this.#signal('SIGKILL');
    await Promise.race([this.exited, sleep(2000)]);
  }

  /** For process.on('exit'): SIGKILL without waiting. */
  killNow(): void {
    if (this.#running) this.#signal('SIGKILL');
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      try {
        process.kill(this.pid, signal);
      } catch {}
    }
  }
}

interface Tracker {
  track(p: TrackedProcess): void;
  tornDown(): boolean;
}

/** One namespace of the topology (a node, or the control plane). */
export class NetnsNode {
  /** Logical name, e.g. node0 or controlplane. */
  readonly name: string;
  /** The namespace's name, for `ip netns exec` / `ip -n`. */
  readonly netns: string;
  /** Its address on the bridge (198.18.0.x). */
  readonly address: string;
  readonly #tracker: Tracker;

  constructor(name: string, netns: string, address: string, tracker: Tracker) {
    this.name = name;
    this.netns = netns;
    this.address = address;
    this.#tracker = tracker;
  }

  /** Runs a command inside the namespace and resolves with its result (never rejects on failure). */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = execFile(
        tool('ip'),
        ['netns', 'exec', this.netns, cmd, ...args],
        {
          encoding: 'utf8',
          timeout: opts.timeoutMs ?? 15_000,
          killSignal: 'SIGKILL',
          maxBuffer: 16 << 20,
          env: envWithSbin(opts.env),
          ...(opts.cwd !== undefined && { cwd: opts.cwd }),
        },
        (err, stdout, stderr) => {
          if (!err) {
            resolve({ ok: true, code: 0, signal: null, timedOut: false, stdout, stderr });
            return;
          }
          const code = typeof err.code === 'number' ? err.code : null;
          const signal = (err.signal as NodeJS.Signals | null | undefined) ?? null;
          const extra = code === null && signal === null ? `${err.message}\n` : '';
          resolve({ ok: false, code, signal, timedOut: err.killed === true, stdout, stderr: stderr + extra });
        },
      );
      child.stdin?.on('error', () => {});
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** Like exec, but rejects unless the command succeeds; resolves with its stdout. */
  async run(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(cmd, args, opts);
    if (!r.ok) {
      const how = r.timedOut ? 'timed out' : `failed (code ${r.code}, signal ${r.signal})`;
      throw new Error(`netns ${this.name}: ${cmd} ${args.join(' ')} ${how}: ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  /**
   * Starts a long-running process inside the namespace (in its own process group). It is killed
   * on teardown; kill it earlier with `await p.kill()`. For Node servers: spawn(NODE_BIN, [file.ts]).
   */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): TrackedProcess {
    if (this.#tracker.tornDown()) throw new Error(`netns ${this.name}: topology already torn down`);
    const child = spawn(tool('ip'), ['netns', 'exec', this.netns, cmd, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: envWithSbin(opts.env),
      ...(opts.cwd !== undefined && { cwd: opts.cwd }),
    });
    const p = new TrackedProcess(child, `${cmd} in ${this.name}`);
    this.#tracker.track(p);
    return p;
  }

  /** Replaces /etc/netns/<netns>/resolv.conf; processes started afterwards see it as /etc/resolv.conf. */
  setResolvConf(content: string): void {
    mkdirSync(`${ETC_NETNS}/${this.netns}`, { recursive: true });
    writeFileSync(`${ETC_NETNS}/${this.netns}/resolv.conf`, content.endsWith('\n') ? content : `${content}\n`);
  }

  /** Waits until something listens on the port in this namespace (TCP, or UDP with udp: true). */
  async waitForPort(port: number, opts: { udp?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt++) {
      const r = await this.exec(tool('ss'), [opts.udp ? '-Hlun' : '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 2000 });
      if (r.ok && r.stdout.trim() !== '') return;
      await sleep(50);
    }
    throw new Error(`netns ${this.name}: nothing listening on ${opts.udp ? 'udp' : 'tcp'} port ${port} in time`);
  }

  /** Runs iptables in this namespace; rejects on failure. */
  async iptables(args: readonly string[]): Promise<void> {
    await this.run(tool('iptables'), ['-w', '5', ...args], { timeoutMs: 10_000 });
  }
}

/**
 * A tiny TCP relay (CommonJS for `node -e`): argv = listen target [localAddress], each `tcp:HOST:PORT`
 * or `unix:PATH`. Prints `ready <port>` once listening and exits when its stdin closes, so it dies
 * with the test process even on SIGKILL.
 */
const RELAY_SCRIPT = `
const net = require('node:net');
const fs = require('node:fs');
const [listenSpec, targetSpec, source] = process.argv.slice(1);
const parse = (s) => {
  if (s.startsWith('unix:')) return { path: s.slice(5) };
  const rest = s.slice(4);
  const i = rest.lastIndexOf(':');
  return { host: rest.slice(0, i), port: Number(rest.slice(i + 1)) };
};
const listen = parse(listenSpec);
const target = { ...parse(targetSpec), allowHalfOpen: true };
if (source) target.localAddress = source;
if (listen.path) { try { fs.unlinkSync(listen.path); } catch {} }
const server = net.createServer({ allowHalfOpen: true }, (a) => {
  const b = net.connect(target);
  const close = () => { a.destroy(); b.destroy(); };
  a.on('error', close); b.on('error', close); a.on('close', close); b.on('close', close);
  a.pipe(b); b.pipe(a);
});
server.on('error', (err) => { process.stderr.write('relay: ' + err.message + '\\n'); process.exit(1); });
server.listen(listen, () => {
  const address = server.address();
  process.stdout.write('ready ' + (address && typeof address === 'object' ? address.port : 0) + '\\n');
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
`;

const live = new Set<Topology>();
let exitHookInstalled = false;
let runCounter = 0;

/** Removes, synchronously and best effort, whatever a test process exiting without teardown left. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const topology of live) topology.teardownSync();
  });
}

export class Topology {
  /** `ml-<pid>-<n>`: every namespace of this run is `<prefix>-<role>`. */
  readonly prefix: string;
  readonly nodes: readonly NetnsNode[];
  /** The control-plane namespace at 198.18.0.2, when asked for. */
  readonly controlPlane: NetnsNode | undefined;
  /** The namespace holding the bridge (and the gateway/harness addresses and relays). */
  readonly bridgeNetns: string;
  readonly #processes = new Set<TrackedProcess>();
  readonly #cuts = new Map<string, { node: NetnsNode; rules: string[][] }>();
  readonly #chains = new Set<string>();
  readonly #bridge: NetnsNode;
  #relayCount = 0;
  #tornDown = false;
  #watchdog: ChildProcess | undefined;
  #teardownPromise: Promise<void> | undefined;

  private constructor(prefix: string, names: readonly string[], controlPlane: boolean) {
    this.prefix = prefix;
    this.bridgeNetns = `${prefix}-br`;
    const tracker: Tracker = {
      track: (p) => {
        this.#processes.add(p);
        void p.exited.then(() => this.#processes.delete(p));
      },
      tornDown: () => this.#tornDown,
    };
    this.#bridge = new NetnsNode('bridge', this.bridgeNetns, GATEWAY_ADDRESS, tracker);
    this.nodes = names.map((name, i) => new NetnsNode(name, `${prefix}-n${i}`, nodeAddress(i), tracker));
    this.controlPlane = controlPlane ? new NetnsNode('controlplane', `${prefix}-cp`, CONTROL_PLANE_ADDRESS, tracker) : undefined;
  }

  /** Use createTopology(). */
  static async create(t: TeardownHost, opts: TopologyOptions): Promise<Topology> {
    const names = typeof opts.nodes === 'number' ? Array.from({ length: opts.nodes }, (_, i) => `node${i}`) : [...opts.nodes];
    if (names.length < 1 || names.length > MAX_NODES) throw new Error(`netns: between 1 and ${MAX_NODES} nodes`);
    for (const name of names) if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) throw new Error(`netns: bad node name ${name}`);
    if (new Set(names).size !== names.length) throw new Error('netns: node names must be unique');
    const serviceCidr = opts.serviceCidr === undefined ? DEFAULT_SERVICE_CIDR : opts.serviceCidr;
    if (serviceCidr !== false && !/^198\.1[89]\.\d{1,3}\.\d{1,3}\/(1[5-9]|2\d|3[0-2])$/.test(serviceCidr)) {
      throw new Error(`netns: serviceCidr ${serviceCidr} is not inside 198.18.0.0/15`);
    }

    sweepDeadRuns();
    const prefix = `ml-${process.pid}-${runCounter++}`;
    // A previous process with the same pid may have left this prefix behind.
    if (listNetns().some((ns) => ns.startsWith(`${prefix}-`))) removeRun(prefix);

    const topology = new Topology(prefix, names, opts.controlPlane === true);
    live.add(topology);
    installExitHook();
    t.teardown(() => topology.teardown());
    topology.#startWatchdog();
    try {
      await topology.#setUp(opts, serviceCidr);
    } catch (err) {
      await topology.teardown();
      throw err;
    }
    return topology;
  }

  /** Node by name or index. */
  node(which: string | number): NetnsNode {
    const node = typeof which === 'number' ? this.nodes[which] : this.nodes.find((n) => n.name === which);
    if (!node) throw new Error(`netns: no node ${which}`);
    return node;
  }

  /** Every namespace of the topology: bridge, control plane (if any), nodes. */
  get allNetns(): string[] {
    return [this.bridgeNetns, ...(this.controlPlane ? [this.controlPlane.netns] : []), ...this.nodes.map((n) => n.netns)];
  }

  /**
   * Makes a TCP service on the host's loopback (e.g. kube-apiserver on 127.0.0.1:hostPort)
   * reachable from every namespace at 198.18.0.1:port (port defaults to hostPort). Two relays
   * joined by a Unix socket, one in the host namespace and one in the bridge namespace. Traffic is
   * passed through untouched (TLS included: the apiserver certificate needs 198.18.0.1 in its SANs).
   */
  async exposeHostPort(hostPort: number, opts: { port?: number; host?: string } = {}): Promise<Endpoint> {
    const port = opts.port ?? hostPort;
    const socket = this.#socketPath();
    await this.#startRelay(undefined, `unix:${socket}`, `tcp:${opts.host ?? '127.0.0.1'}:${hostPort}`);
    await this.#startRelay(this.#bridge, `tcp:${GATEWAY_ADDRESS}:${port}`, `unix:${socket}`);
    return { address: GATEWAY_ADDRESS, port };
  }

  /**
   * Makes a TCP port of a node reachable from the host at 127.0.0.1:<ephemeral port> (for the
   * test process to call an agent's admin API). Its traffic enters the node from 198.18.0.3,
   * which cuts never block.
   */
  async exposeNodePort(node: NetnsNode, port: number): Promise<Endpoint> {
    const socket = this.#socketPath();
    await this.#startRelay(this.#bridge, `unix:${socket}`, `tcp:${node.address}:${port}`, HARNESS_ADDRESS);
    const match = await this.#startRelay(undefined, 'tcp:127.0.0.1:0', `unix:${socket}`);
    return { address: '127.0.0.1', port: Number(match[1]) };
  }

  /**
   * Cuts a from b: every packet between them is dropped (in a's namespace), established
   * connections included. With { nat: true }, only new connections from b to a are dropped.
   * Replaces an earlier cut of the same pair.
   */
  async cut(a: NetnsNode, b: NetnsNode, opts: CutOptions = {}): Promise<void> {
    if (a === b) throw new Error('netns: cannot cut a node from itself');
    await this.#setCut(pairKey(a, b), a, [b.address], opts.nat === true);
  }

  /** Undoes cut(a, b) (in either order). */
  async restore(a: NetnsNode, b: NetnsNode): Promise<void> {
    await this.#clearCut(pairKey(a, b));
  }

  /**
   * Cuts the node from the gateway (198.18.0.1: host services such as the apiserver) and the
   * control-plane namespace (198.18.0.2). With { nat: true } the node can still reach them, but
   * they cannot open connections to it.
   */
  async cutFromControlPlane(node: NetnsNode, opts: CutOptions = {}): Promise<void> {
    await this.#setCut(`cp|${node.netns}`, node, [GATEWAY_ADDRESS, CONTROL_PLANE_ADDRESS], opts.nat === true);
  }

  async restoreControlPlane(node: NetnsNode): Promise<void> {
    await this.#clearCut(`cp|${node.netns}`);
  }

  /** Undoes every cut. */
  async restoreAll(): Promise<void> {
    for (const key of [...this.#cuts.keys()]) await this.#clearCut(key);
  }

  /** Kills every process, deletes every namespace and file of the run. Idempotent; t.teardown calls it. */
  teardown(): Promise<void> {
    this.#teardownPromise ??= this.#teardown();
    return this.#teardownPromise;
  }

  async #teardown(): Promise<void> {
    this.#tornDown = true;
    await Promise.all([...this.#processes].map((p) => p.kill()));
    removeRun(this.prefix);
    live.delete(this);
    this.#stopWatchdog();
  }

  /** Synchronous, SIGKILL-only teardown for process.on('exit'). */
  teardownSync(): void {
    this.#tornDown = true;
    for (const p of this.#processes) p.killNow();
    removeRun(this.prefix);
    live.delete(this);
    this.#stopWatchdog();
  }

  async #setUp(opts: TopologyOptions, serviceCidr: string | false): Promise<void> {
    mkdirSync(`${STATE_ROOT}/${this.prefix}`, { recursive: true, mode: 0o700 });
    const hosts = [...(this.controlPlane ? [this.controlPlane] : []), ...this.nodes];
    for (const ns of this.allNetns) {
      await ipCmd(['netns', 'add', ns]);
      // No IPv6 on the links made from here on (no link-local addresses); lo keeps ::1.
      await this.#inNetns(ns, tool('sysctl'), ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    await ipBatch(this.bridgeNetns, [
      'link set lo up',
      'link add br0 type bridge stp_state 0 forward_delay 0',
      `addr add ${GATEWAY_ADDRESS}/${NODE_PREFIX_LENGTH} dev br0`,
      `addr add ${HARNESS_ADDRESS}/${NODE_PREFIX_LENGTH} dev br0`,
      'link set br0 up',
    ]);
    const ports: string[] = [];
    for (const [i, host] of hosts.entries()) {
      const port = `p${i}`;
      ports.push(port);
      await ipBatch(host.netns, [
        'link set lo up',
        `link add eth0 type veth peer name ${port} netns ${this.bridgeNetns}`,
        `addr add ${host.address}/${NODE_PREFIX_LENGTH} dev eth0`,
        'link set eth0 up',
        ...(serviceCidr !== false && host !== this.controlPlane ? [`route add ${serviceCidr} dev eth0 scope link`] : []),
      ]);
      const resolv =
        typeof opts.resolvConf === 'function'
          ? opts.resolvConf({ name: host.name, address: host.address })
          : (opts.resolvConf ?? `# ${host.netns}: meshlet test topology\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n`);
      host.setResolvConf(resolv);
    }
    await ipBatch(
      this.bridgeNetns,
      ports.flatMap((port) => [`link set ${port} master br0`, `link set ${port} up`]),
    );
  }

  async #inNetns(ns: string, cmd: string, args: string[]): Promise<void> {
    await new NetnsNode(ns, ns, '', { track: () => {}, tornDown: () => false }).run(cmd, args);
  }

  #socketPath(): string {
    return `${STATE_ROOT}/${this.prefix}/relay${this.#relayCount++}.sock`;
  }

  /** Starts a relay in the host namespace (in undefined) or in a namespace; resolves on "ready". */
  async #startRelay(inNode: NetnsNode | undefined, listen: string, target: string, source?: string): Promise<RegExpMatchArray> {
    if (this.#tornDown) throw new Error('netns: topology already torn down');
    const argv = ['-e', RELAY_SCRIPT, listen, target, ...(source ? [source] : [])];
    const [cmd, args] = inNode ? [tool('ip'), ['netns', 'exec', inNode.netns, NODE_BIN, ...argv]] : [NODE_BIN, argv];
    const child = spawn(cmd, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: envWithSbin() });
    const relay = new TrackedProcess(child, `relay ${listen} -> ${target}${inNode ? ` in ${inNode.name}` : ''}`);
    this.#processes.add(relay);
    void relay.exited.then(() => this.#processes.delete(relay));
    return relay.waitForOutput(/ready (\d+)/, 10_000);
  }

  async #ensureChain(node: NetnsNode): Promise<void> {
    if (this.#chains.has(node.netns)) return;
    await node.iptables(['-N', CUT_CHAIN]);
    await node.iptables(['-I', 'INPUT', '1', '-j', CUT_CHAIN]);
    await node.iptables(['-I', 'OUTPUT', '1', '-j', CUT_CHAIN]);
    this.#chains.add(node.netns);
  }

  async #setCut(key: string, node: NetnsNode, peers: readonly string[], nat: boolean): Promise<void> {
    await this.#clearCut(key);
    await this.#ensureChain(node);
    // One chain, jumped to from INPUT and OUTPUT: "-s peer" only matches arriving packets,
    // "-d peer" only leaving ones.
    const rules = peers.flatMap((peer) =>
      nat
        ? [['-s', peer, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP']]
        : [
            ['-s', peer, '-j', 'DROP'],
            ['-d', peer, '-j', 'DROP'],
          ],
    );
    const added: string[][] = [];
    this.#cuts.set(key, { node, rules: added });
    for (const rule of rules) {
      await node.iptables(['-A', CUT_CHAIN, ...rule]);
      added.push(rule);
    }
  }

  async #clearCut(key: string): Promise<void> {
    const cut = this.#cuts.get(key);
    if (!cut) return;
    this.#cuts.delete(key);
    for (const rule of cut.rules) await cut.node.iptables(['-D', CUT_CHAIN, ...rule]);
  }

  /**
   * A detached watchdog (netns-cleanup.ts --watch) holding a pipe from this process: if this
   * process dies without teardown (even by SIGKILL), the pipe closes and it removes the run.
   */
  #startWatchdog(): void {
    const child = spawn(NODE_BIN, [CLEANUP_SCRIPT, '--watch', this.prefix], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: envWithSbin(),
    });
    child.on('error', () => {});
    child.stdin?.on('error', () => {});
    child.unref();
    const stdin = child.stdin;
    if (stdin && 'unref' in stdin && typeof stdin.unref === 'function') stdin.unref();
    this.#watchdog = child;
  }

  #stopWatchdog(): void {
    const watchdog = this.#watchdog;
    this.#watchdog = undefined;
    if (!watchdog?.stdin) return;
    watchdog.stdin.end('done\n');
  }
}

/** Creates the topology; registers its teardown on t and sweeps what dead runs left first. */
export function createTopology(t: TeardownHost, opts: TopologyOptions): Promise<Topology> {
  return Topology.create(t, opts);
}

function pairKey(a: NetnsNode, b: NetnsNode): string {
  return [a.netns, b.netns].sort().join('|');
}

function ipCmd(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(tool('ip'), args, { encoding: 'utf8', timeout: 10_000, env: envWithSbin() }, (err, stdout, stderr) => {
      if (err) reject(new Error(`netns: ip ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.on('error', () => {});
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

function ipBatch(netns: string, commands: readonly string[]): Promise<string> {
  return ipCmd(['-n', netns, '-batch', '-'], `${commands.join('\n')}\n`);
}
