import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryA } from './lib/dns-query.ts';
import type { BenchContext, Benchmark, ContenderDef, Instance, Plan } from './lib/harness.ts';
import { toolVersion } from './lib/machine.ts';
import { meshletVersion, moduleMissing, registryVersion, startMeshlet } from './lib/meshlet.ts';
import { commandLine, freePort, memoryOf, Service, waitFor } from './lib/proc.ts';
import { type GeneratedService, generateServices, hostsFile, registryFile } from './lib/registry-gen.ts';
import { dnsReady } from './lib/servers.ts';

/**
 * The agent's memory: idle with the standalone example, and with 1,000 services and 10,000
 * endpoints in its registry (plus how long a registry update takes at that size). Each round
 * starts every contender afresh, waits until it is ready, lets it settle, then reads VmRSS.
 *
 * Peers: a bare Node 24 process (the floor any Node sidecar starts from) and CoreDNS, the
 * reference node-local sidecar, idle and holding the same 11,000 names in a hosts file.
 */

const SERVICES = 1000;
const PER_SERVICE = 10;

export const memoryBenchmark: Benchmark = {
  name: 'memory',
  title: 'Agent memory: idle, and with 1,000 services / 10,000 endpoints',
  debian: [],
  coredns: true,
  unavailable: () => undefined,
  async plan(ctx: BenchContext): Promise<Plan> {
    const dir = ctx.rawDir;
    const settleMs = ctx.quick ? 1500 : 3000;
    const updates = ctx.quick ? 3 : 5;
    const hasDns = moduleMissing(ctx.repo, 'dns') === undefined;
    const hasProxy = moduleMissing(ctx.repo, 'proxy') === undefined;
    const node = join(ctx.repo, 'node_modules', '.bin', 'node');
    const coredns = ctx.coredns as string;

    // Idle: the standalone example as shipped, only its ports moved (admin, dns) or picked by
    // the OS (proxy.listenPort=auto), so it runs beside anything on this machine.
    const example = join(dir, 'standalone.yaml');
    copyFileSync(join(ctx.repo, 'examples', 'standalone.yaml'), example);
    copyFileSync(join(ctx.repo, 'examples', 'standalone-registry.yaml'), join(dir, 'standalone-registry.yaml'));

    const large = generateServices(SERVICES, PER_SERVICE);
    const largeRegistry = join(dir, 'registry-1k.yaml');
    writeFileSync(largeRegistry, registryFile(large));
    const largeConfig = join(dir, 'meshlet-1k.yaml');
    writeFileSync(largeConfig, `source:\n  kind: file\n  file:\n    path: ${largeRegistry}\n    debounceMs: 0\n`);
    const hostsIdle = join(dir, 'idle.hosts');
    writeFileSync(hostsIdle, '198.19.0.10 web.default.svc.cluster.local\n');
    const hostsLarge = join(dir, 'large.hosts');
    writeFileSync(hostsLarge, hostsFile(large, true));
    const probeLarge = `${large[0]?.name}.${large[0]?.namespace}.svc.cluster.local`;

    const settleAndRead = async (service: Service) => {
      await sleep(settleMs);
      service.assertAlive();
      return memoryOf(service.pid);
    };

    /**
     * Adds one service to the 1k registry (written to a temp file and renamed, as a careful
     * tool would) and times until the agent has applied it: until its DNS answers the new
     * name, or, without a dns module, until the registry version moves.
     */
    const timeUpdate = async (adminUrl: string, dnsPort: number, k: number): Promise<number> => {
      const extra: GeneratedService = {
        name: `added-${k}`,
        namespace: 'ns-0',
        clusterIP: `198.18.250.${(k % 250) + 1}`,
        endpoints: [{ address: '198.19.250.1', hostname: 'pod-0' }],
      };
      const v0 = await registryVersion(adminUrl);
      const tmp = `${largeRegistry}.tmp`;
      writeFileSync(tmp, registryFile([...large, extra]));
      const t0 = performance.now();
      renameSync(tmp, largeRegistry);
      const probe = hasDns
        ? async () => (await queryA(dnsPort, `added-${k}.ns-0.svc.cluster.local`, 200)) > 0
        : async () => (await registryVersion(adminUrl)) > v0;
      await waitFor(`update ${k} applied`, probe, { timeoutMs: 30_000, intervalMs: 2 });
      return performance.now() - t0;
    };

    const coreFile = (port: number, hosts: string) =>
      [
        `.:${port} {`,
        '  bind 127.0.0.1',
        `  hosts ${hosts} cluster.local {`,
        '    no_reverse',
        '  }',
        '  cache 30',
        '  forward . 127.0.0.1:9',
        '}',
        '',
      ].join('\n');

    /** A contender whose every measurement is a fresh process: start, settle, read, stop. */
    const fresh = (name: string, label: string, once: (commands: string[]) => Promise<Record<string, number>>): ContenderDef => ({
      name,
      label,
      async start(): Promise<Instance> {
        const commands: string[] = [];
        return { commands, measure: () => once(commands), stop: async () => {} };
      },
    });

    const remember = (commands: string[], command: string) => {
      if (!commands.includes(command)) commands.push(command);
    };

    const contenders: ContenderDef[] = [
      fresh('node', 'bare Node 24 process', async (commands) => {
        const t0 = performance.now();
        const s = new Service('node', node, ['-e', 'setInterval(() => {}, 1 << 30)'], { log: join(dir, 'node.log') });
        remember(commands, s.command);
        try {
          await sleep(200);
          const readyMs = performance.now() - t0;
          const mem = await settleAndRead(s);
          return { rss: mem.rssMiB, peak: mem.peakMiB, readyMs };
        } finally {
          await s.stop();
        }
      }),
      fresh('meshlet-idle', 'meshlet, standalone example', async (commands) => {
        const dnsPort = await freePort();
        const sets = [`dns.port=${dnsPort}`, 'proxy.listenPort=auto'];
        const m = await startMeshlet({
          repo: ctx.repo,
          name: 'meshlet-idle',
          config: example,
          sets,
          log: join(dir, 'meshlet-idle.log'),
        });
        remember(
          commands,
          m.service.command.replace(/admin\.port=\d+/, 'admin.port=<free>').replace(/dns\.port=\d+/, 'dns.port=<free>'),
        );
        try {
          const mem = await settleAndRead(m.service);
          return { rss: mem.rssMiB, peak: mem.peakMiB, readyMs: m.readyMs };
        } finally {
          await m.service.stop();
        }
      }),
      fresh('coredns-idle', 'CoreDNS, idle (hosts + cache + forward)', async (commands) => {
        const port = await freePort();
        const conf = join(dir, 'coredns-idle.Corefile');
        writeFileSync(conf, coreFile(port, hostsIdle));
        const t0 = performance.now();
        const s = await dnsReady(
          new Service('coredns-idle', coredns, ['-conf', conf], { log: join(dir, 'coredns-idle.log') }),
          port,
          'web.default.svc.cluster.local',
        );
        remember(commands, s.command);
        try {
          const readyMs = performance.now() - t0;
          const mem = await settleAndRead(s);
          return { rss: mem.rssMiB, peak: mem.peakMiB, readyMs };
        } finally {
          await s.stop();
        }
      }),
      fresh('meshlet-1k', 'meshlet, 1,000 services / 10,000 endpoints', async (commands) => {
        const dnsPort = await freePort();
        writeFileSync(largeRegistry, registryFile(large));
        const sets = [`dns.port=${dnsPort}`, 'proxy.listenPort=auto'];
        const m = await startMeshlet({
          repo: ctx.repo,
          name: 'meshlet-1k',
          config: largeConfig,
          sets,
          log: join(dir, 'meshlet-1k.log'),
          readyTimeoutMs: 120_000,
        });
        remember(
          commands,
          m.service.command.replace(/admin\.port=\d+/, 'admin.port=<free>').replace(/dns\.port=\d+/, 'dns.port=<free>'),
        );
        try {
          if (hasDns)
            await waitFor('1k names served', async () => (await queryA(dnsPort, probeLarge, 300)) > 0, { timeoutMs: 30_000 });
          const mem = await settleAndRead(m.service);
          const times: number[] = [];
          for (let k = 0; k < updates; k++) times.push(await timeUpdate(m.adminUrl, dnsPort, k));
          times.sort((a, b) => a - b);
          const after = await settleAndRead(m.service);
          return {
            rss: mem.rssMiB,
            peak: after.peakMiB,
            readyMs: m.readyMs,
            updateMs: times[times.length >> 1] as number,
            rssAfterUpdates: after.rssMiB,
          };
        } finally {
          await m.service.stop();
        }
      }),
      fresh('coredns-1k', 'CoreDNS, the same 11,000 names (hosts file)', async (commands) => {
        const port = await freePort();
        const conf = join(dir, 'coredns-1k.Corefile');
        writeFileSync(conf, coreFile(port, hostsLarge));
        const t0 = performance.now();
        const s = await dnsReady(
          new Service('coredns-1k', coredns, ['-conf', conf], { log: join(dir, 'coredns-1k.log') }),
          port,
          probeLarge,
        );
        remember(commands, s.command);
        try {
          const readyMs = performance.now() - t0;
          const mem = await settleAndRead(s);
          return { rss: mem.rssMiB, peak: mem.peakMiB, readyMs };
        } finally {
          await s.stop();
        }
      }),
    ];

    const modules = [hasDns ? 'dns' : '', hasProxy ? 'proxy' : ''].filter(Boolean);
    return {
      description:
        `Each round starts every contender afresh, waits until it is ready, waits ${settleMs / 1000} s more and reads VmRSS (and the peak, VmHWM) from /proc/<pid>/status. ` +
        `meshlet runs as its own process with the modules that have landed (${modules.join(' + ') || 'none'}; proxy listeners on OS-chosen ports). ` +
        `The 1k registry has ${SERVICES.toLocaleString('en-US')} services in 10 namespaces with ${PER_SERVICE} endpoints each (${(SERVICES * PER_SERVICE).toLocaleString('en-US')} endpoints), from the file source. ` +
        `"update" is the median of ${updates} updates that each add one service to that file (written aside and renamed in, file-source debounce 0): ` +
        (hasDns
          ? "time from the rename until meshlet's DNS answers the new name."
          : 'time from the rename until the registry version moves.'),
      metrics: [
        { key: 'rss', label: 'RSS when ready', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
        { key: 'peak', label: 'peak RSS', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
        { key: 'rssAfterUpdates', label: 'RSS after updates', unit: 'MiB', better: 'lower', chart: 'memory', digits: 1 },
        { key: 'readyMs', label: 'start → ready', unit: 'ms', better: 'lower', chart: 'time' },
        { key: 'updateMs', label: 'registry update applied', unit: 'ms', better: 'lower', chart: 'time' },
      ],
      contenders,
      ratios: [
        ['rss', 'meshlet-idle', 'coredns-idle'],
        ['rss', 'meshlet-idle', 'node'],
        ['rss', 'meshlet-1k', 'coredns-1k'],
        ['rss', 'meshlet-1k', 'meshlet-idle'],
        ['readyMs', 'meshlet-1k', 'coredns-1k'],
      ],
      loadCommands: [commandLine('cat', ['/proc/<pid>/status']), 'memory: VmRSS, VmHWM'],
      versions: {
        meshlet: meshletVersion(ctx.repo),
        node: process.version,
        coredns: toolVersion(coredns, ['-version'], /CoreDNS-([\d.]+)/),
      },
      notes: [
        'CoreDNS with a hosts file is a loose stand-in for a DNS sidecar holding the same names: meshlet also keeps the endpoints, ports and proxy listeners. ' +
          'Published anchor: CoreDNS with the kubernetes plugin needs about (pods + services) × 0.000858 + 49.1 MB, i.e. about 58 MB for 11,000 objects (coredns/deployment Scaling_CoreDNS.md).',
        'The bare Node 24 process is the floor a Node sidecar cannot go below; meshlet-idle minus it is what meshlet itself costs.',
      ],
      rounds: ctx.quick ? 2 : 5,
      warmup: 1,
      teardown: async () => {},
    };
  },
};
