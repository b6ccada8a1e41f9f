import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, isIP, isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { type Binaries, bins as defaultBins } from './binaries.ts';
import { createCa, createKeyPair, fileBase64, issueCert, type KeyCert } from './certs.ts';

/**
 * A real Kubernetes control plane for tests: etcd + kube-apiserver (+ optionally
 * kube-controller-manager) built by scripts/build-k8s-binaries.sh, on loopback, free ports,
 * a temporary directory, certificates made with openssl. Start costs ~2-3 s, so use ONE
 * FIXTURE PER TEST FILE: start it at the top of the file, and give each subtest its own
 * namespace. See test/README.md "## Control plane".
 */

/** What startControlPlane needs from tap's `t`: registering the teardown. */
export interface TeardownLike {
  teardown(fn: () => unknown): void;
}

export interface ControlPlaneOptions {
  /**
   * Address kube-apiserver binds (and advertises). Default 127.0.0.1. Use e.g. 198.18.0.1
   * (the host end of the netns bridge, which must exist first) to reach it from network
   * namespaces, or 0.0.0.0 for every address (the URLs then use 127.0.0.1).
   */
  bindAddress?: string;
  /** More subject alternative names (IPs or DNS names) for the apiserver serving certificate. */
  extraSans?: string[];
  /** Default 198.19.0.0/16 (its first address, the `kubernetes` Service IP, is in the SANs). */
  serviceClusterIpRange?: string;
  /** Extra kube-apiserver flags, appended last (a repeated flag wins). */
  apiserverFlags?: string[];
  /** Extra etcd flags, appended last. */
  etcdFlags?: string[];
  /**
   * Also start kube-controller-manager (EndpointSlice mirroring, node lifecycle, GC, ...);
   * startControlPlane returns once its controllers run. Default off.
   */
  controllerManager?: boolean | ControllerManagerOptions;
  /** How long each component may take to become healthy; default 60 s. */
  startTimeoutMs?: number;
  /** Binary paths; default those of binaries.ts (MESHLET_BIN_CACHE). */
  binaries?: Binaries;
}

export interface ControllerManagerOptions {
  /**
   * `--use-service-account-credentials`: each controller talks to the apiserver as its own
   * ServiceAccount, with its own RBAC, as in a real cluster. Default true.
   */
  serviceAccountCredentials?: boolean;
  /** Extra kube-controller-manager flags, appended last. */
  flags?: string[];
}

export interface KubectlOptions {
  /** A kubeconfig other than the admin one (e.g. from nodeKubeconfig). */
  kubeconfig?: string;
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

export interface ClientCredentialOptions {
  /** Username (certificate CN). */
  user: string;
  /** Groups (certificate O). */
  groups?: string[];
  /** Server URL written into the kubeconfig; default the control plane's url. */
  server?: string;
}

export interface StartTimings {
  certsMs: number;
  etcdMs: number;
  apiserverMs: number;
  controllerManagerMs?: number;
  totalMs: number;
}

export interface ControlPlane {
  /** https://<address>:<port> of kube-apiserver. */
  url: string;
  /** kube-apiserver's port (e.g. for the netns fixture's exposeHostPort). */
  port: number;
  /** The temporary directory: certs, kubeconfigs, etcd data, logs (*.log). Removed by stop(). */
  dir: string;
  /** The cluster CA certificate (signs every serving and client certificate here). */
  caPath: string;
  /** Admin kubeconfig (CN=meshlet-admin, O=system:masters). */
  kubeconfigPath: string;
  serviceClusterIpRange: string;
  /** The `kubernetes` Service's IP: the first address of serviceClusterIpRange. */
  kubernetesServiceIp: string;
  etcdUrl: string;
  /** https://127.0.0.1:<port> of kube-controller-manager (its /healthz), when started. */
  controllerManagerUrl?: string;
  /** Process ids (each is also its process group id). */
  pids: { etcd: number; apiserver: number; controllerManager?: number };
  timings: StartTimings;
  /** Runs the built kubectl (admin kubeconfig unless told); resolves to stdout, rejects with stderr. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<string>;
  /** The same, synchronously (blocks the event loop: not while in-process code must talk to the apiserver). */
  kubectlSync(args: string[], opts?: KubectlOptions): string;
  /** `kubectl apply -f -` of the YAML (one or more documents); resolves to kubectl's output. */
  apply(yaml: string, opts?: KubectlOptions): Promise<string>;
  /** Mints a client cert CN=system:node:<name>, O=system:nodes and returns the path of a kubeconfig for it. */
  nodeKubeconfig(nodeName: string, opts?: { server?: string }): string;
  /** Mints a client cert for any user/groups and returns the path of a kubeconfig for it. */
  clientKubeconfig(opts: ClientCredentialOptions): string;
  /**
   * Stops every process and removes dir; idempotent (later calls wait for the first). By default
   * SIGKILL to each process group (~50 ms; the state is thrown away anyway). graceful: SIGTERM,
   * one component after the other (controller-manager, apiserver, etcd), SIGKILL after 5 s each
   * (~1.2 s, the apiserver's graceful shutdown).
   */
  stop(opts?: { graceful?: boolean }): Promise<void>;
}

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  logPath: string;
  exited: Promise<void>;
  exit?: string;
}

const DEFAULT_SERVICE_RANGE = '198.19.0.0/16';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Every live fixture, for the best-effort kill on process exit. */
const live = new Set<{ procs: Proc[]; dir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const cp of live) {
      for (const p of cp.procs) killGroup(p.pid, 'SIGKILL');
      try {
        rmSync(cp.dir, { recursive: true, force: true });
      } catch {}
    }
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {}
}

/**
 * Starts etcd and kube-apiserver (and kube-controller-manager if asked), waits until they are
 * healthy, and registers their teardown on t. Rejects with the last log lines when a component
 * does not come up.
 */
export async function startControlPlane(t: TeardownLike, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const bins = opts.binaries ?? defaultBins;
  const bindAddress = opts.bindAddress ?? '127.0.0.1';
  if (!isIP(bindAddress)) throw new Error(`control plane: bindAddress must be an IP address, got ${bindAddress}`);
  const wildcard = bindAddress === '0.0.0.0' || bindAddress === '::';
  const connectHost = wildcard ? '127.0.0.1' : bindAddress;
  const serviceRange = opts.serviceClusterIpRange ?? DEFAULT_SERVICE_RANGE;
  const kubernetesServiceIp = firstAddress(serviceRange);
  const timeoutMs = opts.startTimeoutMs ?? 60_000;

  const dir = mkdtempSync(join(tmpdir(), 'meshlet-cp-'));
  const procs: Proc[] = [];
  const entry = { procs, dir };
  live.add(entry);
  installExitHook();
  const watchdog = startWatchdog(dir);
  let stopped: Promise<void> | undefined;
  const stop = (o: { graceful?: boolean } = {}): Promise<void> => {
    stopped ??= (async () => {
      if (o.graceful) for (const p of [...procs].reverse()) await stopProc(p, 'SIGTERM');
      else await Promise.all(procs.map((p) => stopProc(p, 'SIGKILL')));
      live.delete(entry);
      if (watchdog.pid !== undefined) killGroup(watchdog.pid, 'SIGKILL');
      if (process.env.MESHLET_KEEP_CONTROL_PLANE === '1') process.stderr.write(`control plane: kept ${dir}\n`);
      else rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  t.teardown(() => stop());

  try {
    // --- certificates --------------------------------------------------------------------
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const ca = createCa(pki, 'ca', 'meshlet-test-ca');
    const sans = ['127.0.0.1', 'localhost', '198.18.0.1', kubernetesServiceIp];
    if (await ipv6LoopbackWorks()) sans.push('::1');
    if (!wildcard) sans.push(bindAddress);
    sans.push('kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local');
    sans.push(...(opts.extraSans ?? []));
    const serving = issueCert(ca, pki, 'apiserver', { cn: 'kube-apiserver', sans, usage: 'server' });
    const sa = createKeyPair(pki, 'service-account');
    const admin = issueCert(ca, pki, 'admin', { cn: 'meshlet-admin', organizations: ['system:masters'], usage: 'client' });
    const certsMs = performance.now() - t0;

    const [etcdClientPort, etcdPeerPort, cmPort] = await freePorts('127.0.0.1', 3);
    const [apiPort] = await freePorts(bindAddress, 1);
    if (etcdClientPort === undefined || etcdPeerPort === undefined || cmPort === undefined || apiPort === undefined) {
      throw new Error('control plane: no free ports');
    }
    const url = `https://${hostPort(connectHost, apiPort)}`;
    const kubeconfigPath = writeKubeconfig(join(dir, 'admin.kubeconfig'), url, ca, admin, 'meshlet-admin');

    // --- etcd ------------------------------------------------------------------------------
    const tEtcd = performance.now();
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = startProc(dir, 'etcd', bins.etcd, [
      '--name=default',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync',
      // A one-member cluster: a short election timeout makes it leader ~0.5 s sooner.
      '--heartbeat-interval=10',
      '--election-timeout=100',
      '--log-level=warn',
      ...(opts.etcdFlags ?? []),
    ]);
    procs.push(etcd);
    await waitUntil(etcd, timeoutMs, async () => {
      const body = await httpGet(`${etcdUrl}/health`);
      return body !== undefined && /"health":\s*"true"/.test(body);
    });
    const etcdMs = performance.now() - tEtcd;

    // --- kube-apiserver ---------------------------------------------------------------------
    const tApi = performance.now();
    const apiserver = startProc(dir, 'kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${bindAddress}`,
      `--advertise-address=${connectHost}`,
      `--secure-port=${apiPort}`,
      // The default reconciler refuses a loopback advertise address; no endpoints are needed.
      '--endpoint-reconciler-type=none',
      `--tls-cert-file=${serving.certPath}`,
      `--tls-private-key-file=${serving.keyPath}`,
      `--client-ca-file=${ca.certPath}`,
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${sa.publicKeyPath}`,
      `--service-account-signing-key-file=${sa.privateKeyPath}`,
      `--service-cluster-ip-range=${serviceRange}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      ...(opts.apiserverFlags ?? []),
    ]);
    procs.push(apiserver);
    const clientTls = { ca: readFileSync(ca.certPath), cert: readFileSync(admin.certPath), key: readFileSync(admin.keyPath) };
    await waitUntil(apiserver, timeoutMs, async () => (await httpsGet(`${url}/readyz`, clientTls)) === 'ok');
    const apiserverMs = performance.now() - tApi;

    // --- kube-controller-manager ----------------------------------------------------------------
    let controllerManagerUrl: string | undefined;
    let controllerManagerMs: number | undefined;
    if (opts.controllerManager) {
      const cmOpts: ControllerManagerOptions = opts.controllerManager === true ? {} : opts.controllerManager;
      const tCm = performance.now();
      const cmClient = issueCert(ca, pki, 'controller-manager', { cn: 'system:kube-controller-manager', usage: 'client' });
      const cmServing = issueCert(ca, pki, 'controller-manager-serving', {
        cn: 'kube-controller-manager',
        sans: ['127.0.0.1', 'localhost'],
        usage: 'server',
      });
      const cmKubeconfig = writeKubeconfig(join(dir, 'controller-manager.kubeconfig'), url, ca, cmClient, 'controller-manager');
      controllerManagerUrl = `https://127.0.0.1:${cmPort}`;
      const cm = startProc(dir, 'kube-controller-manager', bins.kubeControllerManager, [
        `--kubeconfig=${cmKubeconfig}`,
        `--authentication-kubeconfig=${cmKubeconfig}`,
        `--authorization-kubeconfig=${cmKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${cmPort}`,
        `--tls-cert-file=${cmServing.certPath}`,
        `--tls-private-key-file=${cmServing.keyPath}`,
        `--cert-dir=${join(dir, 'controller-manager-certs')}`,
        `--service-account-private-key-file=${sa.privateKeyPath}`,
        `--root-ca-file=${ca.certPath}`,
        `--use-service-account-credentials=${cmOpts.serviceAccountCredentials ?? true}`,
        '--controllers=*',
        `--cluster-signing-cert-file=${ca.certPath}`,
        `--cluster-signing-key-file=${ca.keyPath}`,
        `--service-cluster-ip-range=${serviceRange}`,
        // One instance: no need to wait for a lease.
        '--leader-elect=false',
        // Each controller fetches its ServiceAccount token at start; at the default 20 QPS
        // that alone takes ~5 s (0.6 s like this).
        '--kube-api-qps=1000',
        '--kube-api-burst=1000',
        ...(cmOpts.flags ?? []),
      ]);
      procs.push(cm);
      const cmTls = { ca: clientTls.ca };
      await waitUntil(cm, timeoutMs, async () => (await httpsGet(`${controllerManagerUrl}/healthz`, cmTls)) === 'ok');
      // Healthy comes before the controllers run (they start together, once all are set up):
      // wait for the work of one, the ServiceAccount controller's `default` in `default`.
      await waitUntil(cm, timeoutMs, async () => {
        const body = await httpsGet(`${url}/api/v1/namespaces/default/serviceaccounts/default`, clientTls);
        return body !== undefined;
      });
      controllerManagerMs = performance.now() - tCm;
    }

    const kubectlArgs = (args: string[], o: KubectlOptions): string[] => [
      `--kubeconfig=${o.kubeconfig ?? kubeconfigPath}`,
      `--cache-dir=${join(dir, 'kubectl-cache')}`,
      ...args,
    ];
    const kubectl = (args: string[], o: KubectlOptions = {}): Promise<string> =>
      new Promise((resolve, reject) => {
        const child = execFile(
          bins.kubectl,
          kubectlArgs(args, o),
          { encoding: 'utf8', timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
          (err, stdout, stderr) => {
            if (err) reject(new Error(`kubectl ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr.trim()}`));
            else resolve(stdout);
          },
        );
        child.stdin?.end(o.input ?? '');
      });
    const kubectlSync = (args: string[], o: KubectlOptions = {}): string => {
      try {
        return execFileSync(bins.kubectl, kubectlArgs(args, o), {
          encoding: 'utf8',
          input: o.input ?? '',
          timeout: o.timeoutMs ?? 60_000,
          maxBuffer: 64 << 20,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr?.trim() ?? String(err);
        throw new Error(`kubectl ${args.join(' ')} failed: ${stderr}`);
      }
    };
    const clientKubeconfig = (o: ClientCredentialOptions): string => {
      const file = o.user.replace(/[^A-Za-z0-9.-]+/g, '_');
      const cert = issueCert(ca, pki, `client-${file}`, { cn: o.user, organizations: o.groups ?? [], usage: 'client' });
      return writeKubeconfig(join(dir, `${file}.kubeconfig`), o.server ?? url, ca, cert, o.user);
    };

    const timings: StartTimings = { certsMs, etcdMs, apiserverMs, totalMs: 0 };
    if (controllerManagerMs !== undefined) timings.controllerManagerMs = controllerManagerMs;
    timings.totalMs = performance.now() - t0;
    const cp: ControlPlane = {
      url,
      port: apiPort,
      dir,
      caPath: ca.certPath,
      kubeconfigPath,
      serviceClusterIpRange: serviceRange,
      kubernetesServiceIp,
      etcdUrl,
      pids: { etcd: etcd.pid, apiserver: apiserver.pid },
      timings,
      kubectl,
      kubectlSync,
      apply: (yaml, o = {}) => kubectl(['apply', '-f', '-'], { ...o, input: yaml }),
      nodeKubeconfig: (nodeName, o = {}) =>
        clientKubeconfig({
          user: `system:node:${nodeName}`,
          groups: ['system:nodes'],
          ...(o.server !== undefined && { server: o.server }),
        }),
      clientKubeconfig,
      stop,
    };
    if (controllerManagerUrl !== undefined) cp.controllerManagerUrl = controllerManagerUrl;
    const cmProc = procs.find((p) => p.name === 'kube-controller-manager');
    if (cmProc) cp.pids.controllerManager = cmProc.pid;
    return cp;
  } catch (err) {
    // The error carries the failing component's last log lines; MESHLET_KEEP_CONTROL_PLANE=1 keeps the rest.
    await stop();
    throw err;
  }
}

// --- processes ---------------------------------------------------------------------------------

function startProc(dir: string, name: string, bin: string, args: string[]): Proc {
  if (!existsSync(bin)) throw new Error(`control plane: ${bin} is missing (run scripts/build-k8s-binaries.sh)`);
  const logPath = join(dir, `${name}.log`);
  writeFileSync(logPath, `$ ${bin} ${args.join(' ')}\n`);
  const fd = openSync(logPath, 'a');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'KUBECONFIG'));
  let child: ChildProcess;
  try {
    // detached: its own process group, so stop() can signal everything it started.
    child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`control plane: could not start ${bin}`);
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    logPath,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        proc.exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
      child.on('error', (err) => {
        proc.exit = `failed: ${err.message}`;
        resolve();
      });
    }),
  };
  writeFileSync(join(dir, 'pgids'), `${readPgids(dir)}${proc.pid}\n`);
  return proc;
}

function readPgids(dir: string): string {
  try {
    return readFileSync(join(dir, 'pgids'), 'utf8');
  } catch {
    return '';
  }
}

async function stopProc(p: Proc, signal: NodeJS.Signals): Promise<void> {
  if (p.exit !== undefined) {
    killGroup(p.pid, 'SIGKILL'); // the leader is gone; anything it left in its group goes too
    return;
  }
  killGroup(p.pid, signal);
  const timer = setTimeout(() => killGroup(p.pid, 'SIGKILL'), 5_000);
  await p.exited;
  clearTimeout(timer);
  killGroup(p.pid, 'SIGKILL');
}

/**
 * A `sh` that outlives a killed test process (SIGKILL, tap timeout): it blocks reading a pipe
 * from this process, and on EOF (this process is gone, however it ended) kills the process
 * groups listed in <dir>/pgids and removes dir. stop() kills it first.
 */
function startWatchdog(dir: string): ChildProcess {
  const script = [
    'read -r _ || true',
    'if [ -f "$1/pgids" ]; then for g in $(cat "$1/pgids"); do kill -KILL "-$g" 2>/dev/null; done; fi',
    'rm -rf "$1"',
  ].join('\n');
  const child = spawn('sh', ['-c', script, 'meshlet-cp-watchdog', dir], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => {});
  child.stdin?.on('error', () => {});
  // Neither the process nor the pipe keeps this process alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

/** The log's error lines (a bad flag is reported above a long usage text) and its last lines. */
function logTail(p: Proc, lines = 30): string {
  let text: string[];
  try {
    text = readFileSync(p.logPath, 'utf8').trimEnd().split('\n');
  } catch {
    return '(no log)';
  }
  const tail = text.slice(-lines);
  const errors = text
    .slice(0, -lines)
    .filter((l) => /^(Error|E\d{4}|F\d{4})|"level":"(error|fatal|panic)"/.test(l))
    .slice(0, 10);
  const keep = process.env.MESHLET_KEEP_CONTROL_PLANE === '1' ? '' : ' (removed; MESHLET_KEEP_CONTROL_PLANE=1 keeps it)';
  return [`--- ${p.logPath}${keep}`, ...(errors.length > 0 ? [...errors, '[...]'] : []), ...tail].join('\n');
}

/** Polls check every 100 ms until it is true; rejects with the log tail if proc exits or time runs out. */
async function waitUntil(proc: Proc, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (proc.exit !== undefined) {
      throw new Error(`control plane: ${proc.name} ${proc.exit} during startup:\n${logTail(proc)}`);
    }
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) {
      throw new Error(`control plane: ${proc.name} not healthy after ${timeoutMs} ms:\n${logTail(proc)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- network ---------------------------------------------------------------------------------

/** Ports the kernel hands out for port 0 on host (all held open at once, so they differ). */
export async function freePorts(host: string, n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', (err) => reject(new Error(`control plane: cannot bind ${host}:0: ${err.message}`)));
          s.listen(0, host, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('control plane: unexpected server address');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

let ipv6Loopback: Promise<boolean> | undefined;
function ipv6LoopbackWorks(): Promise<boolean> {
  ipv6Loopback ??= freePorts('::1', 1).then(
    () => true,
    () => false,
  );
  return ipv6Loopback;
}

function hostPort(host: string, port: number): string {
  return isIPv4(host) || !isIP(host) ? `${host}:${port}` : `[${host}]:${port}`;
}

/** The first usable address of an IPv4 CIDR (network + 1): the `kubernetes` Service IP. */
export function firstAddress(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`control plane: only IPv4 service ranges are supported, got ${cidr}`);
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 30) throw new Error(`control plane: bad service range ${cidr}`);
  const n = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  const first = Math.floor(n / size) * size + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(first / 2 ** s) % 256).join('.');
}

function httpGet(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => collect(res, resolve));
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

function httpsGet(url: string, tls: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, { ...tls, timeout: 2_000 }, (res) => collect(res, resolve));
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

function collect(res: IncomingMessage, resolve: (body: string | undefined) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    body += chunk;
  });
  res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined));
  res.on('error', () => resolve(undefined));
}

// --- kubeconfig --------------------------------------------------------------------------------

function writeKubeconfig(path: string, server: string, ca: KeyCert, client: KeyCert, user: string): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'meshlet-test', cluster: { server, 'certificate-authority-data': fileBase64(ca.certPath) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': fileBase64(client.certPath), 'client-key-data': fileBase64(client.keyPath) },
      },
    ],
    contexts: [{ name: 'meshlet-test', context: { cluster: 'meshlet-test', user } }],
    'current-context': 'meshlet-test',
  };
  writeFileSync(path, toYaml(config), { mode: 0o600 });
  return path;
}
