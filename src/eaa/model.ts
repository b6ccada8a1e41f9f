import { compactRaw, decodeFirst, goString, type JsonNode, JsonTypeError, stringField, structFields } from './json.ts';

/**
 * The OpenNESS EAA wire types (pkg/eaa/eaa_model.go; docs/eaa.md §Types) with decoders that
 * accept and refuse what Go's decoder does, and encoders that write Go's field order, omitempty
 * and escaping. A decode error is always a JsonSyntaxError or a JsonTypeError.
 */

export interface Urn {
  id: string;
  namespace: string;
}

export interface NotificationDescriptor {
  name: string;
  version: string;
  description: string;
}

/** A registered service. `urn` always comes from the producer's certificate, never the body. */
export interface Service {
  urn: Urn;
  description: string;
  endpointUri: string;
  /** Stored and returned as sent; the EAA never sets it. */
  status: string;
  notifications: NotificationDescriptor[];
  /** `info` as compacted raw JSON text, or undefined when absent. */
  info: string | undefined;
}

/** One entry of a consumer's subscriptions: a namespace (`id` empty) or a single producer. */
export interface Subscription {
  urn: Urn;
  notifications: NotificationDescriptor[];
}

export interface NotificationFromProducer {
  name: string;
  version: string;
  /** Compacted raw JSON text, or undefined when absent. */
  payload: string | undefined;
}

/** The identity in a client certificate's CN, `namespace:id` split at the first colon. */
export function urnFromCommonName(cn: string): Urn | undefined {
  const i = cn.indexOf(':');
  return i < 0 ? undefined : { namespace: cn.slice(0, i), id: cn.slice(i + 1) };
}

function decodeUrn(node: JsonNode | undefined): void {
  if (node === undefined || node.kind === 'null') return;
  const f = structFields(node, ['id', 'namespace'], 'URN');
  stringField(f.get('id'), 'id');
  stringField(f.get('namespace'), 'namespace');
}

function decodeDescriptor(node: JsonNode): NotificationDescriptor {
  if (node.kind === 'null') return { name: '', version: '', description: '' };
  const f = structFields(node, ['name', 'version', 'description'], 'NotificationDescriptor');
  return {
    name: stringField(f.get('name'), 'name'),
    version: stringField(f.get('version'), 'version'),
    description: stringField(f.get('description'), 'description'),
  };
}

function decodeDescriptorArray(node: JsonNode | undefined): NotificationDescriptor[] {
  if (node === undefined || node.kind === 'null') return [];
  if (node.kind !== 'array') throw new JsonTypeError(`cannot decode ${node.kind} into []NotificationDescriptor`);
  return node.items.map(decodeDescriptor);
}

function raw(src: string, node: JsonNode | undefined): string | undefined {
  return node === undefined ? undefined : compactRaw(src, node);
}

/**
 * POST /services body. Entries of `notifications` without a name or a version are dropped
 * (validServiceNotifications); the `urn` in the body is type-checked and then ignored.
 */
export function decodeService(body: string, urn: Urn): Service {
  const node = decodeFirst(body);
  const empty: Service = { urn, description: '', endpointUri: '', status: '', notifications: [], info: undefined };
  if (node.kind === 'null') return empty;
  const f = structFields(node, ['urn', 'description', 'endpoint_uri', 'status', 'notifications', 'info'], 'Service');
  decodeUrn(f.get('urn'));
  return {
    urn,
    description: stringField(f.get('description'), 'description'),
    endpointUri: stringField(f.get('endpoint_uri'), 'endpoint_uri'),
    status: stringField(f.get('status'), 'status'),
    notifications: decodeDescriptorArray(f.get('notifications')).filter((n) => n.name !== '' && n.version !== ''),
    info: raw(body, f.get('info')),
  };
}

/** The body of the subscribe and unsubscribe routes: a JSON array of descriptors (null = none). */
export function decodeDescriptorList(body: string): NotificationDescriptor[] {
  return decodeDescriptorArray(decodeFirst(body));
}

export function decodeNotification(body: string): NotificationFromProducer {
  const node = decodeFirst(body);
  if (node.kind === 'null') return { name: '', version: '', payload: undefined };
  const f = structFields(node, ['name', 'version', 'payload'], 'NotificationFromProducer');
  return {
    name: stringField(f.get('name'), 'name'),
    version: stringField(f.get('version'), 'version'),
    payload: raw(body, f.get('payload')),
  };
}

/** POST /auth body (AuthIdentity, OpenNESS ≤ 20.09). */
export function decodeAuthIdentity(body: string): { csr: string } {
  const node = decodeFirst(body);
  if (node.kind === 'null') return { csr: '' };
  const f = structFields(node, ['csr'], 'AuthIdentity');
  return { csr: stringField(f.get('csr'), 'csr') };
}

// ---- encoders: Go struct order, omitempty, HTML-safe strings --------------------------------

type Part = [key: string, json: string | undefined];

function object(parts: Part[]): string {
  const kept = parts.filter((p): p is [string, string] => p[1] !== undefined);
  return `{${kept.map(([k, v]) => `"${k}":${v}`).join(',')}}`;
}

function str(s: string): string | undefined {
  return s === '' ? undefined : goString(s);
}

function list<T>(items: readonly T[], encode: (item: T) => string): string | undefined {
  return items.length === 0 ? undefined : `[${items.map(encode).join(',')}]`;
}

export function encodeUrn(urn: Urn): string {
  return object([
    ['id', str(urn.id)],
    ['namespace', str(urn.namespace)],
  ]);
}

export function encodeDescriptor(d: NotificationDescriptor): string {
  return object([
    ['name', str(d.name)],
    ['version', str(d.version)],
    ['description', str(d.description)],
  ]);
}

export function encodeService(s: Service): string {
  return object([
    ['urn', encodeUrn(s.urn)],
    ['description', str(s.description)],
    ['endpoint_uri', str(s.endpointUri)],
    ['status', str(s.status)],
    ['notifications', list(s.notifications, encodeDescriptor)],
    ['info', s.info],
  ]);
}

/** GET /services: `{"services":[…]}`, or `{}` when there are none; json.Encoder adds "\n". */
export function encodeServiceList(services: readonly Service[]): string {
  return `${object([['services', list(services, encodeService)]])}\n`;
}

export function encodeSubscriptionList(subs: readonly Subscription[]): string {
  const one = (s: Subscription) =>
    object([
      ['urn', encodeUrn(s.urn)],
      ['notifications', list(s.notifications, encodeDescriptor)],
    ]);
  return `${object([['subscriptions', list(subs, one)]])}\n`;
}

/** The WebSocket text frame: the producer's URN under the key `producer` (not `urn`). */
export function encodeNotificationToConsumer(n: NotificationFromProducer, producer: Urn): string {
  // Built by hand, not with object(): this runs for every notification, and the field order and
  // omitempty rules are fixed (name, version, payload, producer).
  let out = '{';
  if (n.name !== '') out += `"name":${goString(n.name)},`;
  if (n.version !== '') out += `"version":${goString(n.version)},`;
  if (n.payload !== undefined) out += `"payload":${n.payload},`;
  return `${out}"producer":${encodedProducer(producer)}}`;
}

/** encodeUrn() of recent producers: the same few publish all the time. */
const producerJson = new Map<string, string>();

function encodedProducer(urn: Urn): string {
  const key = `${urn.namespace}\u0000${urn.id}`;
  let json = producerJson.get(key);
  if (json === undefined) {
    if (producerJson.size >= 10_000) producerJson.clear();
    json = encodeUrn(urn);
    producerJson.set(key, json);
  }
  return json;
}

/** POST /auth response (AuthCredentials); `ca_chain` and `ca_pool` both hold the root. */
export function encodeAuthCredentials(id: string, certificate: string, caChain: string[], caPool: string[]): string {
  return `${object([
    ['id', str(id)],
    ['certificate', str(certificate)],
    ['ca_chain', list(caChain, goString)],
    ['ca_pool', list(caPool, goString)],
  ])}\n`;
}
