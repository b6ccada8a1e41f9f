import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import t, { type Test } from 'tap';
import { detectBackend, inNetns, runCommand } from '../../proxy/iptables/backend.ts';
import { IptablesInterceptor } from '../../proxy/iptables/interceptor.ts';
import type { InterceptTarget } from '../../proxy/iptables/rules.ts';
import { silentLogger } from '../../src/log.ts';
import { requireOrSkip } from '../harness/requirements.ts';

/**
 * Real iptables rules in a private network namespace: a cluster IP reaches the listener,
 * the rules survive kube-proxy-style reordering and a flush, a crash leaves nothing the next
 * start cannot clean, and stop removes everything.
 */
const LISTENER = '198.18.255.11';

function sh(args: string[]): string {
  return execFileSync(args[0] ?? '', args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeNetns(t: Test, name: string): void {
  sh(['ip', 'netns', 'add', name]);
  t.teardown(() => {
    try {
      sh(['ip', 'netns', 'del', name]);
    } catch {}
  });
  sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  sh(['ip', '-n', name, 'addr', 'add', `${LISTENER}/32`, 'dev', 'lo']);
  // No default route in a test namespace: the service range needs one to reach the nat OUTPUT hook.
  sh(['ip', '-n', name, 'route', 'add', '198.19.0.0/16', 'dev', 'lo']);
}

function curlCode(ns: string, url: string): string {
  try {
    return sh(['ip', 'netns', 'exec', ns, 'curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', url]);
  } catch {
    return 'failed';
  }
}

if (requireOrSkip(t, { root: true, commands: ['ip', 'curl', 'iptables-nft-restore', 'iptables-legacy-restore', 'python3'] })) {
  const ns = `ml-ipt-${process.pid}`;
  makeNetns(t, ns);
  const server: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '40001', '--bind', LISTENER], {
    stdio: 'ignore',
  });
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  const run = inNetns(ns);
  const target: InterceptTarget = {
    id: 'default/web:http',
    protocol: 'TCP',
    clusterIPs: ['198.19.0.10'],
    port: 8080,
    nodePort: 30080,
    listenAddress: LISTENER,
    listenPort: 40001,
  };
  const save = () => sh(['ip', 'netns', 'exec', ns, 'iptables-nft-save', '-t', 'nat']);
  const newInterceptor = () =>
    new IptablesInterceptor({ backend: 'auto', families: ['ipv4'], verifyIntervalMs: 0, logger: silentLogger(), run });

  await new Promise((resolve) => setTimeout(resolve, 500)); // python's listener

  t.test('a cluster IP reaches the listener through the DNAT rule', async (t) => {
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), 'failed', 'nothing answers before the rules exist');
    const interceptor = newInterceptor();
    await interceptor.start();
    await interceptor.sync([target]);
    t.equal(interceptor.status().backend.ipv4, 'nft');
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), '200');
    t.equal(curlCode(ns, `http://${LISTENER}:30080/`), '200', 'node port on a local address');
    await interceptor.stop();
  });

  t.test('rules stay ahead of kube-proxy and survive a flush', async (t) => {
    const interceptor = newInterceptor();
    await interceptor.start();
    await interceptor.sync([target]);
    // kube-proxy (re)starting puts its jump first, DNATing the same cluster IP to nowhere.
    sh(['ip', 'netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-N', 'KUBE-SERVICES']);
    sh([
      'ip',
      'netns',
      'exec',
      ns,
      'iptables-nft',
      '-t',
      'nat',
      '-A',
      'KUBE-SERVICES',
      '-d',
      '198.19.0.10/32',
      '-p',
      'tcp',
      '-j',
      'DNAT',
      '--to-destination',
      `${LISTENER}:1`,
    ]);
    sh(['ip', 'netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-I', 'OUTPUT', '1', '-j', 'KUBE-SERVICES']);
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), 'failed', 'kube-proxy first: traffic misrouted');
    await interceptor.verify();
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), '200', 'repaired: meshlet first again');
    t.match(save(), /-A OUTPUT -m comment --comment "meshlet service portals" -j MESHLET-SERVICES\n-A OUTPUT -j KUBE-SERVICES/);

    sh(['ip', 'netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-F', 'MESHLET-SERVICES']);
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), 'failed', 'flushed by someone else');
    await interceptor.verify();
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), '200', 'repaired after the flush');
    t.equal(interceptor.status().repairs, 2);
    await interceptor.verify();
    t.equal(interceptor.status().repairs, 2, 'no rewrite when nothing drifted');
    await interceptor.stop();
  });

  t.test('after a crash the next start cleans up; stop removes everything', async (t) => {
    // The previous test's interceptor "crashed": its rules are still installed.
    t.match(save(), /MESHLET-SERVICES/);
    const next = newInterceptor();
    await next.cleanup();
    t.notMatch(save(), /MESHLET/, 'leftovers removed');
    t.match(save(), /KUBE-SERVICES/, "kube-proxy's rules untouched");
    await next.start();
    await next.sync([target]);
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), '200');
    await next.sync([]);
    t.equal(curlCode(ns, 'http://198.19.0.10:8080/'), 'failed', 'a removed service loses its rule');
    await next.cleanup();
    t.notMatch(save(), /MESHLET/);
  });

  t.test('kernel forwarding: the cluster IP reaches the endpoints straight, spread at random, not the listener', async (t) => {
    const backends = ['198.18.255.12', '198.18.255.13'];
    const dir = t.testdir({ b0: { 'index.html': 'backend-0' }, b1: { 'index.html': 'backend-1' } });
    for (const [i, address] of backends.entries()) {
      sh(['ip', '-n', ns, 'addr', 'add', `${address}/32`, 'dev', 'lo']);
      const srv = spawn(
        'ip',
        ['netns', 'exec', ns, 'python3', '-m', 'http.server', '80', '--bind', address, '--directory', `${dir}/b${i}`],
        {
          stdio: 'ignore',
        },
      );
      t.teardown(() => {
        srv.kill('SIGKILL');
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
    // The listener port has nothing behind it: only a kernel DNAT to an endpoint can answer.
    const kernel: InterceptTarget = {
      ...target,
      listenPort: 40009,
      endpoints: backends.map((address) => ({ address, port: 80 })),
    };
    const interceptor = newInterceptor();
    await interceptor.start();
    await interceptor.sync([kernel]);
    const body = () => {
      try {
        return sh(['ip', 'netns', 'exec', ns, 'curl', '-s', '-m', '2', 'http://198.19.0.10:8080/']);
      } catch {
        return 'failed';
      }
    };
    const seen = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const b = body();
      seen.set(b, (seen.get(b) ?? 0) + 1);
    }
    t.same([...seen.keys()].sort(), ['backend-0', 'backend-1'], 'both endpoints answer, nothing fails');
    t.ok(Math.min(...seen.values()) >= 8, `spread: ${JSON.stringify([...seen])}`);
    t.match(save(), /--mode random --probability 0\.5/, 'one statistic rule for two endpoints');
    await interceptor.sync([{ ...kernel, endpoints: [{ address: backends[1] as string, port: 80 }] }]);
    for (let i = 0; i < 5; i++) t.equal(body(), 'backend-1', 'an endpoint gone: new connections avoid it');
    await interceptor.sync([{ ...kernel, endpoints: [] }]);
    t.equal(body(), 'failed', 'no endpoint: back to the (here absent) listener');
    await interceptor.cleanup();
    t.notMatch(save(), /MESHLET/);
  });

  t.test('auto picks the backend that already holds the rules', async (t) => {
    const legacyNs = `ml-ipl-${process.pid}`;
    makeNetns(t, legacyNs);
    const legacyRun = inNetns(legacyNs);
    t.equal((await detectBackend('ipv4', 'auto', legacyRun)).backend, 'nft', 'nft on a tie');
    await runCommand('ip', [
      'netns',
      'exec',
      legacyNs,
      'iptables-legacy',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-d',
      '198.18.9.9/32',
      '-j',
      'ACCEPT',
    ]);
    t.equal((await detectBackend('ipv4', 'auto', legacyRun)).backend, 'legacy');
    t.equal((await detectBackend('ipv4', 'nft', legacyRun)).backend, 'nft', 'an explicit choice wins');
  });
}
