import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** One upstream resolver and its health, as the forwarder's failover order sees it. */
export class Upstream {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** `host:port` (`[v6]:port`), for logs and metric labels. */
  readonly label: string;
  /** Consecutive failed attempts; two or more move this upstream to the back of the order. */
  failures = 0;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
    this.family = isIP(host) === 6 ? 6 : 4;
    this.label = this.family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  }

  get healthy(): boolean {
    return this.failures < 2;
  }
}

/** Parses `ip`, `ip:port`, `[ipv6]:port` or a bare IPv6 address; undefined if invalid. */
export function parseUpstream(text: string): Upstream | undefined {
  const s = text.trim();
  let host = s;
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1] ?? '';
    if (bracket[2]) port = Number(bracket[2]);
  } else if (s.split(':').length === 2) {
    const [h, p] = s.split(':');
    host = h ?? '';
    port = Number(p);
  }
  host = host.replace(/%.*$/, ''); // drop an IPv6 zone index
  if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return new Upstream(canonicalIP(host), port);
}

/** `nameserver` lines of a resolv.conf (resolv.conf(5)). */
export function readResolvConf(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1]) out.push(m[1]);
  }
  return out;
}

/** The same spelling Node gives in `rinfo.address`, so replies can be matched to their upstream. */
function canonicalIP(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
