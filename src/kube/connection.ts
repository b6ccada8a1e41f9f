import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, type RequestOptions } from 'node:https';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { KubeConfig as KubeConfigType } from '@kubernetes/client-node';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import { loadKubeConfig } from './kubeconfig-load.ts';

/** How meshlet reaches an apiserver: its base URL and the TLS/auth options of each request. */
export interface KubeConnection {
  readonly server: URL;
  /** Fresh options for one request (tokens from exec plugins may rotate). */
  requestOptions(): Promise<RequestOptions>;
  /** A short description for logs and status: "https://127.0.0.1:6443 as context admin". */
  readonly description: string;
}

export interface KubeConnectionOptions {
  /** Path of a kubeconfig; '' means in-cluster config when running in a pod, else $KUBECONFIG / ~/.kube/config. */
  kubeconfig: string;
  /** Context name; '' means the kubeconfig's current context. */
  context: string;
}

/** What resolve-credentials.ts prints: a kubeconfig's current context, resolved to request options. */
export interface ResolvedCredentials {
  server: string;
  /** Where the credentials came from (a path, or "in-cluster config"). */
  how: string;
  context: string;
  /** Exec plugins, other auth providers or a proxy: the library must stay in process. */
  inProcess: boolean;
  /** PEM, base64-encoded. */
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
  /** user:password (basic auth). */
  auth?: string;
  /** A service account token file (in-cluster), re-read as the kubelet rotates it. */
  tokenFile?: string;
  headers: Record<string, string>;
}

const RESOLVER = fileURLToPath(new URL('./resolve-credentials.ts', import.meta.url));
/** The kubelet rotates projected service account tokens well before they expire; re-read this often. */
const TOKEN_FILE_REFRESH_MS = 60_000;

/**
 * Loads credentials with @kubernetes/client-node's KubeConfig (kubeconfig parsing, exec and
 * token auth, in-cluster service-account files are not meshlet's job), and nothing else of it:
 * list and watch are meshlet's own (src/kube/reflector.ts). The library is run in a child
 * process that prints the resolved certificates and token (resolve-credentials.ts), so the
 * agent never holds its ~80 MiB; only credentials that must be refreshed by the library (exec
 * plugins, OIDC and cloud auth providers) or a proxy URL load it in process. Requests share one
 * keep-alive agent.
 */
export function createKubeConnection(opts: KubeConnectionOptions): KubeConnection {
  const resolved = resolveInChild(opts);
  if (!resolved.inProcess) return staticConnection(resolved);
  return inProcessConnection(opts);
}

function resolveInChild(opts: KubeConnectionOptions): ResolvedCredentials {
  const child = spawnSync(process.execPath, [RESOLVER], {
    input: JSON.stringify(opts),
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 16 << 20,
  });
  if (child.error || child.status !== 0) {
    const why = child.error ? errorMessage(child.error) : child.stderr.trim() || `exit code ${child.status}`;
    throw new MeshletError(
      ErrorCodes.KUBE_CONFIG,
      `cannot load Kubernetes credentials from ${opts.kubeconfig || 'the default places'}: ${why}`,
      { ...(child.error && { cause: child.error }) },
    );
  }
  return JSON.parse(child.stdout) as ResolvedCredentials;
}

function parseServer(server: string, how: string): URL {
  try {
    return new URL(server);
  } catch (err) {
    throw new MeshletError(ErrorCodes.KUBE_CONFIG, `apiserver address "${server}" in ${how} is not a URL`, { cause: err });
  }
}

function staticConnection(r: ResolvedCredentials): KubeConnection {
  const server = parseServer(r.server, r.how);
  const pem = (b64: string | undefined) => (b64 === undefined ? undefined : Buffer.from(b64, 'base64'));
  const tls = {
    ...(r.ca !== undefined && { ca: pem(r.ca) }),
    ...(r.cert !== undefined && { cert: pem(r.cert) }),
    ...(r.key !== undefined && { key: pem(r.key) }),
    ...(r.servername !== undefined && { servername: r.servername }),
    ...(r.rejectUnauthorized !== undefined && { rejectUnauthorized: r.rejectUnauthorized }),
  };
  const agent = new Agent({ keepAlive: true, ...tls });
  let token: { value: string; readAt: number } | undefined;
  const bearer = (): string | undefined => {
    if (!r.tokenFile) return undefined;
    if (!token || Date.now() - token.readAt > TOKEN_FILE_REFRESH_MS) {
      try {
        token = { value: readFileSync(r.tokenFile, 'utf8').trim(), readAt: Date.now() };
      } catch (err) {
        // Keep the last token: the file is replaced by a rename, and a failed read is transient.
        if (!token) throw new MeshletError(ErrorCodes.KUBE_CONFIG, `cannot read token file ${r.tokenFile}: ${errorMessage(err)}`);
      }
    }
    return token?.value;
  };
  return {
    server,
    description: `${server.origin} (${r.how}, context ${r.context})`,
    async requestOptions() {
      const t = bearer();
      return {
        ...tls,
        agent,
        ...(r.auth !== undefined && { auth: r.auth }),
        headers: { ...r.headers, ...(t !== undefined && { Authorization: `Bearer ${t}` }) },
      };
    },
  };
}

/** The library in process, for credentials it must keep refreshing itself. */
function inProcessConnection(opts: KubeConnectionOptions): KubeConnection {
  const kc: KubeConfigType = new (loadClientNode().KubeConfig)();
  let how: string;
  try {
    how = loadKubeConfig(kc, opts);
  } catch (err) {
    throw new MeshletError(
      ErrorCodes.KUBE_CONFIG,
      `cannot load Kubernetes credentials from ${opts.kubeconfig || 'the default places'}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new MeshletError(ErrorCodes.KUBE_CONFIG, `no apiserver address in ${how} (context "${kc.getCurrentContext()}")`);
  }
  const server = parseServer(cluster.server, how);
  return {
    server,
    description: `${server.origin} (${how}, context ${kc.getCurrentContext()})`,
    async requestOptions() {
      const options: RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      return options;
    },
  };
}

let clientNode: typeof import('@kubernetes/client-node') | undefined;

/**
 * The library is loaded on first use, not at import: it costs about 75 MiB of RSS (measured:
 * 59 → 135 MiB in a bare Node 24), which a standalone agent, or one whose modules never talk
 * to an apiserver, should not pay. Node 24 `require`s the ES module synchronously.
 */
function loadClientNode(): typeof import('@kubernetes/client-node') {
  clientNode ??= createRequire(import.meta.url)('@kubernetes/client-node') as typeof import('@kubernetes/client-node');
  return clientNode;
}

/** Whether the library was loaded into this process (only for credentials that need it); for tests and status. */
export function clientNodeLoaded(): boolean {
  return clientNode !== undefined;
}
