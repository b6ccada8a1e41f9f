import type { RequestOptions } from 'node:https';
import { createRequire } from 'node:module';
import type { KubeConfig as KubeConfigType } from '@kubernetes/client-node';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';

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

/**
 * Loads credentials with @kubernetes/client-node's KubeConfig (kubeconfig parsing, exec and
 * token auth, in-cluster service-account files are not meshlet's job), and nothing else of it:
 * list and watch are meshlet's own (src/kube/reflector.ts).
 */
export function createKubeConnection(opts: KubeConnectionOptions): KubeConnection {
  const kc: KubeConfigType = new (loadClientNode().KubeConfig)();
  let how: string;
  try {
    if (opts.kubeconfig) {
      kc.loadFromFile(opts.kubeconfig);
      how = opts.kubeconfig;
    } else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) {
      kc.loadFromCluster();
      how = 'in-cluster config';
    } else {
      kc.loadFromDefault();
      how = process.env.KUBECONFIG ?? '~/.kube/config';
    }
    if (opts.context) kc.setCurrentContext(opts.context);
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
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch (err) {
    throw new MeshletError(ErrorCodes.KUBE_CONFIG, `apiserver address "${cluster.server}" in ${how} is not a URL`, {
      cause: err,
    });
  }
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
