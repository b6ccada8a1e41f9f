import { RCODE } from './wire/constants.ts';
import type { Query } from './wire/query.ts';

/**
 * The handler contract (see dns/README.md). A handler looks at one query and does one of three
 * things, and says so by what it returns:
 *
 * - answered: `{ kind: 'answer', message }`, a whole DNS message (flags and rcode set, the
 *   question in lower case, no OPT); the server adds the client's ID, case, OPT and truncation.
 * - passed on: `return next()`, the rest of the chain decides (a handler may also look at what
 *   `next()` returned, as the cache does, or ask it about another name, as CNAME chasing does).
 * - failed: `{ kind: 'fail', rcode, reason }`; the client gets that rcode (usually SERVFAIL).
 *
 * Handlers return synchronously when they can (the cluster zone always does), so cluster
 * answers never wait for a promise. Handlers never throw for bad input; a throw is a bug and
 * becomes SERVFAIL.
 */
export type Outcome =
  /** `final`: the message was built for this very query (ID, case, OPT, size) and is sent as is. */
  { kind: 'answer'; message: Buffer; by: string; final?: boolean } | { kind: 'fail'; rcode: number; by: string; reason: string };

export type Next = (query?: Query) => Outcome | Promise<Outcome>;

export interface DnsHandler {
  readonly name: string;
  handle(query: Query, next: Next): Outcome | Promise<Outcome>;
}

/** Runs `query` through `handlers` in order; past the last one nobody is responsible: REFUSED. */
export function runChain(handlers: readonly DnsHandler[], query: Query, from = 0): Outcome | Promise<Outcome> {
  const handler = handlers[from];
  if (!handler) return { kind: 'fail', rcode: RCODE.REFUSED, by: 'chain', reason: 'no handler serves this name' };
  return handler.handle(query, (q = query) => runChain(handlers, q, from + 1));
}

/**
 * The order of the chain, in one place. A query goes down the list until a handler answers or
 * fails. (Before the chain, the server looks up the cluster zone's pre-encoded answers: the
 * same answers the cluster handler gives, only without building anything.)
 */
export function buildChain(h: { cluster: DnsHandler; cache: DnsHandler; forward: DnsHandler }): DnsHandler[] {
  return [
    h.cluster, // the cluster zone: authoritative answers, NXDOMAIN/NODATA inside <domain>, PTR of cluster IPs
    h.cache, // forwarded answers while fresh; expired ones when the forward below fails (RFC 8767)
    h.forward, // the upstream resolvers: UDP, TCP on truncation, failover in order
  ];
}
