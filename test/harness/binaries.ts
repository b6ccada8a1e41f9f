import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Paths of the pinned Kubernetes binaries that `scripts/build-k8s-binaries.sh` builds from Go
 * modules into `${MESHLET_BIN_CACHE:-$HOME/.cache/meshlet/bin}/current/<name>` (symlinks into
 * versioned directories). Nothing here checks that they exist: pass the paths a test needs to
 * `requireOrSkip(t, { executables: [...] })`, which skips on a laptop and fails in CI.
 */
export interface Binaries {
  /** The `current/` directory the paths below live in. */
  dir: string;
  kubeApiserver: string;
  kubectl: string;
  kubeControllerManager: string;
  etcd: string;
  helm: string;
}

/** The cache directory the build script writes to (MESHLET_BIN_CACHE overrides the default). */
export function binCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.MESHLET_BIN_CACHE;
  return override ? resolve(override) : join(homedir(), '.cache', 'meshlet', 'bin');
}

export function resolveBinaries(env: NodeJS.ProcessEnv = process.env): Binaries {
  const dir = join(binCacheDir(env), 'current');
  return {
    dir,
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubectl: join(dir, 'kubectl'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    etcd: join(dir, 'etcd'),
    helm: join(dir, 'helm'),
  };
}

/** The binaries for this process's environment. */
export const bins: Binaries = resolveBinaries();

export interface PinnedVersions {
  /** e.g. 'v1.37.2', as `kubectl version` prints it. */
  kubernetes: string;
  /** e.g. '3.6.16', as `etcd --version` prints it. */
  etcd: string;
  /** e.g. 'v3.22.0', as `helm version --short` prints it. */
  helm: string;
}

/**
 * The versions the build script pins, read from the script itself (its `K8S_VERSION=` etc.
 * lines) so there is one place to change them.
 */
export function pinnedVersions(
  script = fileURLToPath(new URL('../../scripts/build-k8s-binaries.sh', import.meta.url)),
): PinnedVersions {
  const text = readFileSync(script, 'utf8');
  const pin = (name: string): string => {
    const m = new RegExp(`^${name}=([0-9][0-9A-Za-z.+-]*)$`, 'm').exec(text);
    if (!m?.[1]) throw new Error(`${script}: no ${name}= line`);
    return m[1];
  };
  return { kubernetes: `v${pin('K8S_VERSION')}`, etcd: pin('ETCD_VERSION'), helm: `v${pin('HELM_VERSION')}` };
}
