import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { KubeConnection } from '../../src/kube/connection.ts';
import { type KubeObject, Reflector } from '../../src/kube/reflector.ts';
import { silentLogger } from '../../src/log.ts';

/**
 * Edge cases a real apiserver cannot be made to produce on demand (a watch that expires
 * mid-stream, a torn line, a 500): a small fake serves them. The happy path runs against the
 * real kube-apiserver in test/kube.
 */
type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

async function fakeApiserver(t: Test, handler: Handler): Promise<KubeConnection> {
  const server = createServer((req, res) => handler(req, res, new URL(req.url ?? '/', 'http://x')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { server: new URL(`http://127.0.0.1:${port}`), description: 'fake', requestOptions: async () => ({}) };
}

const obj = (name: string, rv: string): KubeObject & { metadata: { name: string; resourceVersion: string } } => ({
  metadata: { name, namespace: 'default', resourceVersion: rv },
});
const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

interface Recorder {
  state: Map<string, string>;
  replaces: number;
}

function recorder(): Recorder & { handlers: ConstructorParameters<typeof Reflector>[0]['handlers'] } {
  const r: Recorder = { state: new Map(), replaces: 0 };
  return {
    ...r,
    get replaces() {
      return r.replaces;
    },
    handlers: {
      replace(items) {
        r.replaces++;
        r.state.clear();
        for (const i of items) r.state.set(i.metadata?.name ?? '', i.metadata?.resourceVersion ?? '');
      },
      upsert(i) {
        r.state.set(i.metadata?.name ?? '', i.metadata?.resourceVersion ?? '');
      },
      delete(i) {
        r.state.delete(i.metadata?.name ?? '');
      },
    },
  };
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

t.test('lists in pages, watches from the list version, follows bookmarks, resumes after a torn line', async (t) => {
  const watchFrom: string[] = [];
  let watches = 0;
  const conn = await fakeApiserver(t, (_req, res, url) => {
    if (url.searchParams.get('watch') !== '1') {
      const page2 = url.searchParams.get('continue') === 'p2';
      res.end(
        JSON.stringify({
          metadata: { resourceVersion: '10', ...(page2 ? {} : { continue: 'p2' }) },
          items: page2 ? [obj('b', '9')] : [obj('a', '8')],
        }),
      );
      return;
    }
    watchFrom.push(url.searchParams.get('resourceVersion') ?? '');
    t.equal(url.searchParams.get('allowWatchBookmarks'), 'true');
    watches++;
    if (watches === 1) {
      res.write(line('ADDED', obj('c', '11')));
      res.write(line('BOOKMARK', { metadata: { resourceVersion: '15' } }));
      res.write(line('DELETED', obj('a', '16')));
      res.end('{"type":"MODIFIED","object":{"metad'); // torn: the stream broke mid-line
    } else {
      res.write(line('MODIFIED', obj('b', '17')));
      // keep the stream open; stop() aborts it
    }
  });
  const r = recorder();
  const reflector = new Reflector({
    conn,
    path: '/api/v1/things',
    handlers: r.handlers,
    logger: silentLogger(),
    delay: async () => {},
  });
  reflector.start();
  await reflector.synced;
  t.equal(r.replaces, 1);
  await until('second watch', () => r.state.get('b') === '17');
  await reflector.stop();
  t.same(watchFrom, ['10', '16'], 'resumed from the last processed resourceVersion, not from the list');
  t.same(Object.fromEntries(r.state), { b: '17', c: '11' });
  const status = reflector.status();
  t.equal(status.bookmarks, 1);
  t.equal(status.errors, 1, 'the torn line counted as one error');
  t.match(status.lastError ?? '', /undecodable watch event/);
});

t.test('410 Gone in the watch stream relists and replaces the state', async (t) => {
  let lists = 0;
  const conn = await fakeApiserver(t, (_req, res, url) => {
    if (url.searchParams.get('watch') !== '1') {
      lists++;
      const items = lists === 1 ? [obj('old', '1')] : [obj('new', '50')];
      res.end(JSON.stringify({ metadata: { resourceVersion: lists === 1 ? '5' : '50' }, items }));
      return;
    }
    if (url.searchParams.get('resourceVersion') === '5') {
      res.end(line('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 5 (40)' }));
    }
    // the watch from 50 stays open until stop()
  });
  const r = recorder();
  const reflector = new Reflector({
    conn,
    path: '/api/v1/things',
    handlers: r.handlers,
    logger: silentLogger(),
    delay: async () => {},
  });
  reflector.start();
  await until('relist', () => lists === 2 && r.state.has('new'));
  await reflector.stop();
  t.same([...r.state.keys()], ['new'], 'objects gone while the watch was expired are removed by the relist');
  t.equal(reflector.status().errors, 0, 'an expired version is routine, not an error');
});

t.test('errors back off exponentially, then recover', async (t) => {
  let calls = 0;
  const conn = await fakeApiserver(t, (_req, res, url) => {
    calls++;
    if (calls <= 3) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd is sad' }));
      return;
    }
    if (url.searchParams.get('watch') !== '1')
      res.end(JSON.stringify({ metadata: { resourceVersion: '3' }, items: [obj('x', '3')] }));
  });
  const waits: number[] = [];
  const r = recorder();
  const reflector = new Reflector({
    conn,
    path: '/api/v1/things',
    handlers: r.handlers,
    logger: silentLogger(),
    backoffInitialMs: 100,
    backoffMaxMs: 250,
    delay: async (ms) => {
      waits.push(ms);
    },
  });
  reflector.start();
  await reflector.synced;
  await reflector.stop();
  t.equal(waits.length, 3);
  t.ok(waits[0] !== undefined && waits[0] >= 80 && waits[0] <= 120, `first wait near 100 ms (${waits[0]})`);
  t.ok(waits[1] !== undefined && waits[1] >= 160 && waits[1] <= 240, `then doubled (${waits[1]})`);
  t.ok(waits[2] !== undefined && waits[2] <= 300, `capped near the maximum (${waits[2]})`);
  t.match(reflector.status().lastError ?? '', /500 InternalError etcd is sad/);
  t.same([...r.state.keys()], ['x']);
});
