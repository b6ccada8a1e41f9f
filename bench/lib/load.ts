import { appendFileSync } from 'node:fs';
import { which } from './peers.ts';
import { commandLine, runOk } from './proc.ts';

/**
 * The load generators (dnsperf, wrk, iperf3), each bounded by its own duration flag and, as a
 * backstop, killed 30 s past it. Raw output is appended to `rawLog`.
 */

function tool(name: string): string {
  return which(name) ?? name;
}

async function bounded(name: string, args: string[], seconds: number, rawLog: string): Promise<string> {
  const out = await runOk(tool(name), args, { timeoutMs: (seconds + 30) * 1000 });
  appendFileSync(rawLog, `# ${new Date().toISOString()} ${commandLine(name, args)}\n${out}\n`);
  return out;
}

export interface DnsperfResult {
  qps: number;
  avgLatencyMs: number;
  lostPercent: number;
  noerrorPercent: number;
}

export function dnsperfArgs(port: number, file: string, seconds: number): string[] {
  return ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-c', '10', '-l', String(seconds)];
}

export function parseDnsperf(out: string): DnsperfResult {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    if (!m?.[1]) throw new Error(`dnsperf output has no ${re.source}:\n${out.slice(0, 1500)}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lostPercent: num(/Queries lost:\s+\d+ \(([\d.]+)%\)/),
    noerrorPercent:
      /NOERROR \d+ \(([\d.]+)%\)/.exec(out)?.[1] !== undefined ? Number(/NOERROR \d+ \(([\d.]+)%\)/.exec(out)?.[1]) : 0,
  };
}

export async function dnsperf(port: number, file: string, seconds: number, rawLog: string): Promise<DnsperfResult> {
  const r = parseDnsperf(await bounded('dnsperf', dnsperfArgs(port, file, seconds), seconds, rawLog));
  if (r.noerrorPercent < 99) throw new Error(`only ${r.noerrorPercent}% NOERROR answers from :${port} (see ${rawLog})`);
  return r;
}

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  errors: number;
}

export function wrkArgs(url: string, seconds: number, extra: readonly string[] = []): string[] {
  return ['-t1', '-c32', `-d${seconds}s`, '--latency', ...extra, url];
}

/** wrk prints durations as 812.00us, 1.23ms or 1.01s. */
function toMs(value: string, unit: string): number {
  const v = Number(value);
  if (unit === 'us') return v / 1000;
  if (unit === 'ms') return v;
  if (unit === 's') return v * 1000;
  if (unit === 'm') return v * 60_000;
  throw new Error(`unknown wrk unit ${unit}`);
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rps === undefined) throw new Error(`wrk output has no Requests/sec:\n${out.slice(0, 1500)}`);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m?.[1] !== undefined && m[2] !== undefined ? toMs(m[1], m[2]) : Number.NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = non2xx + (socket ? Number(socket[1]) + Number(socket[3]) + Number(socket[4]) : 0);
  return { rps: Number(rps), p50Ms: pct('50'), p90Ms: pct('90'), p99Ms: pct('99'), errors };
}

export async function wrk(url: string, seconds: number, rawLog: string, extra: readonly string[] = []): Promise<WrkResult> {
  return parseWrk(await bounded('wrk', wrkArgs(url, seconds, extra), seconds, rawLog));
}

export function iperf3Args(port: number, seconds: number, host = '127.0.0.1'): string[] {
  return ['-c', host, '-p', String(port), '-t', String(seconds), '-J'];
}

/** Received throughput, Gbit/s. */
export async function iperf3(port: number, seconds: number, rawLog: string, host = '127.0.0.1'): Promise<number> {
  const out = await bounded('iperf3', iperf3Args(port, seconds, host), seconds, rawLog);
  const json = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = json.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 reported no throughput: ${json.error ?? out.slice(0, 500)}`);
  return bps / 1e9;
}
