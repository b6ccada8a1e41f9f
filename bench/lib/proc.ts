import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, createWriteStream, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Shell-quoted command line, as written into the results ("the exact command"). */
export function commandLine(cmd: string, args: readonly string[]): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`);
  return [cmd, ...args].map(quote).join(' ');
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  /**
   * Write stdout straight to this file (truncated first) and read it back once the command has
   * exited. For a load tool whose output is large and comes while it measures (dnsperf -v: a line
   * per answer): read through a pipe, this process would parse megabytes and collect garbage on
   * the same cores during the measurement.
   */
  stdoutFile?: string;
}

/** Runs a command to completion, killed after timeoutMs: no load loop can run unbounded. */
export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const outFd = opts.stdoutFile === undefined ? undefined : openSync(opts.stdoutFile, 'w');
    const child = spawn(cmd, args, {
      stdio: ['ignore', outFd ?? 'pipe', 'pipe'],
      ...(opts.cwd !== undefined && { cwd: opts.cwd }),
    });
    // The child has its own copy of the descriptor now.
    if (outFd !== undefined) closeSync(outFd);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (opts.stdoutFile !== undefined) stdout = readFileSync(opts.stdoutFile, 'utf8');
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** Runs a command and returns its stdout; throws with stderr on failure or timeout. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.timedOut) throw new Error(`${commandLine(cmd, args)} timed out after ${opts.timeoutMs} ms`);
  if (r.code !== 0) throw new Error(`${commandLine(cmd, args)} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-800)}`);
  return r.stdout;
}

/** A long-running server process (a contender or a backend), its output kept in a raw log. */
export class Service {
  readonly name: string;
  readonly command: string;
  readonly child: ChildProcess;
  readonly #log: string;
  #exited = false;
  #exitInfo = '';

  constructor(name: string, cmd: string, args: readonly string[], opts: { log: string; cwd?: string }) {
    this.name = name;
    this.command = commandLine(cmd, args);
    this.#log = opts.log;
    const out = createWriteStream(opts.log, { flags: 'a' });
    out.write(`# ${new Date().toISOString()} ${this.command}\n`);
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd !== undefined && { cwd: opts.cwd }) });
    this.child.stdout?.pipe(out);
    this.child.stderr?.pipe(out);
    this.child.on('exit', (code, signal) => {
      this.#exited = true;
      this.#exitInfo = `exited with ${signal ?? code}`;
    });
    this.child.on('error', (err) => {
      this.#exited = true;
      this.#exitInfo = err.message;
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start: ${this.#exitInfo}`);
    return this.child.pid;
  }

  /** Throws when the process has died (a benchmark must never measure a dead server). */
  assertAlive(): void {
    if (!this.#exited) return;
    let tail = '';
    try {
      const lines = readFileSync(this.#log, 'utf8')
        .split('\n')
        .filter((l) => /error/i.test(l));
      tail = lines.length > 0 ? `: ${(lines[lines.length - 1] as string).trim().slice(0, 300)}` : '';
    } catch {
      // no log yet
    }
    throw new Error(`${this.name} ${this.#exitInfo} (raw log ${this.#log})${tail}`);
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#exited || this.child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls `probe` until it returns true; throws after timeoutMs (or when `alive` throws). */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; alive?: () => void },
): Promise<number> {
  const start = performance.now();
  for (;;) {
    opts.alive?.();
    if (await probe().catch(() => false)) return performance.now() - start;
    if (performance.now() - start > opts.timeoutMs) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`);
    await sleep(opts.intervalMs ?? 20);
  }
}

export function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(500);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
    s.connect(port, host);
  });
}

/** A TCP port free on 127.0.0.1 right now (UDP on the same number is checked by the server that binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr !== null && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface Memory {
  /** Resident set size now, MiB. */
  rssMiB: number;
  /** Peak resident set size (VmHWM), MiB. */
  peakMiB: number;
}

/** RSS of one process from /proc/<pid>/status. */
export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** The process and its direct children (nginx's workers, for instance). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** CPU seconds (user + system) used so far by a process tree; the clock tick is 100 Hz on Linux. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // ended
    }
  }
  return ticks / 100;
}

/**
 * Measures the CPU a server tree uses while `load` runs: returns load's result and the
 * server's CPU use in cores (1.0 = one core busy for the whole run).
 */
export async function withCpu<T>(pid: number, load: () => Promise<T>): Promise<{ result: T; cores: number }> {
  const tree = processTree(pid);
  const cpu0 = cpuSeconds(tree);
  const t0 = performance.now();
  const result = await load();
  const seconds = (performance.now() - t0) / 1000;
  return { result, cores: (cpuSeconds(tree) - cpu0) / seconds };
}
