import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { KubeConnection } from '../kube/connection.ts';
import { KubeStatusError, kubeRequest } from '../kube/http.ts';

export const CRD_PATH = fileURLToPath(new URL('./crd/edgenode.yaml', import.meta.url));
const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

interface Crd {
  metadata: { name: string; resourceVersion?: string };
  spec: unknown;
  status?: { conditions?: { type: string; status: string }[] };
}

export function loadCrd(): Crd {
  return parseYaml(readFileSync(CRD_PATH, 'utf8')) as Crd;
}

/** Creates or updates the EdgeNode CRD and waits (bounded) until it is Established. */
export async function installCrd(conn: KubeConnection, timeoutMs = 20_000): Promise<void> {
  const crd = loadCrd();
  const path = `${CRDS}/${crd.metadata.name}`;
  try {
    try {
      await kubeRequest(conn, 'POST', CRDS, crd);
    } catch (err) {
      if (!(err instanceof KubeStatusError && err.status === 409)) throw err;
      const current = await kubeRequest<Crd>(conn, 'GET', path);
      await kubeRequest(conn, 'PUT', path, { ...current, spec: crd.spec });
    }
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
      const got = await kubeRequest<Crd>(conn, 'GET', path);
      if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`not Established within ${timeoutMs} ms`);
  } catch (err) {
    throw new MeshletError(ErrorCodes.CONTROLLER_CRD, `cannot install the EdgeNode CRD: ${errorMessage(err)}`, { cause: err });
  }
}
