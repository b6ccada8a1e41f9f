import { z } from 'zod';
import type { KeyRing } from './auth.ts';

/**
 * The wire formats of the witness protocol, shared by the agent (which writes them) and the
 * controller (which checks them). Everything a stranger could send is parsed with a strict,
 * bounded schema first and its signature checked second; a failure is a reason, never a throw.
 */

const NODE_NAME = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
const TIME = z.iso.datetime({ offset: true });
const NONCE = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/);
const MAC = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const VERSION = z
  .string()
  .max(64)
  .regex(/^[\w.+-]*$/);

/** A node's own view of the cloud (from the apiserver cache's reachability signal). */
export const CloudView = z.strictObject({ reachable: z.boolean(), known: z.boolean(), since: TIME });
export type CloudView = z.infer<typeof CloudView>;

// ---------------------------------------------------------------------------------------------
// Probes (UDP, one datagram each way)

export const MAX_DATAGRAM_BYTES = 1024;

const Probe = z.strictObject({
  t: z.literal('probe'),
  from: NODE_NAME,
  to: NODE_NAME,
  nonce: NONCE,
  ts: z.number().int().nonnegative(),
  mac: MAC,
});
const Ack = z.strictObject({
  t: z.literal('ack'),
  from: NODE_NAME,
  to: NODE_NAME,
  nonce: NONCE,
  ts: z.number().int().nonnegative(),
  cloud: CloudView,
  version: VERSION,
  mac: MAC,
});
export type Probe = z.infer<typeof Probe>;
export type Ack = z.infer<typeof Ack>;
const Datagram = z.discriminatedUnion('t', [Probe, Ack]);

export function probeText(p: Omit<Probe, 'mac'>): string {
  return `probe|${p.from}|${p.to}|${p.nonce}|${p.ts}`;
}

export function ackText(a: Omit<Ack, 'mac'>): string {
  return `ack|${a.from}|${a.to}|${a.nonce}|${a.ts}|${a.cloud.reachable}|${a.cloud.known}|${a.cloud.since}|${a.version}`;
}

export function signProbe(keys: KeyRing, p: Omit<Probe, 'mac'>): Buffer {
  return Buffer.from(JSON.stringify({ ...p, mac: keys.sign(p.from, probeText(p)) }));
}

export function signAck(keys: KeyRing, a: Omit<Ack, 'mac'>): Buffer {
  return Buffer.from(JSON.stringify({ ...a, mac: keys.sign(a.from, ackText(a)) }));
}

export type Rejection = 'malformed' | 'bad-signature' | 'wrong-node' | 'future';

export type DatagramResult = { ok: true; msg: Probe | Ack } | { ok: false; reason: Rejection };

/** Parses and authenticates one datagram addressed to `self`. */
export function readDatagram(keys: KeyRing, self: string, buf: Buffer): DatagramResult {
  if (buf.length > MAX_DATAGRAM_BYTES) return { ok: false, reason: 'malformed' };
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const parsed = Datagram.safeParse(json);
  if (!parsed.success) return { ok: false, reason: 'malformed' };
  const msg = parsed.data;
  if (msg.to !== self || msg.from === self) return { ok: false, reason: 'wrong-node' };
  const text = msg.t === 'probe' ? probeText(msg) : ackText(msg);
  if (!keys.verify(msg.from, text, msg.mac)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, msg };
}

// ---------------------------------------------------------------------------------------------
// Reports (one Lease per reporter: witness-<node>, the report in two annotations)

export const REPORT_ANNOTATION = 'meshlet.io/witness-report';
export const REPORT_MAC_ANNOTATION = 'meshlet.io/witness-mac';
export const REPORT_LEASE_PREFIX = 'witness-';
export const MAX_REPORT_BYTES = 64 * 1024;

/** What one reporter saw of one peer. Times are the reporter's clock; `ts - lastHeard` is skew-free. */
const Sighting = z.strictObject({
  node: NODE_NAME,
  /** Last valid acknowledgement from the peer; absent when never heard. */
  lastHeard: TIME.optional(),
  rttMs: z.number().int().min(0).max(600_000).optional(),
  /** The peer's own cloud view, as its last acknowledgement carried it. */
  cloud: CloudView.optional(),
  version: VERSION.optional(),
});
export type Sighting = z.infer<typeof Sighting>;

export const Report = z.strictObject({
  v: z.literal(1),
  node: NODE_NAME,
  ts: TIME,
  agentVersion: VERSION,
  cloud: CloudView,
  peers: z.array(Sighting).max(1000),
});
export type Report = z.infer<typeof Report>;

export function reportLeaseName(node: string): string {
  return `${REPORT_LEASE_PREFIX}${node}`;
}

/** The two annotations that carry a signed report: the exact JSON text and its MAC. */
export function signReport(keys: KeyRing, report: Report): Record<string, string> {
  const text = JSON.stringify(report);
  return { [REPORT_ANNOTATION]: text, [REPORT_MAC_ANNOTATION]: keys.sign(report.node, text) };
}

export type ReportResult = { ok: true; report: Report } | { ok: false; reason: Rejection };

/**
 * Checks a report Lease: well-formed, the report names the node the Lease is named after, and
 * it is signed with that node's key (so a node cannot report as another one, nor a stranger at all).
 */
export function readReport(
  keys: KeyRing,
  leaseName: string,
  annotations: Record<string, string> | undefined,
  opts: { now: number; maxSkewMs: number },
): ReportResult {
  const text = annotations?.[REPORT_ANNOTATION];
  const mac = annotations?.[REPORT_MAC_ANNOTATION];
  if (!leaseName.startsWith(REPORT_LEASE_PREFIX)) return { ok: false, reason: 'malformed' };
  if (text === undefined || mac === undefined || text.length > MAX_REPORT_BYTES || !MAC.safeParse(mac).success) {
    return { ok: false, reason: 'malformed' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const parsed = Report.safeParse(json);
  if (!parsed.success) return { ok: false, reason: 'malformed' };
  const report = parsed.data;
  if (`${REPORT_LEASE_PREFIX}${report.node}` !== leaseName) return { ok: false, reason: 'wrong-node' };
  if (!keys.verify(report.node, text, mac)) return { ok: false, reason: 'bad-signature' };
  const ts = Date.parse(report.ts);
  if (ts > opts.now + opts.maxSkewMs) return { ok: false, reason: 'future' };
  return { ok: true, report };
}
