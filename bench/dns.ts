import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { dnsperf, dnsperfArgs } from './lib/load.ts';
import { toolVersion } from './lib/machine.ts';
import { meshletVersion, moduleMissing, startMeshlet } from './lib/meshlet.ts';
import { which } from './lib/peers.ts';
import { freePort, memoryOf, type Service, withCpu } from './lib/proc.ts';
import { generateServices, hostsFile, registryFile } from './lib/registry-gen.ts';
import { dnsmasqArgs, startCoreDNS, startDnsmasq } from './lib/servers.ts';

/**
 * DNS: dnsperf against meshlet, CoreDNS and dnsmasq, each answering the same cluster names
 * (100 services) and the same external names (100 names forwarded to one local upstream
 * dnsmasq, then cached). CoreDNS is configured like-for-like with `hosts` + `cache` +
 * `forward`, dnsmasq with `addn-hosts` + its cache + `server`.
 */

const SERVICES = 100;
const EXTERNAL = 100;
const EXTERNAL_ZONE = 'ext.bench.test';

function queryFile(names: readonly string[]): string {
  return `${names.map((n) => `${n} A`).join('\n')}\n`;
}

export const dnsBenchmark: Benchmark = {
  name: 'dns',
  title: 'DNS: meshlet vs CoreDNS vs dnsmasq (dnsperf)',
  debian: ['dnsperf', 'dnsmasq'],
  coredns: true,
  unavailable: (repo) => moduleMissing(repo, 'dns'),
  async plan(ctx: BenchContext): Promise<Plan> {
    const dir = ctx.rawDir;
    const seconds = ctx.quick ? 2 : 5;
    const services = generateServices(SERVICES, 2);
    const clusterNames = services.map((s) => `${s.name}.${s.namespace}.svc.cluster.local`);
    const externalNames = Array.from({ length: EXTERNAL }, (_, i) => `host-${i}.${EXTERNAL_ZONE}`);
    const clusterQueries = join(dir, 'cluster.queries');
    const externalQueries = join(dir, 'external.queries');
    const hosts = join(dir, 'cluster.hosts');
    const registry = join(dir, 'registry.yaml');
    writeFileSync(clusterQueries, queryFile(clusterNames));
    writeFileSync(externalQueries, queryFile(externalNames));
    writeFileSync(hosts, hostsFile(services, false));
    writeFileSync(registry, registryFile(services));
    const probeCluster = clusterNames[0] as string;
    const probeExternal = externalNames[0] as string;

    // The "internet": one local dnsmasq answering every *.ext.bench.test name, TTL 300 s.
    const upstreamPort = await freePort();
    const upstream = await startDnsmasq({
      dir,
      name: 'upstream-dnsmasq',
      port: upstreamPort,
      extra: [`--address=/${EXTERNAL_ZONE}/198.18.255.1`, '--local-ttl=300'],
      probe: probeExternal,
    });
    const rawLog = join(dir, 'dnsperf.txt');

    /** Runs both query sets against a running server; figures per round. */
    const measure = async (port: number, service: Service): Promise<Record<string, number>> => {
      service.assertAlive();
      const cluster = await withCpu(service.pid, () => dnsperf(port, clusterQueries, seconds, rawLog));
      const external = await withCpu(service.pid, () => dnsperf(port, externalQueries, seconds, rawLog));
      return {
        'cluster.qps': cluster.result.qps,
        'cluster.latency': cluster.result.avgLatencyMs,
        'cluster.cpu': cluster.cores,
        'external.qps': external.result.qps,
        'external.latency': external.result.avgLatencyMs,
        'external.cpu': external.cores,
        rss: memoryOf(service.pid).rssMiB,
      };
    };
    const instance = (service: Service, port: number): Instance => ({
      commands: [service.command],
      measure: () => measure(port, service),
      stop: () => service.stop(),
    });

    const coredns = ctx.coredns as string;
    const contenders: ContenderDef[] = [
      {
        name: 'meshlet',
        label: 'meshlet',
        async start() {
          const port = await freePort();
          const config = join(dir, 'meshlet.yaml');
          writeFileSync(config, `source:\n  kind: file\n  file:\n    path: ${registry}\n`);
          const m = await startMeshlet({
            repo: ctx.repo,
            name: 'meshlet',
            config,
            sets: [`dns.port=${port}`, `dns.upstreams=127.0.0.1:${upstreamPort}`, 'proxy.enabled=false'],
            log: join(dir, 'meshlet.log'),
          });
          return instance(m.service, port);
        },
      },
      {
        name: 'coredns',
        label: 'CoreDNS',
        async start() {
          const port = await freePort();
          const corefile = [
            `.:${port} {`,
            '  bind 127.0.0.1',
            `  hosts ${hosts} cluster.local {`,
            '    ttl 5',
            '    no_reverse',
            '  }',
            '  cache 30',
            `  forward . 127.0.0.1:${upstreamPort}`,
            '}',
            '',
          ].join('\n');
          const s = await startCoreDNS({ binary: coredns, dir, name: 'coredns', corefile, port, probe: probeCluster });
          return instance(s, port);
        },
      },
      {
        name: 'dnsmasq',
        label: 'dnsmasq',
        async start() {
          const port = await freePort();
          const s = await startDnsmasq({
            dir,
            name: 'dnsmasq',
            port,
            extra: [
              `--addn-hosts=${hosts}`,
              `--server=127.0.0.1#${upstreamPort}`,
              '--cache-size=10000',
              '--local-ttl=5',
              '--dns-forward-max=1000',
            ],
            probe: probeCluster,
          });
          return instance(s, port);
        },
      },
    ];

    const ratios: [string, string, string][] = [];
    for (const metric of ['cluster.qps', 'external.qps', 'cluster.latency', 'external.latency']) {
      ratios.push([metric, 'meshlet', 'coredns'], [metric, 'meshlet', 'dnsmasq']);
    }
    return {
      description:
        `dnsperf (10 clients, ${seconds} s per run, UDP on 127.0.0.1) against each server in turn. ` +
        `"cluster": A queries for ${SERVICES} service names (<svc>.<ns>.svc.cluster.local), answered from the server's own data. ` +
        `"external": A queries for ${EXTERNAL} names under ${EXTERNAL_ZONE}, forwarded once to a local upstream dnsmasq (TTL 300 s) and then answered from cache (the warm-up round fills it). ` +
        "CPU is the server process tree's CPU time during the run (1.0 = one core); the load generator shares the same 2 cores.",
      metrics: [
        { key: 'cluster.qps', label: 'cluster names', unit: 'q/s', better: 'higher', chart: 'throughput' },
        { key: 'external.qps', label: 'external names (cached)', unit: 'q/s', better: 'higher', chart: 'throughput' },
        { key: 'cluster.latency', label: 'cluster avg', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
        { key: 'external.latency', label: 'external avg', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
        { key: 'cluster.cpu', label: 'CPU (cluster)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
        { key: 'external.cpu', label: 'CPU (external)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
        { key: 'rss', label: 'RSS after the round', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
      ],
      contenders,
      ratios,
      loadCommands: [
        `dnsperf ${dnsperfArgs(0, clusterQueries, seconds).join(' ').replace('-p 0', '-p <port>')}`,
        `dnsperf ${dnsperfArgs(0, externalQueries, seconds).join(' ').replace('-p 0', '-p <port>')}`,
        `upstream: ${upstream.command}`,
      ],
      versions: {
        meshlet: meshletVersion(ctx.repo),
        node: process.version,
        coredns: toolVersion(coredns, ['-version'], /CoreDNS-([\d.]+)/),
        dnsmasq: toolVersion(which('dnsmasq') ?? 'dnsmasq', ['--version'], /Dnsmasq version ([\d.]+)/),
        dnsperf: toolVersion('dnsperf', ['-h'], /Version ([\d.]+)/),
      },
      notes: [
        'Performance anchor: CoreDNS 1.15 (hosts + cache) measured about 73,000 q/s for one name with `dnsperf -c 10 -l 5` on this machine before (shared/reference/platform.md).',
        `dnsmasq runs with the same arguments as ${dnsmasqArgs(0, []).slice(0, 3).join(' ')} …; see the exact commands below.`,
      ],
      rounds: ctx.quick ? 2 : 5,
      warmup: 1,
      teardown: () => upstream.stop(),
    };
  },
};
