import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { VERSION } from '../../src/version.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const main = join(root, 'src', 'cli', 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI to completion on this test's Node (24). */
function meshlet(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
}

t.test('--version and --help on every command', async (t) => {
  const version = meshlet(['--version']);
  t.equal(version.status, 0);
  t.equal(version.stdout.trim(), VERSION);
  for (const cmd of [[], ['agent'], ['controller'], ['status'], ['config']]) {
    const help = meshlet([...cmd, '--help']);
    t.equal(help.status, 0, `${cmd.join(' ') || 'meshlet'} --help exits 0`);
    t.match(help.stdout, /Usage: meshlet/);
  }
  const unknown = meshlet(['nonsense']);
  t.not(unknown.status, 0, 'an unknown command fails');
});

t.test('agent with a bad config exits non-zero naming the field', async (t) => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'dns:\n  port: 99999\nproxy:\n  enabeld: true\n');
  const result = meshlet(['agent', '--config', bad]);
  t.equal(result.status, 2);
  t.match(result.stderr, /field "dns\.port" \(from file .*bad\.yaml\): got 99999/);
  t.match(result.stderr, /unknown field "proxy\.enabeld"/);
  const missing = meshlet(['agent', '--config', join(dir, 'missing.yaml')]);
  t.equal(missing.status, 2);
  t.match(missing.stderr, /cannot read config file/);
});

t.test('config --print-defaults and --print', async (t) => {
  const defaults = meshlet(['config', '--print-defaults']);
  t.equal(defaults.status, 0);
  t.match(defaults.stdout, /# The cluster DNS domain/);
  const printed = meshlet(['config', '--print', '--set', 'cluster.domain=edge.test'], { MESHLET_DNS_PORT: '5300' });
  t.equal(printed.status, 0);
  const config = JSON.parse(printed.stdout) as { cluster: { domain: string }; dns: { port: number } };
  t.equal(config.cluster.domain, 'edge.test');
  t.equal(config.dns.port, 5300);
});

interface LogLine {
  msg: string;
  admin?: string;
}

/** Starts the agent and resolves with its admin URL once it logs "agent running". */
async function startAgent(t: Test, configPath: string): Promise<{ child: ChildProcess; admin: string; logs: LogLine[] }> {
  const child = spawn(process.execPath, [main, 'agent', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: LogLine[] = [];
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const admin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('agent did not start within 20 s')), 20_000);
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as LogLine;
      logs.push(entry);
      if (entry.msg === 'agent running' && entry.admin) {
        clearTimeout(timer);
        resolve(entry.admin);
      }
    });
    child.once('exit', (code) => reject(new Error(`agent exited with ${code} before it was running`)));
  });
  return { child, admin, logs };
}

t.test('agent: admin endpoint, status table, graceful SIGTERM', async (t) => {
  const registry = join(dir, 'registry.yaml');
  writeFileSync(
    registry,
    'nodes: [{ name: n1, addresses: [198.18.0.10] }]\nservices:\n  - name: web\n    clusterIP: 198.19.0.10\n    ports: [{ name: http, port: 80 }]\n    endpoints: [{ addresses: [198.18.1.1] }, { addresses: [198.18.1.2], ready: false }]\n',
  );
  const config = join(dir, 'agent.yaml');
  writeFileSync(
    config,
    'node: { name: n1 }\nadmin: { port: 0 }\nsource: { file: { path: registry.yaml } }\ndns: { enabled: false }\nproxy: { enabled: false }\n',
  );
  const { child, admin, logs } = await startAgent(t, config);

  const healthz = await fetch(`${admin}/healthz`);
  t.equal(healthz.status, 200);
  const readyz = await fetch(`${admin}/readyz`);
  t.equal(readyz.status, 200, await readyz.text());
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  t.match(metrics, /meshlet_registry_services 1/);
  t.match(metrics, /meshlet_registry_endpoints 2/);
  t.match(metrics, /meshlet_build_info\{version="[^"]+"/);
  const services = (await (await fetch(`${admin}/debug/services`)).json()) as { name: string; endpoints: { ready: number } }[];
  t.equal(services[0]?.name, 'web');
  t.equal(services[0]?.endpoints.ready, 1);
  t.equal((await fetch(`${admin}/nope`)).status, 404);
  t.equal((await fetch(`${admin}/healthz`, { method: 'POST' })).status, 405);

  const status = meshlet(['status', '--admin', admin]);
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, /node n1 .* running .* ready/);
  t.match(status.stdout, /NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IP/);
  t.match(status.stdout, /default\s+web\s+ClusterIP\s+198\.19\.0\.10\s+http:80\/TCP→80\s+1\/2 ready/);
  t.match(status.stdout, /n1\s+True/);

  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0, 'graceful stop exits 0');
  t.ok(
    logs.some((l) => l.msg === 'agent stopped'),
    'logged the stop',
  );
  const unreachable = meshlet(['status', '--admin', admin]);
  t.equal(unreachable.status, 1);
  t.match(unreachable.stderr, /cannot reach the agent's admin endpoint/);
});

t.test('a second signal exits at once even if the graceful stop hangs', async (t) => {
  const child = spawn(process.execPath, [join(root, 'test', 'cli', 'fixtures', 'slow-stop.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line');
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(child.exitCode, null, 'still draining after the first signal');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 143);
});
