import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';

/**
 * meshlet's nat rules, rendered as iptables-restore input. Pure functions: the exact rules are
 * asserted by unit tests, and the host is touched only by interceptor.ts.
 *
 * Layout (one pair of chains per address family):
 *   PREROUTING, OUTPUT  → -j MESHLET-SERVICES   (inserted first, ahead of kube-proxy's KUBE-SERVICES)
 *   MESHLET-SERVICES    → marker rule (ruleset hash), one DNAT per clusterIP:port,
 *                          then -m addrtype --dst-type LOCAL -j MESHLET-NODEPORTS
 *   MESHLET-NODEPORTS   → one DNAT per nodePort
 * Every DNAT goes to the listener of that service port on meshlet's own address, so the port
 * itself tells the proxy which service port a connection is for (no SO_ORIGINAL_DST needed);
 * except a clusterIP:port forwarded in the kernel (kernel-forwarding.ts), whose rules DNAT to
 * one of its endpoints, picked with `-m statistic --mode random` (rule i of n matches with
 * probability 1/(n-i), so each endpoint gets 1/n of the connections). Its nodePort still goes
 * to the listener: an outside client's replies would otherwise bypass this node's conntrack.
 */

export const SERVICES_CHAIN = 'MESHLET-SERVICES';
export const NODEPORTS_CHAIN = 'MESHLET-NODEPORTS';
export const JUMP_COMMENT = 'meshlet service portals';
export const HOOK_CHAINS = ['PREROUTING', 'OUTPUT'] as const;

export type Family = 'ipv4' | 'ipv6';

/** One intercepted service port: traffic to clusterIP:port (and nodePort) goes to the listener. */
export interface InterceptTarget {
  /** `namespace/name:portName`, written as the rule's comment. */
  id: string;
  protocol: 'TCP' | 'UDP';
  clusterIPs: string[];
  port: number;
  nodePort?: number;
  listenAddress: string;
  listenPort: number;
  /** Set when clusterIP:port is forwarded in the kernel: DNAT straight to one of these. */
  endpoints?: readonly { address: string; port: number }[];
}

export interface RenderedRuleset {
  family: Family;
  /** Hash of the rules, carried in the marker rule so a verify can tell ours from a tampered copy. */
  hash: string;
  /** Rules of MESHLET-SERVICES and MESHLET-NODEPORTS, without the `-A CHAIN` prefix. */
  services: string[];
  nodePorts: string[];
}

function quote(comment: string): string {
  return `"${comment.replace(/["\\]/g, '')}"`;
}

function destination(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The rules for one address family, in a stable order (sorted by id) so equal input gives equal output. */
export function renderRuleset(family: Family, targets: readonly InterceptTarget[]): RenderedRuleset {
  const ofFamily = (ip: string) => (family === 'ipv6') === isIPv6(ip);
  const sorted = [...targets].filter((t) => ofFamily(t.listenAddress)).sort((a, b) => a.id.localeCompare(b.id));
  const services: string[] = [];
  const nodePorts: string[] = [];
  const mask = family === 'ipv6' ? 128 : 32;
  for (const t of sorted) {
    const proto = t.protocol.toLowerCase();
    const to = `-j DNAT --to-destination ${destination(t.listenAddress, t.listenPort)}`;
    const direct = (t.endpoints ?? []).filter((e) => ofFamily(e.address));
    for (const ip of t.clusterIPs.filter(ofFamily)) {
      const match = `-d ${ip}/${mask} -p ${proto} -m ${proto} --dport ${t.port}`;
      if (direct.length === 0) {
        services.push(`${match} -m comment --comment ${quote(t.id)} ${to}`);
        continue;
      }
      direct.forEach((e, i) => {
        const left = direct.length - i;
        const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
        const comment = quote(`${t.id} kernel ${i + 1}/${direct.length}`);
        services.push(
          `${match} -m comment --comment ${comment}${pick} -j DNAT --to-destination ${destination(e.address, e.port)}`,
        );
      });
    }
    if (t.nodePort !== undefined) {
      nodePorts.push(`-p ${proto} -m ${proto} --dport ${t.nodePort} -m comment --comment ${quote(`${t.id} nodePort`)} ${to}`);
    }
  }
  services.push(`-m addrtype --dst-type LOCAL -j ${NODEPORTS_CHAIN}`);
  const hash = createHash('sha256')
    .update([...services, '--', ...nodePorts].join('\n'))
    .digest('hex')
    .slice(0, 16);
  return { family, hash, services, nodePorts };
}

export function markerComment(hash: string): string {
  return `meshlet ruleset ${hash}`;
}

/**
 * iptables-restore --noflush input that replaces the contents of meshlet's chains in one
 * atomic commit (declaring a chain flushes it) and puts the jumps first in PREROUTING and
 * OUTPUT. `staleJumps` are existing jump rules (as iptables-save prints them) to delete first.
 */
export function renderRestore(
  ruleset: RenderedRuleset,
  hooks: { chain: string; staleJumps: string[]; needsJump: boolean }[],
): string {
  const lines = ['*nat', `:${SERVICES_CHAIN} - [0:0]`, `:${NODEPORTS_CHAIN} - [0:0]`];
  for (const hook of hooks) {
    for (const stale of hook.staleJumps) lines.push(stale.replace(/^-A /, '-D '));
    if (hook.needsJump) lines.push(`-I ${hook.chain} 1 -m comment --comment ${quote(JUMP_COMMENT)} -j ${SERVICES_CHAIN}`);
  }
  lines.push(`-A ${SERVICES_CHAIN} -m comment --comment ${quote(markerComment(ruleset.hash))}`);
  for (const rule of ruleset.services) lines.push(`-A ${SERVICES_CHAIN} ${rule}`);
  for (const rule of ruleset.nodePorts) lines.push(`-A ${NODEPORTS_CHAIN} ${rule}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** iptables-restore --noflush input that removes every trace of meshlet from the nat table. */
export function renderCleanup(state: NatState): string {
  const lines = ['*nat'];
  for (const chain of HOOK_CHAINS) for (const jump of state.jumps[chain]) lines.push(jump.replace(/^-A /, '-D '));
  for (const chain of [SERVICES_CHAIN, NODEPORTS_CHAIN]) if (state.chains.has(chain)) lines.push(`-F ${chain}`);
  for (const chain of [SERVICES_CHAIN, NODEPORTS_CHAIN]) if (state.chains.has(chain)) lines.push(`-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** What `iptables-save -t nat` shows of meshlet. */
export interface NatState {
  /** Chains declared in the table. */
  chains: Set<string>;
  /** Per hook chain, its rules in order (as printed), and which of them jump to MESHLET-SERVICES. */
  hooks: Record<(typeof HOOK_CHAINS)[number], string[]>;
  jumps: Record<(typeof HOOK_CHAINS)[number], string[]>;
  /** Rules of MESHLET-SERVICES / MESHLET-NODEPORTS as printed. */
  rules: Map<string, string[]>;
}

export function parseNatSave(save: string): NatState {
  const state: NatState = {
    chains: new Set(),
    hooks: { PREROUTING: [], OUTPUT: [] },
    jumps: { PREROUTING: [], OUTPUT: [] },
    rules: new Map(),
  };
  let inNat = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) inNat = line === '*nat';
    if (!inNat) continue;
    if (line.startsWith(':')) state.chains.add(line.slice(1).split(' ')[0] ?? '');
    if (!line.startsWith('-A ')) continue;
    const chain = line.split(' ')[1] ?? '';
    if (chain === 'PREROUTING' || chain === 'OUTPUT') {
      state.hooks[chain].push(line);
      if (line.endsWith(`-j ${SERVICES_CHAIN}`)) state.jumps[chain].push(line);
    }
    if (chain === SERVICES_CHAIN || chain === NODEPORTS_CHAIN) {
      const list = state.rules.get(chain) ?? [];
      list.push(line);
      state.rules.set(chain, list);
    }
  }
  return state;
}

/** Why the installed rules differ from the wanted ones; empty when they match. */
export function driftOf(state: NatState, wanted: RenderedRuleset): string[] {
  const drift: string[] = [];
  for (const chain of HOOK_CHAINS) {
    const jumps = state.jumps[chain];
    if (jumps.length === 0) drift.push(`no jump from ${chain}`);
    else if (state.hooks[chain][0] !== jumps[0] || jumps.length > 1) drift.push(`jump from ${chain} is not the only first rule`);
  }
  const services = state.rules.get(SERVICES_CHAIN) ?? [];
  const nodePorts = state.rules.get(NODEPORTS_CHAIN) ?? [];
  if (!services[0]?.includes(markerComment(wanted.hash))) drift.push('ruleset marker missing or stale');
  if (services.length !== wanted.services.length + 1)
    drift.push(`${SERVICES_CHAIN} has ${Math.max(services.length - 1, 0)} rules, want ${wanted.services.length}`);
  if (nodePorts.length !== wanted.nodePorts.length)
    drift.push(`${NODEPORTS_CHAIN} has ${nodePorts.length} rules, want ${wanted.nodePorts.length}`);
  return drift;
}
