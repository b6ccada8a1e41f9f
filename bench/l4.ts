import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { meshletRegistry, NGINX_BACKEND } from './l7.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { iperf3, iperf3Args, wrk, wrkArgs } from './lib/load.ts';
import { toolVersion } from './lib/machine.ts';
import { meshletVersion, moduleMissing, startMeshlet } from './lib/meshlet.ts';
import { which } from './lib/peers.ts';
import { freePort, memoryOf, type Service, withCpu } from './lib/proc.ts';
import { startHaproxy, startIperf3Server, startNginx } from './lib/servers.ts';

interface Ports {
  iperf: number;
  web: number;
  /** Default 127.0.0.1. */
  host?: string;
  iperfHost?: string;
}

/** Cluster IPs of the kernel-forwarded contender (nothing else on this machine uses 198.19.255.0/24). */
const KERNEL_IPERF_IP = '198.19.255.11';
const KERNEL_WEB_IP = '198.19.255.12';

/** Kernel forwarding writes nat rules on this host: only as root with iptables-restore. */
function canWriteNat(): boolean {
  return process.getuid?.() === 0 && which('iptables-restore') !== undefined;
}

/**
 * L4 TCP: bulk throughput (iperf3, one stream) and connection rate (wrk with
 * `Connection: close`, so every request is a new TCP connection through the proxy), straight
 * to the backend (direct), through meshlet's TCP proxy and through haproxy in `mode tcp`.
 */

export const l4Benchmark: Benchmark = {
  name: 'l4',
  title: 'L4 TCP: direct vs meshlet vs haproxy (iperf3, connection rate)',
  debian: ['iperf3', 'wrk', 'nginx', 'haproxy'],
  coredns: false,
  unavailable: (repo) => moduleMissing(repo, 'proxy'),
  async plan(ctx: BenchContext): Promise<Plan> {
    const dir = ctx.rawDir;
    const seconds = ctx.quick ? 2 : 5;
    const rawIperf = join(dir, 'iperf3.json');
    const rawWrk = join(dir, 'wrk.txt');
    const iperfPort = await freePort();
    const webPort = await freePort();
    const iperfServer = await startIperf3Server({ dir, port: iperfPort });
    const web = await startNginx({
      dir,
      name: 'backend-nginx',
      port: webPort,
      http: NGINX_BACKEND.replace('PORT', String(webPort)),
    });
    const close = ['-H', 'Connection: close'];

    /** `host`: where the load goes (a cluster IP for the kernel-forwarded contender). */
    const measure = async (ports: Ports, service: Service | undefined) => {
      service?.assertAlive();
      const host = ports.host ?? '127.0.0.1';
      const cpu = async <T>(load: () => Promise<T>) =>
        service ? withCpu(service.pid, load) : { result: await load(), cores: Number.NaN };
      const bulk = await cpu(() => iperf3(ports.iperf, seconds, rawIperf, ports.iperfHost ?? host));
      const conns = await cpu(() => wrk(`http://${host}:${ports.web}/`, seconds, rawWrk, close));
      if (conns.result.errors > 0) throw new Error(`wrk saw ${conns.result.errors} errors through :${ports.web} (see ${rawWrk})`);
      return {
        gbps: bulk.result,
        'gbps.cpu': bulk.cores,
        cps: conns.result.rps,
        'cps.p99': conns.result.p99Ms,
        'cps.cpu': conns.cores,
        rss: service ? memoryOf(service.pid).rssMiB : Number.NaN,
      };
    };
    const instance = (ports: Ports, service: Service | undefined): Instance => ({
      commands: service ? [service.command] : [],
      measure: () => measure(ports, service),
      stop: async () => service?.stop(),
    });

    const contenders: ContenderDef[] = [
      { name: 'direct', label: 'direct (no proxy)', start: async () => instance({ iperf: iperfPort, web: webPort }, undefined) },
      {
        name: 'meshlet',
        label: 'meshlet',
        async start() {
          const ports = { iperf: await freePort(), web: await freePort() };
          const registry = join(dir, 'registry.yaml');
          writeFileSync(
            registry,
            meshletRegistry([
              { name: 'iperf', port: ports.iperf, backend: iperfPort, clusterIP: '198.18.0.11' },
              { name: 'tcp-web', port: ports.web, backend: webPort, appProtocol: 'tcp', clusterIP: '198.18.0.12' },
            ]),
          );
          const config = join(dir, 'meshlet.yaml');
          writeFileSync(config, `source:\n  kind: file\n  file:\n    path: ${registry}\n`);
          const m = await startMeshlet({
            repo: ctx.repo,
            name: 'meshlet',
            config,
            sets: ['dns.enabled=false', 'proxy.address=127.0.0.1', 'proxy.listenPort=service'],
            log: join(dir, 'meshlet.log'),
          });
          return instance(ports, m.service);
        },
      },
      ...(canWriteNat()
        ? [
            {
              name: 'meshlet-kernel',
              label: 'meshlet, kernel forwarding',
              async start() {
                const ports: Ports = {
                  iperf: await freePort(),
                  web: await freePort(),
                  iperfHost: KERNEL_IPERF_IP,
                  host: KERNEL_WEB_IP,
                };
                const registry = join(dir, 'registry-kernel.yaml');
                writeFileSync(
                  registry,
                  meshletRegistry([
                    { name: 'iperf', port: ports.iperf, backend: iperfPort, clusterIP: KERNEL_IPERF_IP },
                    { name: 'tcp-web', port: ports.web, backend: webPort, appProtocol: 'tcp', clusterIP: KERNEL_WEB_IP },
                  ]),
                );
                const config = join(dir, 'meshlet-kernel.yaml');
                writeFileSync(config, `source:\n  kind: file\n  file:\n    path: ${registry}\n`);
                // The agent writes (and on stop removes) its nat rules on this host: DNAT from the
                // cluster IPs straight to the backends on 127.0.0.1, as it would to pod IPs.
                const m = await startMeshlet({
                  repo: ctx.repo,
                  name: 'meshlet-kernel',
                  config,
                  sets: [
                    'dns.enabled=false',
                    'proxy.address=127.0.0.1',
                    'proxy.listenPort=auto',
                    'proxy.interception.mode=iptables',
                    'proxy.interception.createDummy=false',
                    'proxy.interception.interfaceName=lo',
                    'proxy.interception.tcpForwarding=kernel',
                  ],
                  log: join(dir, 'meshlet-kernel.log'),
                });
                return instance(ports, m.service);
              },
            } satisfies ContenderDef,
          ]
        : []),
      {
        name: 'haproxy',
        label: 'haproxy (mode tcp)',
        async start() {
          const ports = { iperf: await freePort(), web: await freePort() };
          const config = [
            'global',
            '  nbthread 1',
            '  maxconn 4000',
            'defaults',
            '  mode tcp',
            '  timeout connect 5s',
            '  timeout client 60s',
            '  timeout server 60s',
            `listen iperf\n  bind 127.0.0.1:${ports.iperf}\n  server s1 127.0.0.1:${iperfPort}`,
            `listen web\n  bind 127.0.0.1:${ports.web}\n  server s1 127.0.0.1:${webPort}`,
            '',
          ].join('\n');
          const s = await startHaproxy({ dir, name: 'haproxy', config, port: ports.web });
          return instance(ports, s);
        },
      },
    ];
    const ratios: [string, string, string][] = [
      ['gbps', 'meshlet', 'haproxy'],
      ['gbps', 'meshlet', 'direct'],
      ['gbps', 'haproxy', 'direct'],
      ['cps', 'meshlet', 'haproxy'],
      ['cps', 'meshlet', 'direct'],
      ['cps.p99', 'meshlet', 'haproxy'],
    ];
    if (canWriteNat())
      ratios.push(
        ['gbps', 'meshlet-kernel', 'direct'],
        ['cps', 'meshlet-kernel', 'direct'],
        ['gbps', 'meshlet-kernel', 'haproxy'],
      );
    return {
      description:
        `Throughput: iperf3, one TCP stream for ${seconds} s, to an iperf3 server on 127.0.0.1. ` +
        `Connection rate: wrk (1 thread, 32 connections, ${seconds} s) with "Connection: close", so each request opens a new TCP connection through the proxy, to one nginx worker. ` +
        "meshlet proxies both as opaque TCP (no appProtocol http); haproxy runs in mode tcp with one thread, like meshlet's one event loop. " +
        `"meshlet, kernel forwarding": the same two services with \`proxy.interception.tcpForwarding: kernel\` and interception on (as root, on this host's nat table, removed when the agent stops): iperf3 and wrk connect to cluster IPs ${KERNEL_IPERF_IP} and ${KERNEL_WEB_IP}, which iptables DNATs straight to the backends; meshlet only writes the rules, so its CPU is about 0 and the forwarding cost is the kernel's, counted in no process. ` +
        "CPU is the proxy process tree's CPU time during the run (1.0 = one core).",
      metrics: [
        { key: 'gbps', label: 'iperf3 throughput', unit: 'Gbit/s', better: 'higher', chart: 'throughput', digits: 2 },
        { key: 'cps', label: 'new connections/s', unit: 'conn/s', better: 'higher', chart: 'throughput' },
        { key: 'cps.p99', label: 'p99 request (new connection)', unit: 'ms', better: 'lower', chart: 'latency', digits: 2 },
        { key: 'gbps.cpu', label: 'proxy CPU (iperf3)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
        { key: 'cps.cpu', label: 'proxy CPU (connections)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
        { key: 'rss', label: 'proxy RSS after the round', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
      ],
      contenders,
      ratios,
      loadCommands: [
        `iperf3 ${iperf3Args(0, seconds).join(' ').replace('-p 0', '-p <port>')}`,
        `wrk ${wrkArgs('http://127.0.0.1:<port>/', seconds, close).join(' ').replace('Connection: close', "'Connection: close'")}`,
        `backends: ${iperfServer.command}; ${web.command}`,
        `kernel forwarding: iperf3 ${iperf3Args(0, seconds, KERNEL_IPERF_IP).join(' ').replace('-p 0', '-p <port>')}; wrk … http://${KERNEL_WEB_IP}:<port>/`,
      ],
      versions: {
        meshlet: meshletVersion(ctx.repo),
        node: process.version,
        haproxy: toolVersion(which('haproxy') ?? 'haproxy', ['-v'], /HAProxy version (\S+)/),
        iperf3: toolVersion('iperf3', ['--version'], /iperf (\S+)/),
        wrk: toolVersion('wrk', ['-v'], /wrk (\S+)/),
        nginx: toolVersion(which('nginx') ?? 'nginx', ['-v'], /nginx\/([\d.]+)/),
      },
      notes: [
        'Anchor measured here before (platform.md): iperf3 direct 21–23 Gbit/s; a plain Node 24 socket.pipe() proxy 6.7–9.5 Gbit/s (0.30–0.45× direct).',
      ],
      rounds: ctx.quick ? 2 : 5,
      warmup: 1,
      teardown: async () => {
        await web.stop();
        await iperfServer.stop();
      },
    };
  },
};
