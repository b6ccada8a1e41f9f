import { appendFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type ControlPlane, startControlPlane } from '../test/harness/control-plane.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { dnsperf, dnsperfArgs } from './lib/load.ts';
import { toolVersion } from './lib/machine.ts';
import { meshletVersion, moduleMissing, startMeshlet } from './lib/meshlet.ts';
import { which } from './lib/peers.ts';
import { commandLine, freePort, memoryOf, runOk, type Service, withCpu } from './lib/proc.ts';
import { generateServices, hostsFile, registryFile } from './lib/registry-gen.ts';
import { dnsmasqArgs, startCoreDNS, startDnsmasq } from './lib/servers.ts';

/**
 * DNS: dnsperf against meshlet, CoreDNS and dnsmasq, each answering the same cluster names
 * (100 services) and the same external names (100 names forwarded to one local upstream
 * dnsmasq, then cached). CoreDNS is configured like-for-like with `hosts` + `cache` +
 * `forward`, dnsmasq with `addn-hosts` + its cache + `server`. Then the same cluster names as a
 * cluster has them: the 100 Services in a real kube-apiserver (test/harness/control-plane.ts),
 * served by CoreDNS's `kubernetes` plugin (the Corefile of a kubeadm cluster) and by meshlet's
 * Kubernetes source.
 */

const SERVICES = 100;
const EXTERNAL = 100;
const EXTERNAL_ZONE = 'ext.bench.test';

function queryFile(names: readonly string[]): string {
  return `${names.map((n) => `${n} A`).join('\n')}\n`;
}

/** dnsperf at a fixed rate (-Q), verbose (-v): one line per answer with its latency. */
function fixedRateArgs(port: number, file: string, seconds: number, rate: number): string[] {
  return [...dnsperfArgs(port, file, seconds), '-Q', String(rate), '-v'];
}

/** dnsperf's default timeout: what a lost query counts as. */
const LOST_MS = 5000;

/** The generated services as Kubernetes objects: their namespaces, then ClusterIP Services (IPs allocated by the apiserver). */
function kubeServices(services: ReturnType<typeof generateServices>): string {
  const docs: string[] = [];
  for (const ns of new Set(services.map((s) => s.namespace)))
    docs.push(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n`);
  for (const s of services) {
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${s.name}\n  namespace: ${s.namespace}\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n`,
    );
  }
  return docs.join('---\n');
}

export interface FixedRateLatency {
  sent: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * p50/p99 from `dnsperf -v` output (`> NOERROR name A 0.000123` per answer). A lost query
 * counts as dnsperf's timeout (5 s), slower than every answer, so it can only raise them.
 */
export function parseFixedRate(out: string): FixedRateLatency {
  const latencies: number[] = [];
  for (const m of out.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)) latencies.push(Number(m[1]));
  const sent = Number(/Queries sent:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  if (!(sent > 0) || latencies.length === 0) throw new Error(`dnsperf -v output has no answers:\n${out.slice(-1500)}`);
  const sorted = Float64Array.from(latencies).sort();
  const lost = Math.max(0, sent - sorted.length);
  const at = (p: number) => {
    const rank = Math.ceil(p * sent) - 1;
    return rank < sorted.length ? (sorted[Math.max(0, rank)] as number) * 1000 : LOST_MS;
  };
  return { sent, lost, p50Ms: at(0.5), p99Ms: at(0.99) };
}

async function fixedRate(port: number, file: string, seconds: number, rate: number, rawLog: string): Promise<FixedRateLatency> {
  const args = fixedRateArgs(port, file, seconds, rate);
  // A line per answer (about 10 MB per run): to a file, parsed after dnsperf has exited.
  const out = await runOk(which('dnsperf') ?? 'dnsperf', args, {
    timeoutMs: (seconds + 30) * 1000,
    stdoutFile: join(dirname(rawLog), 'dnsperf-answers.txt'),
  });
  const r = parseFixedRate(out);
  // Only the summary goes to the raw log (the per-query lines are 100k+).
  const stats = out.slice(Math.max(0, out.indexOf('Statistics:')));
  appendFileSync(rawLog, `# ${new Date().toISOString()} ${commandLine('dnsperf', args)}\n${stats}\n# ${JSON.stringify(r)}\n`);
  return r;
}

/**
 * Two benchmarks from one plan: `dns` (each server's own data, no apiserver on the machine) and
 * `dns-k8s` (the same Services from a real kube-apiserver). They are apart because an idle
 * etcd + kube-apiserver on the same 2 cores cost the single-threaded servers 15–25% of their
 * rate (measured: meshlet 176–187k q/s alone, 138–162k with the control plane up), which would
 * blur the like-for-like comparison of the first.
 */
function dnsBenchmarkOf(kubernetes: boolean): Benchmark {
  return {
    name: kubernetes ? 'dns-k8s' : 'dns',
    title: kubernetes
      ? "DNS from a real apiserver: meshlet's Kubernetes source vs CoreDNS's kubernetes plugin (dnsperf)"
      : 'DNS: meshlet vs CoreDNS vs dnsmasq (dnsperf)',
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
      // The same 100 Services in a real apiserver, for the Kubernetes-fed contenders.
      const teardowns: (() => unknown)[] = [];
      const stopAll = async () => {
        for (const fn of teardowns.reverse()) await fn();
        await upstream.stop();
      };
      let cp: ControlPlane | undefined;
      if (kubernetes) {
        ctx.log('starting etcd + kube-apiserver with the same 100 Services (test/harness/control-plane.ts)');
        try {
          cp = await startControlPlane({ teardown: (fn) => teardowns.push(fn) });
          await cp.apply(kubeServices(services));
        } catch (err) {
          await stopAll();
          throw err;
        }
      }
      const kubeconfig = cp?.kubeconfigPath ?? '';
      const rawLog = join(dir, 'dnsperf.txt');
      const latencySeconds = ctx.quick ? 2 : 3;
      /**
       * The fixed rate for p50/p99, per query set: half of CoreDNS's peak, taken from its warm-up
       * measurement (the first CoreDNS figure of the run) and then the same for every contender
       * and round. Contenders measured before it in the warm-up round skip the latency run.
       */
      const rate: { cluster?: number; external?: number } = {};
      /** The plan's notes: the rates are added once known (the result is written after the run). */
      const notes: string[] = [];

      /** The query sets measured: the Kubernetes-fed servers answer cluster names only (forwarding is the same code). */
      const sets = kubernetes
        ? ([['cluster', clusterQueries]] as const)
        : ([
            ['cluster', clusterQueries],
            ['external', externalQueries],
          ] as const);
      /** The contender whose warm-up peak sets the fixed rate. */
      const ratePeer = kubernetes ? 'coredns-k8s' : 'coredns';
      /** Runs the query sets against a running server; figures per round. */
      const measure = async (name: string, port: number, service: Service): Promise<Record<string, number>> => {
        service.assertAlive();
        const figures: Record<string, number> = {};
        for (const [set, file] of sets) {
          const { result, cores } = await withCpu(service.pid, () => dnsperf(port, file, seconds, rawLog));
          figures[`${set}.qps`] = result.qps;
          figures[`${set}.latency`] = result.avgLatencyMs;
          figures[`${set}.cpu`] = cores;
        }
        if (name === ratePeer && rate.cluster === undefined) {
          for (const [set] of sets) rate[set] = Math.round((figures[`${set}.qps`] as number) / 2 / 1000) * 1000;
          const text = `fixed rates for p50/p99: ${sets.map(([set]) => `${set} ${rate[set]} q/s`).join(', ')} (half of CoreDNS's warm-up peak)`;
          ctx.log(text);
          notes.push(`${text.replace('fixed rates', 'Fixed rates')}.`);
        }
        for (const [set, file] of sets) {
          const r = rate[set];
          if (r === undefined) continue;
          const l = await fixedRate(port, file, latencySeconds, r, rawLog);
          figures[`${set}.p50`] = l.p50Ms;
          figures[`${set}.p99`] = l.p99Ms;
        }
        figures.rss = memoryOf(service.pid).rssMiB;
        return figures;
      };
      const instance = (name: string, service: Service, port: number): Instance => ({
        commands: [service.command],
        measure: () => measure(name, port, service),
        stop: () => service.stop(),
      });

      const coredns = ctx.coredns as string;
      /** meshlet with `source` (YAML under the key) and the shared upstream. */
      const meshlet = (name: string, label: string, source: string): ContenderDef => ({
        name,
        label,
        async start() {
          const port = await freePort();
          const config = join(dir, `${name}.yaml`);
          writeFileSync(config, `source:\n${source}`);
          const m = await startMeshlet({
            repo: ctx.repo,
            name,
            config,
            sets: [`dns.port=${port}`, `dns.upstreams=127.0.0.1:${upstreamPort}`, 'proxy.enabled=false'],
            log: join(dir, `${name}.log`),
          });
          return instance(name, m.service, port);
        },
      });
      /** CoreDNS answering cluster.local with `zone` (plugin lines), then cache and the shared upstream. */
      const coreDNS = (name: string, label: string, zone: string[]): ContenderDef => ({
        name,
        label,
        async start() {
          const port = await freePort();
          const corefile = [
            `.:${port} {`,
            '  bind 127.0.0.1',
            ...zone,
            '  cache 30',
            `  forward . 127.0.0.1:${upstreamPort}`,
            '}',
            '',
          ];
          const s = await startCoreDNS({ binary: coredns, dir, name, corefile: corefile.join('\n'), port, probe: probeCluster });
          return instance(name, s, port);
        },
      });
      const all: ContenderDef[] = [
        meshlet('meshlet', 'meshlet', `  kind: file\n  file:\n    path: ${registry}\n`),
        coreDNS('coredns', 'CoreDNS', [`  hosts ${hosts} cluster.local {`, '    ttl 5', '    no_reverse', '  }']),
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
            return instance('dnsmasq', s, port);
          },
        },
        meshlet(
          'meshlet-k8s',
          'meshlet, Kubernetes source',
          `  kind: kubernetes\n  kubernetes:\n    kubeconfig: ${kubeconfig}\n`,
        ),
        // kubeadm's Corefile, less the plugins that do not answer queries (errors, health, ready, prometheus, loop, reload, loadbalance).
        coreDNS('coredns-k8s', 'CoreDNS, kubernetes plugin', [
          '  kubernetes cluster.local in-addr.arpa ip6.arpa {',
          `    kubeconfig ${kubeconfig}`,
          '    pods insecure',
          '    fallthrough in-addr.arpa ip6.arpa',
          '    ttl 30',
          '  }',
        ]),
      ];
      // CoreDNS first among the Kubernetes-fed: its warm-up sets the fixed rate for both.
      const contenders = kubernetes ? [all[4], all[3]].filter((c): c is ContenderDef => c !== undefined) : all.slice(0, 3);

      notes.push(
        'Performance anchor: CoreDNS 1.15 (hosts + cache) measured about 73,000 q/s for one name with `dnsperf -c 10 -l 5` on this machine before (shared/reference/platform.md).',
        `dnsmasq runs with the same arguments as ${dnsmasqArgs(0, []).slice(0, 3).join(' ')} …; see the exact commands below.`,
      );
      const ratios: [string, string, string][] = [];
      if (kubernetes) {
        ratios.push(['cluster.qps', 'meshlet-k8s', 'coredns-k8s'], ['cluster.p99', 'meshlet-k8s', 'coredns-k8s']);
      } else {
        for (const metric of ['cluster.qps', 'external.qps', 'cluster.p99', 'external.p99']) {
          ratios.push([metric, 'meshlet', 'coredns'], [metric, 'meshlet', 'dnsmasq']);
        }
      }
      return {
        description:
          `dnsperf (10 clients, ${seconds} s per run, UDP on 127.0.0.1) against each server in turn. ` +
          `"cluster": A queries for ${SERVICES} service names (<svc>.<ns>.svc.cluster.local), answered from the server's own data. ` +
          `"external": A queries for ${EXTERNAL} names under ${EXTERNAL_ZONE}, forwarded once to a local upstream dnsmasq (TTL 300 s) and then answered from cache (the warm-up round fills it). ` +
          (kubernetes
            ? "The 100 Services are created in a real kube-apiserver (etcd + kube-apiserver 1.37, test/harness/control-plane.ts, on the same 2 cores; ClusterIPs allocated by it); meshlet runs with `source.kind: kubernetes`, CoreDNS with the `kubernetes` plugin of a kubeadm Corefile, both with the admin kubeconfig; cluster names only; the fixed rate is half of this CoreDNS's warm-up peak. "
            : 'No apiserver runs during this benchmark (see dns-k8s for the Kubernetes-fed servers). ') +
          "CPU is the server process tree's CPU time during the run (1.0 = one core); the load generator shares the same 2 cores. " +
          `p50/p99: dnsperf at a fixed rate (-Q) of half CoreDNS's peak for that query set (from its warm-up run, the same for every contender), ${latencySeconds} s per run, -v for each answer's latency (written to a file, read once dnsperf has exited, so the harness does not parse on the same cores during the run); a lost query counts as 5 s (dnsperf's timeout).`,
        metrics: [
          { key: 'cluster.qps', label: 'cluster names', unit: 'q/s', better: 'higher', chart: 'throughput' },
          { key: 'external.qps', label: 'external names (cached)', unit: 'q/s', better: 'higher', chart: 'throughput' },
          { key: 'cluster.latency', label: 'cluster avg', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
          { key: 'external.latency', label: 'external avg', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
          { key: 'cluster.p50', label: 'cluster p50 at fixed rate', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
          { key: 'cluster.p99', label: 'cluster p99 at fixed rate', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
          { key: 'external.p50', label: 'external p50 at fixed rate', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },
          { key: 'external.p99', label: 'external p99 at fixed rate', unit: 'ms', better: 'lower', chart: 'latency', digits: 3 },

          { key: 'cluster.cpu', label: 'CPU (cluster)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
          { key: 'external.cpu', label: 'CPU (external)', unit: 'cores', better: 'lower', chart: 'cpu', digits: 2 },
          { key: 'rss', label: 'RSS after the round', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
        ],
        contenders,
        ratios,
        loadCommands: [
          `dnsperf ${dnsperfArgs(0, clusterQueries, seconds).join(' ').replace('-p 0', '-p <port>')}`,
          `dnsperf ${dnsperfArgs(0, externalQueries, seconds).join(' ').replace('-p 0', '-p <port>')}`,
          `dnsperf ${fixedRateArgs(0, clusterQueries, latencySeconds, 0).join(' ').replace('-p 0', '-p <port>').replace('-Q 0', '-Q <half of CoreDNS peak>')}`,
          `dnsperf ${fixedRateArgs(0, externalQueries, latencySeconds, 0).join(' ').replace('-p 0', '-p <port>').replace('-Q 0', '-Q <half of CoreDNS peak>')}`,
          `upstream: ${upstream.command}`,
        ],
        versions: {
          meshlet: meshletVersion(ctx.repo),
          node: process.version,
          coredns: toolVersion(coredns, ['-version'], /CoreDNS-([\d.]+)/),
          dnsmasq: toolVersion(which('dnsmasq') ?? 'dnsmasq', ['--version'], /Dnsmasq version ([\d.]+)/),
          dnsperf: toolVersion('dnsperf', ['-h'], /Version ([\d.]+)/),
        },
        // The same array: the fixed rates are pushed once the warm-up has measured CoreDNS.
        notes,
        rounds: ctx.quick ? 2 : 5,
        warmup: 1,
        teardown: stopAll,
      };
    },
  };
}

export const dnsBenchmark = dnsBenchmarkOf(false);
export const dnsK8sBenchmark = dnsBenchmarkOf(true);
