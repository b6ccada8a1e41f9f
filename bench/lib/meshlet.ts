import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, Service, waitFor } from './proc.ts';

export type MeshletModule = 'dns' | 'proxy';

/**
 * Why meshlet cannot be benchmarked for a module, or undefined when it can: the module's
 * folder exists and src/agent/modules.ts starts it.
 */
export function moduleMissing(repo: string, module: MeshletModule): string | undefined {
  const modules = join(repo, 'src', 'agent', 'modules.ts');
  const wired = existsSync(modules) && readFileSync(modules, 'utf8').includes(`../../${module}/module.ts`);
  if (!existsSync(join(repo, module, 'module.ts')) || !wired) return `meshlet has no ${module} module yet`;
  return undefined;
}

export function meshletVersion(repo: string): string {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

export interface RunningMeshlet {
  service: Service;
  adminUrl: string;
  /** start → /readyz answering 200, ms. */
  readyMs: number;
}

/**
 * Starts `bin/meshlet agent` as its own process (so its CPU and memory are its own; the launcher
 * execs Node 24 from node_modules), and waits until /readyz answers 200.
 */
export async function startMeshlet(opts: {
  repo: string;
  name: string;
  config: string;
  sets: readonly string[];
  log: string;
  readyTimeoutMs?: number;
}): Promise<RunningMeshlet> {
  const adminPort = await freePort();
  // bin/meshlet, as a user runs it: Node 24 from node_modules and the process settings it exports.
  const launcher = join(opts.repo, 'bin', 'meshlet');
  const args = [
    'agent',
    '-c',
    opts.config,
    '--set',
    `admin.port=${adminPort}`,
    '--set',
    'log.level=warn',
    ...opts.sets.flatMap((s) => ['--set', s]),
  ];
  const t0 = performance.now();
  const service = new Service(opts.name, launcher, args, { log: opts.log, cwd: opts.repo });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  try {
    await waitFor(
      `${opts.name} /readyz`,
      async () => {
        const res = await fetch(`${adminUrl}/readyz`);
        await res.arrayBuffer();
        return res.status === 200;
      },
      { timeoutMs: opts.readyTimeoutMs ?? 60_000, intervalMs: 10, alive: () => service.assertAlive() },
    );
  } catch (err) {
    await service.stop();
    throw err;
  }
  return { service, adminUrl, readyMs: performance.now() - t0 };
}

/** The agent's registry version (updates delivered to its modules since start). */
export async function registryVersion(adminUrl: string): Promise<number> {
  const res = await fetch(`${adminUrl}/debug/status`);
  const body = (await res.json()) as { registry?: { version?: number } };
  return body.registry?.version ?? -1;
}
