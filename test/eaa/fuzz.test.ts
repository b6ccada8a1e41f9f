import t from 'tap';
import { compactRaw, decodeFirst, JsonSyntaxError, JsonTypeError } from '../../src/eaa/json.ts';
import { decodeAuthIdentity, decodeDescriptorList, decodeNotification, decodeService } from '../../src/eaa/model.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { seededRandom } from '../harness/seeded.ts';
import { authenticate, client, sharedCa, startNode, tempDir } from './helpers.ts';

// Hostile bodies: a seeded stream of mutated and random JSON through the decoders (in process,
// compared with JSON.parse), then over mutual TLS against a live agent, which must answer
// each with a known status, keep serving, and keep what it held.

const SEED = Number(process.env.EAA_FUZZ_SEED ?? 20260307);
const SEEDS = [
  '{"urn":{"id":"p","namespace":"n"},"description":"d <&>","endpoint_uri":"e","notifications":[{"name":"a","version":"1","description":"x"}],"info":{"k":[1,2.50,-3e2],"s":"\\u00e9\\n"}}',
  '[{"name":"a","version":"1"},{"name":"b","version":"2","description":"\\"q\\""}]',
  '{"name":"e","version":"1.0.0","payload":{"msg":"Mon Jan 2", "n": null, "t": true}}',
  '{"csr":"-----BEGIN CERTIFICATE REQUEST-----\\nMIIB\\n-----END CERTIFICATE REQUEST-----\\n"}',
];
const ALPHABET = '{}[]":,\\ 0123456789.eE+-truefalsnl\n\tabc\u00e9\u2028<>&';

/** A body for a TAP message: U+2028/2029 escaped (raw, they break TAP lines). */
const show = (s: string) => JSON.stringify(s).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);

function mutate(r: () => number): string {
  const base = SEEDS[Math.floor(r() * SEEDS.length)] as string;
  const kind = Math.floor(r() * 5);
  const pick = () => ALPHABET[Math.floor(r() * ALPHABET.length)] as string;
  if (kind === 0) return Array.from({ length: Math.floor(r() * 60) }, pick).join('');
  const chars = base.split('');
  const edits = 1 + Math.floor(r() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(r() * (chars.length + 1));
    if (kind === 1) chars.splice(at, 1);
    else if (kind === 2) chars.splice(at, 0, pick());
    else if (kind === 3) chars[at] = pick();
    else return base.slice(0, at);
  }
  return chars.join('');
}

t.test('decoders: only JSON errors, and the same verdict as JSON.parse', async (t) => {
  const r = seededRandom(SEED);
  const deadline = Date.now() + 5000;
  let n = 0;
  let valid = 0;
  const failures: string[] = [];
  for (; n < 20_000 && Date.now() < deadline; n++) {
    const body = mutate(r);
    for (const decode of [
      (b: string) => decodeService(b, { namespace: 'n', id: 'p' }),
      decodeDescriptorList,
      decodeNotification,
      decodeAuthIdentity,
    ]) {
      try {
        decode(body);
      } catch (err) {
        if (!(err instanceof JsonSyntaxError || err instanceof JsonTypeError)) {
          failures.push(`unexpected ${String(err)} for ${show(body)}`);
        }
      }
    }
    let parsed: unknown;
    let jsOk = true;
    try {
      parsed = JSON.parse(body);
    } catch {
      jsOk = false;
    }
    let node: ReturnType<typeof decodeFirst> | undefined;
    try {
      node = decodeFirst(body);
    } catch {}
    const whole = node !== undefined && /^[ \t\n\r]*$/.test(body.slice(node.end)); // JSON whitespace only
    if (jsOk !== whole) {
      failures.push(`verdict differs from JSON.parse for ${show(body)}`);
      continue;
    }
    if (node && jsOk) {
      valid++;
      const compact = compactRaw(body, node);
      if (
        JSON.stringify(JSON.parse(compact)) !== JSON.stringify(parsed) ||
        /[<>&\u2028\s]/.test(compact.replace(/"(?:[^"\\]|\\.)*"/g, (s) => s.replace(/ /g, '')))
      ) {
        failures.push(`compactRaw changed the value or kept whitespace/HTML for ${show(body)}`);
      }
    }
  }
  t.same(failures.slice(0, 5), [], `no failures in ${n} bodies (${valid} valid JSON), seed ${SEED}`);
  t.ok(n >= 1000 && valid > 50, 'enough bodies, some of them valid');
});

t.test('deep nesting is refused, not a stack overflow', async (t) => {
  t.throws(() => decodeFirst('['.repeat(100_000)), JsonSyntaxError);
  t.throws(() => decodeService(`{"info":${'['.repeat(600)}${']'.repeat(600)}}`, { namespace: 'n', id: 'p' }), JsonSyntaxError);
});

if (requireOrSkip(t, { commands: ['openssl'] })) {
  const dir = await tempDir(t);
  const ca = await sharedCa(dir);
  const node = await startNode(t, { dir, ca, eaa: { maxBodyBytes: 2048 } });
  const producer = client(node.port, await authenticate(node.authPort, dir, 'fz:producer'));
  const keeper = client(node.port, await authenticate(node.authPort, dir, 'fz:keeper'));

  t.test('over the wire: known statuses only, still serving, nothing lost', async (t) => {
    await keeper.call('POST', '/services', '{"description":"keep me"}');
    await keeper.call('POST', '/subscriptions/fz', '[{"name":"a","version":"1"}]');
    const services = (await keeper.call('GET', '/services')).body;
    const subs = (await keeper.call('GET', '/subscriptions')).body;
    const routes: [string, string][] = [
      ['POST', '/services'],
      ['POST', '/subscriptions/fz'],
      ['POST', '/subscriptions/fz/other'],
      ['DELETE', '/subscriptions/zz'],
      ['POST', '/notifications'],
    ];
    const r = seededRandom(SEED + 1);
    const allowed = new Set([200, 201, 202, 204, 401, 413, 429, 500]);
    const unexpected: string[] = [];
    const deadline = Date.now() + 8000;
    let n = 0;
    for (; n < 300 && Date.now() < deadline; n++) {
      const [method, path] = routes[Math.floor(r() * routes.length)] as [string, string];
      const body = r() < 0.05 ? 'x'.repeat(3000) : mutate(r);
      const res = await producer.call(method, path, body);
      if (!allowed.has(res.status)) unexpected.push(`${method} ${path} ${show(body)} → ${res.status}`);
    }
    t.same(unexpected.slice(0, 5), [], `known statuses for ${n} requests`);
    t.ok(n >= 50, 'enough requests');
    t.equal((await keeper.call('GET', '/subscriptions')).body, subs, "another app's subscriptions are intact");
    const now = (await keeper.call('GET', '/services')).body;
    t.match(now, '"description":"keep me"', "another app's registration is intact");
    t.ok(services.length > 0);
  });
}
