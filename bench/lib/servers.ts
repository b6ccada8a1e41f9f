import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryA } from './dns-query.ts';
import { which } from './peers.ts';
import { Service, tcpOpen, waitFor } from './proc.ts';

/**
 * The peers and backends, each started in the foreground as a child process with its config
 * written next to its raw log. Every one listens on 127.0.0.1 only.
 */

function bin(name: string): string {
  const path = which(name);
  if (path === undefined) throw new Error(`${name} is not installed`);
  return path;
}

async function ready(service: Service, what: string, probe: () => Promise<boolean>): Promise<Service> {
  try {
    await waitFor(what, probe, { timeoutMs: 15_000, intervalMs: 20, alive: () => service.assertAlive() });
  } catch (err) {
    await service.stop();
    throw err;
  }
  return service;
}

/** A DNS server is ready when it answers `probeName` with at least one record. */
export function dnsReady(service: Service, port: number, probeName: string): Promise<Service> {
  return ready(service, `${service.name} answering ${probeName}`, async () => (await queryA(port, probeName, 300)) > 0);
}

export function startCoreDNS(opts: { binary: string; dir: string; name: string; corefile: string; port: number; probe: string }) {
  mkdirSync(opts.dir, { recursive: true });
  const conf = join(opts.dir, `${opts.name}.Corefile`);
  writeFileSync(conf, opts.corefile);
  const service = new Service(opts.name, opts.binary, ['-conf', conf], { log: join(opts.dir, `${opts.name}.log`) });
  return dnsReady(service, opts.port, opts.probe);
}

export function dnsmasqArgs(port: number, extra: readonly string[]): string[] {
  return [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--user=root',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    ...extra,
  ];
}

export function startDnsmasq(opts: { dir: string; name: string; port: number; extra: readonly string[]; probe: string }) {
  mkdirSync(opts.dir, { recursive: true });
  const service = new Service(opts.name, bin('dnsmasq'), dnsmasqArgs(opts.port, opts.extra), {
    log: join(opts.dir, `${opts.name}.log`),
  });
  return dnsReady(service, opts.port, opts.probe);
}

/** nginx in the foreground with its own prefix (pid, temp dirs, error log) under dir/name. */
export function startNginx(opts: { dir: string; name: string; http: string; port: number; workers?: number }) {
  const prefix = join(opts.dir, opts.name);
  mkdirSync(prefix, { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      `worker_processes ${opts.workers ?? 1};`,
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${prefix}/client_body;`,
      `  proxy_temp_path ${prefix}/proxy;`,
      `  fastcgi_temp_path ${prefix}/fastcgi;`,
      `  uwsgi_temp_path ${prefix}/uwsgi;`,
      `  scgi_temp_path ${prefix}/scgi;`,
      '  keepalive_requests 1000000;',
      opts.http,
      '}',
      '',
    ].join('\n'),
  );
  const service = new Service(opts.name, bin('nginx'), ['-p', prefix, '-c', conf, '-g', 'daemon off;'], {
    log: join(opts.dir, `${opts.name}.log`),
  });
  return ready(service, `${opts.name} on :${opts.port}`, () => tcpOpen(opts.port));
}

export function startHaproxy(opts: { dir: string; name: string; config: string; port: number }) {
  mkdirSync(opts.dir, { recursive: true });
  const conf = join(opts.dir, `${opts.name}.cfg`);
  writeFileSync(conf, opts.config);
  const service = new Service(opts.name, bin('haproxy'), ['-db', '-f', conf], { log: join(opts.dir, `${opts.name}.log`) });
  return ready(service, `${opts.name} on :${opts.port}`, () => tcpOpen(opts.port));
}

export function startIperf3Server(opts: { dir: string; port: number }) {
  const service = new Service('iperf3-server', bin('iperf3'), ['-s', '-B', '127.0.0.1', '-p', String(opts.port)], {
    log: join(opts.dir, 'iperf3-server.log'),
  });
  return ready(service, `iperf3 server on :${opts.port}`, () => tcpOpen(opts.port));
}
