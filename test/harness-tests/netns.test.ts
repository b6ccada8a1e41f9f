import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createTopology, type NetnsNode, NODE_BIN, type Topology } from '../harness/netns.ts';
import { ETC_NETNS, listNetns, STATE_ROOT, tool } from '../harness/netns-cleanup.ts';
import { requireOrSkip } from '../harness/requirements.ts';

const NETNS_MODULE = fileURLToPath(new URL('../harness/netns.ts', import.meta.url));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An HTTP server (the project's Node) in a node, answering "<node name> <peer address>". */
async function httpServer(node: NetnsNode, port: number) {
  const script = `require('node:http').createServer((q, r) => r.end('${node.name} ' + q.socket.remoteAddress))
    .listen(${port}, '${node.address}', () => console.log('listening'));`;
  const server = node.spawn(NODE_BIN, ['-e', script]);
  await server.waitForOutput('listening');
  return server;
}

function curl(from: NetnsNode, url: string) {
  return from.exec('curl', ['-sS', '--max-time', '2', url], { timeoutMs: 5000 });
}

/** Gone or a zombie (killed, not yet reaped by its parent). */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function leftovers(prefix: string): string[] {
  const mine = (name: string) => name.startsWith(`${prefix}-`);
  const found = [
    ...listNetns().filter(mine),
    ...readdirSafe(ETC_NETNS)
      .filter(mine)
      .map((n) => `${ETC_NETNS}/${n}`),
  ];
  if (existsSync(`${STATE_ROOT}/${prefix}`)) found.push(`${STATE_ROOT}/${prefix}`);
  return found;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function hostLinks(): string[] {
  return execFileSync(tool('ip'), ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(':')[1]?.trim() ?? '')
    .sort();
}

function isAllowedAddress(address: string): boolean {
  return address === '127.0.0.1' || address === '::1' || /^198\.1[89]\.\d+\.\d+$/.test(address);
}

if (requireOrSkip(t, { root: true, commands: ['ip', 'curl', 'iptables'] })) {
  const linksBefore = hostLinks();

  t.test('three nodes: addresses, no way out, HTTP across the bridge, cuts', async (t) => {
    const topo = await createTopology(t, {
      nodes: 3,
      controlPlane: true,
      resolvConf: (n) =>
        `search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n# ${n.name}`,
    });
    const [a, b, c] = [topo.node(0), topo.node('node1'), topo.node(2)];
    t.same(
      topo.nodes.map((n) => n.address),
      ['198.18.0.10', '198.18.0.11', '198.18.0.12'],
    );

    for (const ns of topo.allNetns) {
      const ip = (...args: string[]) => execFileSync(tool('ip'), ['-n', ns, ...args], { encoding: 'utf8' });
      t.equal(ip('route', 'show', 'default').trim(), '', `${ns}: no IPv4 default route`);
      t.equal(ip('-6', 'route', 'show', 'default').trim(), '', `${ns}: no IPv6 default route`);
      t.throws(() => ip('route', 'get', '192.0.2.1'), `${ns}: the outside is unreachable`);
      const links = JSON.parse(ip('-j', 'addr')) as { addr_info?: { local?: string }[] }[];
      const addresses = links.flatMap((l) => (l.addr_info ?? []).map((i) => i.local ?? ''));
      t.same(
        addresses.filter((x) => !isAllowedAddress(x)),
        [],
        `${ns}: only loopback and 198.18.0.0/15 (${addresses.join(' ')})`,
      );
    }

    t.match(await a.run('cat', ['/etc/resolv.conf']), /search default\.svc\.cluster\.local[^\n]*\n[\s\S]*ndots:5[\s\S]*# node0/);
    b.setResolvConf('nameserver 198.18.0.2\n');
    t.equal(await b.run('cat', ['/etc/resolv.conf']), 'nameserver 198.18.0.2\n', 'setResolvConf applies to later execs');

    await httpServer(a, 8080);
    await httpServer(b, 8080);
    const urlA = `http://${a.address}:8080/`;
    const urlB = `http://${b.address}:8080/`;
    t.equal((await curl(a, urlB)).stdout, 'node1 198.18.0.10', 'node0 -> node1');
    t.equal((await curl(c, urlB)).stdout, 'node1 198.18.0.12', 'node2 -> node1');

    await topo.cut(a, b);
    const started = Date.now();
    const cut = await curl(a, urlB);
    t.notOk(cut.ok, 'node0 -> node1 fails while cut');
    t.ok(Date.now() - started < 4000, 'and fails within curl --max-time');
    t.notOk((await curl(b, urlA)).ok, 'node1 -> node0 fails too (both directions)');
    t.ok((await curl(c, urlB)).ok, 'node2 -> node1 still works');
    await topo.restore(b, a);
    t.equal((await curl(a, urlB)).stdout, 'node1 198.18.0.10', 'node0 -> node1 works again after restore');

    await topo.cut(a, b, { nat: true });
    t.equal((await curl(a, urlB)).stdout, 'node1 198.18.0.10', 'NAT: node0 (behind NAT) can reach node1');
    t.notOk((await curl(b, urlA)).ok, 'NAT: node1 cannot reach into node0');
    await topo.restoreAll();
    t.equal((await curl(b, urlA)).stdout, 'node0 198.18.0.11', 'restoreAll: node1 -> node0 works again');
  });

  t.test('a host-loopback service is reachable from the nodes at 198.18.0.1', async (t) => {
    const hostServer = createServer((req, res) => res.end(`host ${req.socket.remoteAddress}`));
    await new Promise<void>((resolve) => hostServer.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => hostServer.close(() => resolve())));
    const hostPort = (hostServer.address() as AddressInfo).port;

    const topo: Topology = await createTopology(t, { nodes: 2, controlPlane: true });
    const [a, b] = [topo.node(0), topo.node(1)];
    const cp = topo.controlPlane;
    if (!cp) throw new Error('no control plane');
    const api = await topo.exposeHostPort(hostPort, { port: 6443 });
    t.same(api, { address: '198.18.0.1', port: 6443 });
    const url = `http://${api.address}:${api.port}/`;
    t.equal((await curl(a, url)).stdout, 'host 127.0.0.1', 'node0 -> host loopback');
    t.equal((await curl(cp, url)).stdout, 'host 127.0.0.1', 'control plane -> host loopback');

    await httpServer(a, 9901);
    const admin = await topo.exposeNodePort(a, 9901);
    t.equal(admin.address, '127.0.0.1');
    const adminUrl = `http://127.0.0.1:${admin.port}/`;
    t.equal(await (await fetch(adminUrl)).text(), 'node0 198.18.0.3', 'host -> node0 via exposeNodePort');

    await topo.cutFromControlPlane(a);
    t.notOk((await curl(a, url)).ok, 'node0 cut from the control plane cannot reach the host service');
    t.notOk((await curl(cp, `http://${a.address}:9901/`)).ok, 'nor can the control plane reach node0');
    t.ok((await curl(b, url)).ok, 'node1 still can');
    t.equal(await (await fetch(adminUrl)).text(), 'node0 198.18.0.3', 'the harness path is never cut');

    await topo.cutFromControlPlane(a, { nat: true });
    t.ok((await curl(a, url)).ok, 'NAT: node0 can reach the host service');
    t.notOk((await curl(cp, `http://${a.address}:9901/`)).ok, 'NAT: the control plane cannot reach into node0');
    await topo.restoreControlPlane(a);
    t.ok((await curl(cp, `http://${a.address}:9901/`)).ok, 'restored: the control plane reaches node0');
  });

  t.test('teardown leaves no namespace, link, file or process behind', async (t) => {
    let prefix = '';
    const pids: number[] = [];
    await t.test('a topology with processes and relays', async (t) => {
      const topo = await createTopology(t, { nodes: 2 });
      prefix = topo.prefix;
      t.equal(leftovers(prefix).length, 3 + 2 + 1, '3 namespaces, 2 /etc/netns dirs and the state dir exist');
      pids.push(topo.node(0).spawn('sleep', ['600']).pid);
      pids.push((await httpServer(topo.node(1), 8080)).pid);
      await topo.exposeNodePort(topo.node(1), 8080);
      await topo.cut(topo.node(0), topo.node(1));
    });
    t.ok(prefix, 'the subtest ran');
    t.same(leftovers(prefix), [], 'no namespace (ip netns list), /etc/netns dir or state dir left');
    t.notMatch(execFileSync(tool('ip'), ['netns', 'list'], { encoding: 'utf8' }), prefix);
    t.ok(
      pids.every((pid) => processGone(pid)),
      'spawned processes are gone',
    );
    t.same(hostLinks(), linksBefore, "the host's links are untouched");
  });

  t.test('a run killed with SIGKILL is cleaned up by its watchdog', async (t) => {
    const script = `
      import { createTopology } from ${JSON.stringify(NETNS_MODULE)};
      const topo = await createTopology({ teardown() {} }, { nodes: 2 });
      const p = topo.node(0).spawn('sleep', ['600']);
      await topo.exposeNodePort(topo.node(1), 8080);
      console.log(JSON.stringify({ prefix: topo.prefix, pid: p.pid }));
      setInterval(() => {}, 1000);`;
    const child = spawn(NODE_BIN, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no report from the child; got ${out}`)), 15_000);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.split('\n')[0] ?? '');
        }
      });
    });
    const { prefix, pid } = JSON.parse(line) as { prefix: string; pid: number };
    t.ok(leftovers(prefix).length > 0, 'the child made a topology');
    child.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 200 && Date.now() < deadline && (leftovers(prefix).length > 0 || !processGone(pid)); i++) await sleep(50);
    t.same(leftovers(prefix), [], 'its namespaces and files are gone');
    t.ok(processGone(pid), 'its process in a node is gone');
  });

  t.test('creating a topology sweeps what dead runs left behind', async (t) => {
    const dead = spawn('true');
    await new Promise((resolve) => dead.on('exit', resolve));
    const deadPid = dead.pid ?? 0;
    const prefix = `ml-${deadPid}-7`;
    const ns = `${prefix}-n0`;
    execFileSync(tool('ip'), ['netns', 'add', ns]);
    mkdirSync(`${ETC_NETNS}/${ns}`, { recursive: true });
    const orphan = spawn(tool('ip'), ['netns', 'exec', ns, 'sleep', '600'], { stdio: 'ignore' });
    const orphanExit = new Promise((resolve) => orphan.on('exit', resolve));
    t.teardown(() => {
      orphan.kill('SIGKILL');
    });
    for (let i = 0; i < 100 && !execFileSync(tool('ip'), ['netns', 'pids', ns], { encoding: 'utf8' }).trim(); i++)
      await sleep(20);
    t.equal(leftovers(prefix).length, 2, 'a dead run left a namespace with a process and a dir');

    await createTopology(t, { nodes: 1 });
    t.same(leftovers(prefix), [], 'swept');
    t.ok(await Promise.race([orphanExit.then(() => true), sleep(5000).then(() => false)]), 'its process was killed');
  });
}
