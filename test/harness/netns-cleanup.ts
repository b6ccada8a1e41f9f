import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Cleanup for the network-namespace topology fixture (netns.ts), kept apart so it can also run
 * on its own:
 *
 *   node test/harness/netns-cleanup.ts            # remove what runs whose process is gone left behind
 *   node test/harness/netns-cleanup.ts --all      # remove every ml-* run, live ones too (by hand only)
 *   node test/harness/netns-cleanup.ts --watch P  # watchdog: when stdin closes without "done", remove run P
 *
 * Everything a run makes is named after its run prefix `ml-<pid>-<n>`: namespaces
 * `ml-<pid>-<n>-<role>` (in /run/netns), `/etc/netns/ml-<pid>-<n>-<role>/` and
 * `/run/meshlet-netns/ml-<pid>-<n>/`. Links live only inside those namespaces and iptables rules
 * only in their own tables, so deleting the namespaces (after killing their processes) removes them.
 */

export const RUN_PREFIX_RE = /^(ml-(\d+)-(\d+))-[a-z0-9]+$/;
export const ETC_NETNS = '/etc/netns';
export const STATE_ROOT = '/run/meshlet-netns';

/** Absolute path of an sbin tool even when PATH lacks /usr/sbin (as a non-login shell's may). */
export function tool(cmd: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    try {
      accessSync(`${dir}/${cmd}`, constants.X_OK);
      return `${dir}/${cmd}`;
    } catch {}
  }
  return cmd;
}

function ipSync(args: string[]): string {
  return execFileSync(tool('ip'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

/** Names of all named network namespaces (`ip netns list`). */
export function listNetns(): string[] {
  let out = '';
  try {
    out = ipSync(['netns', 'list']);
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Pids of the processes in a namespace (`ip netns pids`); empty when it is gone. */
export function netnsPids(netns: string): number[] {
  try {
    return ipSync(['netns', 'pids', netns])
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function entriesOf(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Removes everything of run `prefix` (e.g. `ml-1234-0`), synchronously: SIGKILLs every process in
 * its namespaces (a few rounds, for processes that fork meanwhile), deletes the namespaces (which
 * destroys their veths, bridge and iptables rules) and removes its /etc/netns and state directories.
 * Idempotent; never throws.
 */
export function removeRun(prefix: string): void {
  const mine = (name: string) => name.startsWith(`${prefix}-`);
  const namespaces = listNetns().filter(mine);
  for (let round = 0; round < 5; round++) {
    let killed = 0;
    for (const ns of namespaces) {
      for (const pid of netnsPids(ns)) {
        try {
          process.kill(pid, 'SIGKILL');
          killed++;
        } catch {}
      }
    }
    if (killed === 0) break;
    sleepSync(50);
  }
  for (const ns of namespaces) {
    try {
      ipSync(['netns', 'del', ns]);
    } catch {}
  }
  for (const entry of entriesOf(ETC_NETNS).filter(mine)) rmSync(`${ETC_NETNS}/${entry}`, { recursive: true, force: true });
  rmSync(`${STATE_ROOT}/${prefix}`, { recursive: true, force: true });
}

/** Run prefixes (`ml-<pid>-<n>`) that have anything left on this machine, with their pid. */
export function leftoverRuns(): Map<string, number> {
  const runs = new Map<string, number>();
  const names = [...listNetns(), ...entriesOf(ETC_NETNS)];
  for (const name of names) {
    const m = RUN_PREFIX_RE.exec(name);
    if (m?.[1] && m[2]) runs.set(m[1], Number(m[2]));
  }
  for (const name of entriesOf(STATE_ROOT)) {
    const m = /^(ml-(\d+)-\d+)$/.exec(name);
    if (m?.[1] && m[2]) runs.set(m[1], Number(m[2]));
  }
  return runs;
}

/** Removes the leftovers of every run whose process no longer exists; returns their prefixes. */
export function sweepDeadRuns(): string[] {
  const removed: string[] = [];
  for (const [prefix, pid] of leftoverRuns()) {
    if (pid === process.pid || pidAlive(pid)) continue;
    removeRun(prefix);
    removed.push(prefix);
  }
  return removed;
}

/** The watchdog: removes run `prefix` once stdin closes (its creator died) unless told "done" first. */
function watch(prefix: string): void {
  let done = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    if (chunk.includes('done')) done = true;
  });
  const finish = () => {
    if (!done) removeRun(prefix);
    process.exit(0);
  };
  process.stdin.on('end', finish);
  process.stdin.on('close', finish);
  process.stdin.on('error', finish);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [flag, arg] = process.argv.slice(2);
  if (flag === '--watch' && arg && /^ml-\d+-\d+$/.test(arg)) {
    watch(arg);
  } else if (flag === '--all') {
    for (const prefix of leftoverRuns().keys()) removeRun(prefix);
  } else if (flag === undefined) {
    const removed = sweepDeadRuns();
    console.log(removed.length ? `removed ${removed.join(' ')}` : 'nothing left behind');
  } else {
    console.error('usage: netns-cleanup.ts [--all | --watch ml-<pid>-<n>]');
    process.exit(2);
  }
}
