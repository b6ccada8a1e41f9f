import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeConnectionOptions } from './connection.ts';

/**
 * Where meshlet looks for credentials, in order: the configured kubeconfig; in a pod (and
 * without $KUBECONFIG) the service account; else $KUBECONFIG or ~/.kube/config. Loads them into
 * `kc` (and picks the context) and says where they came from. Shared by the child-process
 * resolver and the in-process fallback (connection.ts), so both find the same credentials.
 */
export function loadKubeConfig(kc: KubeConfig, opts: KubeConnectionOptions): string {
  let how: string;
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
  return how;
}
