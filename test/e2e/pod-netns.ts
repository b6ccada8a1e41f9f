import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { NetnsNode } from '../harness/netns.ts';

/**
 * A pod behind a node: its own network namespace joined to the node's by a veth pair, with the
 * routes a CNI would give it (the service range and meshlet's address via the node). Its
 * traffic reaches meshlet through the node's nat PREROUTING hook, as pod traffic does.
 */
export interface PodNetns {
  netns: string;
  address: string;
  /** Runs a command in the pod; resolves with stdout, rejects with stderr. */
  run(cmd: string, args: string[], timeoutMs?: number): string;
  remove(): void;
}

export function createPodNetns(
  node: NetnsNode,
  name: string,
  opts: { nodeSide: string; podSide: string; prefix: number; routes: string[]; resolvConf: string },
): PodNetns {
  const sh = (args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const hostEnd = `${name.slice(0, 10)}-h`;
  const podEnd = `${name.slice(0, 10)}-p`;
  sh(['netns', 'add', name]);
  const remove = () => {
    try {
      sh(['netns', 'del', name]);
    } catch {}
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  };
  try {
    sh(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', podEnd]);
    sh(['link', 'set', hostEnd, 'netns', node.netns]);
    sh(['link', 'set', podEnd, 'netns', name]);
    sh(['-n', node.netns, 'addr', 'add', `${opts.nodeSide}/${opts.prefix}`, 'dev', hostEnd]);
    sh(['-n', node.netns, 'link', 'set', hostEnd, 'up']);
    sh(['-n', name, 'addr', 'add', `${opts.podSide}/${opts.prefix}`, 'dev', podEnd]);
    sh(['-n', name, 'link', 'set', podEnd, 'up']);
    sh(['-n', name, 'link', 'set', 'lo', 'up']);
    for (const route of opts.routes) sh(['-n', name, 'route', 'add', route, 'via', opts.nodeSide]);
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    writeFileSync(`/etc/netns/${name}/resolv.conf`, opts.resolvConf);
  } catch (err) {
    remove();
    throw err;
  }
  return {
    netns: name,
    address: opts.podSide,
    run: (cmd, args, timeoutMs = 10_000) =>
      execFileSync('ip', ['netns', 'exec', name, cmd, ...args], {
        encoding: 'utf8',
        timeout: timeoutMs,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    remove,
  };
}
