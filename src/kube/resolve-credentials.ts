/**
 * Run as a short-lived child process by connection.ts: loads a kubeconfig (or the in-cluster
 * service account) with @kubernetes/client-node and prints what a request needs as JSON on
 * stdout, then exits. The library costs about 80 MiB of RSS that a long-running agent never
 * gives back; in a child it is paid for a fraction of a second.
 *
 * Input (stdin): KubeConnectionOptions as JSON. Output: ResolvedCredentials as JSON, or an
 * error message on stderr and exit code 2.
 */
import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeConnectionOptions, ResolvedCredentials } from './connection.ts';
import { loadKubeConfig } from './kubeconfig-load.ts';

async function resolve(opts: KubeConnectionOptions): Promise<ResolvedCredentials> {
  const kc = new KubeConfig();
  const how = loadKubeConfig(kc, opts);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const context = kc.getCurrentContext();
  if (!cluster?.server) throw new Error(`no apiserver address in ${how} (context "${context}")`);
  const provider = user?.authProvider as { name?: string; config?: { tokenFile?: string } } | undefined;
  const tokenFile = provider?.name === 'tokenFile' ? provider.config?.tokenFile : undefined;
  // Exec plugins, other auth providers (OIDC, cloud) and proxies keep state or objects that do
  // not fit in JSON: the parent then keeps the library in process.
  const inProcess = Boolean(user?.exec) || (provider !== undefined && tokenFile === undefined) || Boolean(cluster.proxyUrl);
  const options: RequestOptions = {};
  if (!inProcess) await kc.applyToHTTPSOptions(options);
  const b64 = (v: unknown): string => Buffer.from(v as string | Buffer).toString('base64');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.headers ?? {})) if (typeof v === 'string') headers[k] = v;
  return {
    server: cluster.server,
    how,
    context,
    inProcess,
    ...(options.ca != null && { ca: b64(options.ca) }),
    ...(options.cert != null && { cert: b64(options.cert) }),
    ...(options.key != null && { key: b64(options.key) }),
    ...(options.servername !== undefined && { servername: options.servername }),
    ...(options.rejectUnauthorized !== undefined && { rejectUnauthorized: options.rejectUnauthorized }),
    ...(typeof options.auth === 'string' && { auth: options.auth }),
    ...(tokenFile !== undefined && { tokenFile }),
    headers,
  };
}

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
try {
  const out = await resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeConnectionOptions);
  process.stdout.write(JSON.stringify(out));
} catch (err) {
  process.stderr.write(err instanceof Error ? err.message : String(err));
  process.exitCode = 2;
}
