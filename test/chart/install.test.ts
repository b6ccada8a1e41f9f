import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { bins } from '../harness/binaries.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { NODE_BIN } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';

/**
 * The chart in the harness's real kube-apiserver (with kube-controller-manager, so namespaces
 * really go away): every object accepted (server dry-run), helm install / upgrade / uninstall
 * leave nothing behind, and RBAC is sufficient and minimal: the real agent syncs with its own
 * ServiceAccount token, the controller's token does its EdgeNode and leader-election writes,
 * `kubectl auth can-i` shows what each account cannot do, and the apiserver cache's constrained
 * impersonation reaches the agent's own node only.
 */

const CHART = new URL('../../charts/meshlet', import.meta.url).pathname;
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const NS = 'meshlet-system';
const AGENT = `system:serviceaccount:${NS}:meshlet-agent`;
const CONTROLLER = `system:serviceaccount:${NS}:meshlet-controller`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env: { ...process.env, ...opts.env }, maxBuffer: 32 << 20, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (
  requireOrSkip(t, {
    commands: ['openssl'],
    executables: [bins.helm, bins.kubeApiserver, bins.etcd, bins.kubectl, bins.kubeControllerManager],
  })
) {
  const cp = await startControlPlane(t, { controllerManager: true });
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-chart-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    KUBECONFIG: cp.kubeconfigPath,
    HELM_CACHE_HOME: join(dir, 'cache'),
    HELM_CONFIG_HOME: join(dir, 'config'),
    HELM_DATA_HOME: join(dir, 'data'),
  };
  const helm = (args: string[]) => run(bins.helm, args, { env });
  const kubectl = (args: string[], opts: { input?: string; kubeconfig?: string } = {}) =>
    run(bins.kubectl, ['--kubeconfig', opts.kubeconfig ?? cp.kubeconfigPath, ...args], {
      ...(opts.input !== undefined && { input: opts.input }),
    });
  const canI = async (as: string, args: string[]) => (await kubectl(['auth', 'can-i', '--as', as, ...args])).stdout.trim();

  /** A kubeconfig holding a TokenRequest token of one of the chart's ServiceAccounts. */
  const tokenKubeconfig = async (sa: string, extra: string[] = []): Promise<string> => {
    const r = await kubectl(['create', 'token', sa, '-n', NS, '--duration', '1h', ...extra]);
    if (r.code !== 0) throw new Error(r.stderr);
    const file = join(dir, `${sa}-${extra.length}.kubeconfig`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cp.url, 'certificate-authority': cp.caPath } }],
        users: [{ name: sa, user: { token: r.stdout.trim() } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: sa } }],
        'current-context': 'c',
      }),
    );
    return file;
  };

  const upgradeValues = join(dir, 'upgrade.yaml');
  writeFileSync(
    upgradeValues,
    [
      'agent:',
      '  config:',
      '    log: {level: debug}',
      '    apicache: {enabled: true, upstreams: ["https://198.18.0.1:6443", "https://198.18.0.2:6443"]}',
      '    witness: {enabled: true}',
      '  apicacheTls: {secretName: meshlet-apicache-tls}',
      'controller: {replicas: 3}',
      '',
    ].join('\n'),
  );

  t.test('helm install: every object is created and accepted', async (t) => {
    t.equal((await kubectl(['create', 'namespace', NS])).code, 0);
    const r = await helm(['install', 'meshlet', CHART, '-n', NS]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /kubectl -n meshlet-system rollout status daemonset\/meshlet-agent/, 'NOTES tell how to check');

    const get = await kubectl([
      'get',
      'daemonset/meshlet-agent',
      'deployment/meshlet-controller',
      'configmap/meshlet-agent',
      'configmap/meshlet-controller',
      'serviceaccount/meshlet-agent',
      'serviceaccount/meshlet-controller',
      'role/meshlet-controller-leader-election',
      'rolebinding/meshlet-controller-leader-election',
      '-n',
      NS,
      '-o',
      'name',
    ]);
    t.equal(get.code, 0, get.stderr);
    t.equal(get.stdout.trim().split('\n').length, 8);
    const cluster = await kubectl([
      'get',
      'clusterrole,clusterrolebinding',
      '-l',
      'app.kubernetes.io/instance=meshlet',
      '-o',
      'name',
    ]);
    t.equal(cluster.stdout.trim().split('\n').length, 4, cluster.stdout);
    t.equal((await kubectl(['wait', '--for=condition=Established', 'crd/edgenodes.meshlet.io', '--timeout=30s'])).code, 0);
    const svc = JSON.parse((await kubectl(['get', 'service', 'eaa', '-n', 'openness', '-o', 'json'])).stdout) as {
      spec: { ports: { name: string; port: number }[] };
    };
    t.same(
      svc.spec.ports.map((p) => `${p.name}:${p.port}`),
      ['https:443', 'http:80'],
    );

    // The apiserver agrees with every rendered object, default and non-default values alike.
    for (const extra of [[], ['-f', upgradeValues]]) {
      const rendered = await helm(['template', 'meshlet', CHART, '-n', NS, ...extra]);
      t.equal(rendered.code, 0, rendered.stderr);
      const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rendered.stdout });
      t.equal(dry.code, 0, `server dry-run ${extra.join(' ')}: ${dry.stderr}`);
    }
  });

  t.test('the agent account reads what it routes on, and nothing else', async (t) => {
    for (const [args, want] of [
      [['list', 'endpointslices.discovery.k8s.io', '-A'], 'yes'],
      [['watch', 'endpointslices.discovery.k8s.io', '-A'], 'yes'],
      [['list', 'services', '-A'], 'yes'],
      [['watch', 'nodes'], 'yes'],
      [['get', 'nodes'], 'yes'],
      [['get', 'secrets', '-n', NS], 'no'],
      [['list', 'secrets', '-A'], 'no'],
      [['list', 'configmaps', '-A'], 'no'],
      [['list', 'pods', '-A'], 'no'],
      [['create', 'services', '-n', 'default'], 'no'],
      [['delete', 'endpointslices.discovery.k8s.io', '-n', 'default'], 'no'],
      [['patch', 'nodes'], 'no'],
      [['update', 'nodes/status'], 'no'],
      [['create', 'edgenodes.meshlet.io'], 'no'],
      [['impersonate', 'users'], 'no'],
      [['impersonate:associated-node', 'nodes.authentication.k8s.io'], 'no'],
      [['create', 'leases.coordination.k8s.io', '-n', NS], 'no'],
    ] as [string[], string][]) {
      t.equal(await canI(AGENT, args), want, `agent ${args.join(' ')}`);
    }
  });

  t.test('the controller account owns EdgeNodes and its Lease, and nothing else', async (t) => {
    for (const [args, want] of [
      [['create', 'edgenodes.meshlet.io'], 'yes'],
      [['delete', 'edgenodes.meshlet.io'], 'yes'],
      [['patch', 'edgenodes.meshlet.io', '--subresource=status'], 'yes'],
      [['list', 'nodes'], 'yes'],
      [['patch', 'nodes'], 'yes'],
      [['patch', 'nodes', '--subresource=status'], 'yes'],
      [['list', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'], 'yes'],
      [['update', 'leases.coordination.k8s.io/meshlet-controller', '-n', NS], 'yes'],
      [['update', 'leases.coordination.k8s.io/other', '-n', NS], 'no'],
      [['update', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'], 'yes'],
      [['patch', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'], 'yes'],
      [['delete', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'], 'no'],
      [['update', 'leases.coordination.k8s.io', '-n', 'kube-system'], 'no'],
      [['delete', 'nodes'], 'no'],
      [['create', 'nodes'], 'no'],
      [['get', 'secrets', '-n', NS], 'no'],
      [['list', 'pods', '-A'], 'no'],
      [['create', 'deployments.apps', '-n', NS], 'no'],
      [['update', 'clusterroles.rbac.authorization.k8s.io'], 'no'],
    ] as [string[], string][]) {
      t.equal(await canI(CONTROLLER, args), want, `controller ${args.join(' ')}`);
    }
  });

  t.test('the controller, with its own token, writes EdgeNodes and takes its Lease', async (t) => {
    const kc = await tokenKubeconfig('meshlet-controller');
    const edge = 'apiVersion: meshlet.io/v1alpha1\nkind: EdgeNode\nmetadata: {name: node-a}\nspec: {nodeName: node-a}\n';
    const created = await kubectl(['create', '-f', '-'], { input: edge, kubeconfig: kc });
    t.equal(created.code, 0, created.stderr);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      status: {
        phase: 'CutOff',
        phaseSince: now,
        cloudLastHeard: now,
        peersLastHeard: now,
        agentVersion: '0.1.0',
        conditions: [
          {
            type: 'CloudReachable',
            status: 'False',
            reason: 'NoHeartbeat',
            message: 'no lease renewal',
            lastTransitionTime: now,
          },
        ],
      },
    };
    const patched = await kubectl(
      ['patch', 'edgenode', 'node-a', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)],
      { kubeconfig: kc },
    );
    t.equal(patched.code, 0, patched.stderr);
    const table = await kubectl(['get', 'edgenodes'], { kubeconfig: kc });
    t.match(table.stdout, /NAME\s+PHASE\s+CLOUD-HEARD\s+PEERS-HEARD\s+AGENT\s+AGE/);
    t.match(table.stdout, /node-a\s+CutOff\s+\S+\s+\S+\s+0\.1\.0/);
    const bad = await kubectl(
      ['patch', 'edgenode', 'node-a', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Sleeping"}}'],
      { kubeconfig: kc },
    );
    t.not(bad.code, 0, 'a phase outside the enum is rejected');
    t.match(bad.stderr, /Unsupported value: "Sleeping"/);

    const lease = `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: meshlet-controller, namespace: ${NS}}\nspec: {holderIdentity: controller-0, leaseDurationSeconds: 15}\n`;
    t.equal((await kubectl(['create', '-f', '-'], { input: lease, kubeconfig: kc })).code, 0, 'creates its Lease');
    const renew = await kubectl(
      ['patch', 'lease', 'meshlet-controller', '-n', NS, '--type=merge', '-p', '{"spec":{"holderIdentity":"controller-1"}}'],
      { kubeconfig: kc },
    );
    t.equal(renew.code, 0, renew.stderr);
    await kubectl(['create', '-f', '-'], {
      input: `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: someone-else, namespace: ${NS}}\n`,
    });
    const grab = await kubectl(
      ['patch', 'lease', 'someone-else', '-n', NS, '--type=merge', '-p', '{"spec":{"holderIdentity":"controller-1"}}'],
      { kubeconfig: kc },
    );
    t.match(grab.stderr, /forbidden/, "cannot take another component's Lease");
    await kubectl(['delete', 'lease', 'someone-else', '-n', NS]);
    t.equal((await kubectl(['delete', 'edgenode', 'node-a'], { kubeconfig: kc })).code, 0);
    // The Lease is the controller's runtime state, not a chart object: helm uninstall would leave it.
    await kubectl(['delete', 'lease', 'meshlet-controller', '-n', NS]);
  });

  t.test('the real agent syncs Services, EndpointSlices and Nodes with its own token', async (t) => {
    const kc = await tokenKubeconfig('meshlet-agent');
    const svc = await kubectl(['create', 'service', 'clusterip', 'web', '-n', 'default', '--tcp=80:8080']);
    t.equal(svc.code, 0, svc.stderr);
    const adminPort = await freePort();
    const dnsPort = await freePort();
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      [
        `source: {kind: kubernetes, kubernetes: {kubeconfig: ${JSON.stringify(kc)}}}`,
        `admin: {address: 127.0.0.1, port: ${adminPort}}`,
        `dns: {address: 127.0.0.1, port: ${dnsPort}, upstreams: ["127.0.0.1:9"]}`,
        'proxy: {enabled: false}',
        'log: {level: warn}',
        '',
      ].join('\n'),
    );
    const { spawn } = await import('node:child_process');
    // A plain Node: without tap's loaders (NODE_OPTIONS), which the Kubernetes client does not survive.
    const { NODE_OPTIONS: _loaders, ...cleanEnv } = process.env;
    const agent = spawn(NODE_BIN, [MAIN, 'agent', '--config', config, '--node-name', 'node-a'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv,
    });
    const exited = new Promise((r) => agent.once('exit', r));
    let output = '';
    agent.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    agent.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    t.teardown(() => {
      agent.kill('SIGKILL');
    });
    let ready = false;
    let services = '';
    for (let i = 0; i < 100 && !ready; i++) {
      await sleep(200);
      try {
        const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
        ready = r.status === 200;
        if (ready) services = await (await fetch(`http://127.0.0.1:${adminPort}/debug/services`)).text();
      } catch {}
    }
    t.ok(ready, `the agent became ready (its list/watch calls were allowed): ${output.slice(-2000)}`);
    t.match(services, /"name":\s*"web"/, 'it sees the Service created in the cluster');
    t.notMatch(output, /forbidden/i, 'no request was forbidden');
    agent.kill('SIGTERM');
    await exited;
    await kubectl(['delete', 'service', 'web', '-n', 'default']);
  });

  t.test('helm upgrade with the apiserver cache on: constrained impersonation of its own node only', async (t) => {
    const r = await helm(['upgrade', 'meshlet', CHART, '-n', NS, '-f', upgradeValues]);
    t.equal(r.code, 0, r.stderr);
    const cm = JSON.parse((await kubectl(['get', 'configmap', 'meshlet-agent', '-n', NS, '-o', 'json'])).stdout) as {
      data: Record<string, string>;
    };
    t.match(cm.data['config.yaml'], /level: debug/, 'the ConfigMap follows the new values');
    // Witness on: the agent writes its report Leases in the release namespace, nowhere else.
    for (const [args, want] of [
      [['create', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
      [['patch', 'leases.coordination.k8s.io', '-n', NS], 'yes'],
      [['delete', 'leases.coordination.k8s.io', '-n', NS], 'no'],
      [['create', 'leases.coordination.k8s.io', '-n', 'kube-node-lease'], 'no'],
      [['get', 'secrets', '-n', NS], 'no'],
    ] as [string[], string][]) {
      t.equal(await canI(AGENT, args), want, `witness agent ${args.join(' ')}`);
    }
    const key = await kubectl(['get', 'secret', 'meshlet-witness-key', '-n', NS, '-o', 'jsonpath={.data.key}']);
    t.ok(key.stdout.length >= 64, 'the witness key Secret exists');
    const deploy = JSON.parse((await kubectl(['get', 'deployment', 'meshlet-controller', '-n', NS, '-o', 'json'])).stdout) as {
      spec: { replicas: number };
    };
    t.equal(deploy.spec.replicas, 3);

    // Two Nodes and an agent Pod bound to node-a; a token bound to that Pod carries node-a's name.
    for (const node of ['node-a', 'node-b']) {
      await kubectl(['create', '-f', '-'], { input: `apiVersion: v1\nkind: Node\nmetadata: {name: ${node}}\n` });
    }
    const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: agent-a, namespace: ${NS}}\nspec:\n  nodeName: node-a\n  serviceAccountName: meshlet-agent\n  containers: [{name: a, image: meshlet}]\n`;
    const created = await kubectl(['create', '-f', '-'], { input: pod });
    t.equal(created.code, 0, created.stderr);
    const kc = await tokenKubeconfig('meshlet-agent', ['--bound-object-kind', 'Pod', '--bound-object-name', 'agent-a']);
    const asNode = (node: string, args: string[]) => kubectl(['--as', `system:node:${node}`, ...args], { kubeconfig: kc });

    // Node mode takes Impersonate-User only: the apiserver gives the node its groups itself. An
    // explicit Impersonate-Group (even system:nodes) falls back to legacy impersonation, refused.
    const who = await asNode('node-a', ['auth', 'whoami', '-o', 'json']);
    t.equal(who.code, 0, who.stderr);
    const user = (JSON.parse(who.stdout || '{}') as { status?: { userInfo?: { username: string; groups: string[] } } }).status
      ?.userInfo;
    t.equal(user?.username, 'system:node:node-a');
    t.ok(user?.groups.includes('system:nodes'), `node groups: ${user?.groups.join(',')}`);
    const withGroup = await kubectl(['--as', 'system:node:node-a', '--as-group', 'system:nodes', 'get', 'node', 'node-a'], {
      kubeconfig: kc,
    });
    t.match(withGroup.stderr, /cannot impersonate/, 'an explicit group is refused');
    const own = await asNode('node-a', ['get', 'node', 'node-a', '-o', 'name']);
    t.equal(own.code, 0, `impersonating its own node: ${own.stderr}`);
    t.equal(own.stdout.trim(), 'node/node-a');
    const other = await asNode('node-b', ['get', 'node', 'node-b', '-o', 'name']);
    t.not(other.code, 0, 'impersonating another node is refused');
    t.match(other.stderr, /forbidden|cannot impersonate/i);
    const admin = await kubectl(['--as', 'admin', '--as-group', 'system:masters', 'get', 'secrets', '-A'], { kubeconfig: kc });
    t.not(admin.code, 0, 'impersonating anyone else is refused');
    const secrets = await asNode('node-a', ['get', 'secrets', '-n', NS]);
    t.not(secrets.code, 0, 'as its node, it can do only what the Node authorizer allows that node');
    await kubectl(['delete', 'pod', 'agent-a', '-n', NS, '--grace-period=0', '--force']);
    await kubectl(['delete', 'node', 'node-a', 'node-b']);
  });

  t.test('helm uninstall leaves nothing behind', async (t) => {
    const r = await helm(['uninstall', 'meshlet', '-n', NS, '--wait', '--timeout', '60s']);
    t.equal(r.code, 0, r.stderr);
    const left = await kubectl(['get', 'all,configmap,serviceaccount,role,rolebinding,lease', '-n', NS, '-o', 'name']);
    const ours = left.stdout.split('\n').filter((l) => l.includes('meshlet'));
    t.same(ours, [], 'nothing named meshlet in the release namespace');
    const cluster = await kubectl([
      'get',
      'clusterrole,clusterrolebinding',
      '-l',
      'app.kubernetes.io/instance=meshlet',
      '-o',
      'name',
    ]);
    t.equal(cluster.stdout.trim(), '');
    const crd = await kubectl(['get', 'crd', 'edgenodes.meshlet.io']);
    t.match(crd.stderr, /NotFound/);
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = /NotFound/.test((await kubectl(['get', 'namespace', 'openness'])).stderr);
      if (!gone) await sleep(300);
    }
    t.ok(gone, 'the openness namespace (and its eaa Service) is gone');
    t.equal((await helm(['list', '-A', '-q'])).stdout.trim(), '', 'no release left');
  });
}
