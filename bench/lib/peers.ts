import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { runOk } from './proc.ts';

/** The Debian package that provides each peer or load tool, by the binary the benchmarks call. */
export const DEBIAN_PACKAGES = {
  nginx: 'nginx-light',
  haproxy: 'haproxy',
  dnsmasq: 'dnsmasq-base',
  dnsperf: 'dnsperf',
  wrk: 'wrk',
  iperf3: 'iperf3',
} as const;

export type DebianTool = keyof typeof DEBIAN_PACKAGES;

const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** Absolute path of a binary on PATH or in an sbin directory (nginx, haproxy, dnsmasq live there). */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Makes sure every tool is installed: missing ones are installed with apt-get when running as
 * root on Debian, else the run stops with the exact command to run.
 */
export async function ensureDebianTools(tools: readonly DebianTool[], log: (msg: string) => void): Promise<void> {
  const missing = [...new Set(tools)].filter((t) => which(t) === undefined);
  if (missing.length === 0) return;
  const packages = missing.map((t) => DEBIAN_PACKAGES[t]);
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || which('apt-get') === undefined) {
    throw new Error(`missing ${missing.join(', ')}: install them with  sudo apt-get install -y ${packages.join(' ')}`);
  }
  log(`installing ${packages.join(' ')} with apt-get ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], {
      stdio: 'inherit',
      env,
      timeout: 600_000,
    });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 600_000 });
    install();
  }
  const still = missing.filter((t) => which(t) === undefined);
  if (still.length > 0) throw new Error(`apt-get ran but ${still.join(', ')} is still missing`);
}

/** Builds (or finds cached) a pinned Go tool with scripts/build-go-tool.sh; returns its path. */
async function ensureGoTool(repo: string, tool: 'coredns' | 'vegeta', log: (msg: string) => void): Promise<string> {
  const cache = process.env.MESHLET_BIN_CACHE ?? join(homedir(), '.cache', 'meshlet', 'bin');
  const path = join(cache, 'current', tool);
  log(`checking ${tool} (scripts/build-go-tool.sh ${tool}; a cold build takes a minute or a few) ...`);
  const out = await runOk(join(repo, 'scripts', 'build-go-tool.sh'), [tool], { timeoutMs: 1_200_000 });
  for (const line of out.trim().split('\n')) log(line);
  if (!existsSync(path)) throw new Error(`scripts/build-go-tool.sh ${tool} did not leave ${path}`);
  return path;
}

/** The pinned CoreDNS, the DNS peer. */
export function ensureCoreDNS(repo: string, log: (msg: string) => void): Promise<string> {
  return ensureGoTool(repo, 'coredns', log);
}

/** The pinned vegeta, the EAA benchmark's load generator. */
export function ensureVegeta(repo: string, log: (msg: string) => void): Promise<string> {
  return ensureGoTool(repo, 'vegeta', log);
}
