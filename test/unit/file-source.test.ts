import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ErrorCodes, isMeshletError } from '../../src/errors.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import { FileSource, readRegistryFile } from '../../src/sources/file-source.ts';

const VALID = `
nodes:
  - name: node-a
    addresses: [198.18.0.10]
    zone: zone-a
services:
  - name: web
    clusterIP: 198.19.0.10
    ports:
      - { name: http, port: 80, targetPort: 8080, appProtocol: http }
    endpoints:
      - addresses: [198.18.1.1]
        nodeName: node-a
        hostname: web-0
      - addresses: [198.18.1.2]
        ports: { http: 9090 }
        ready: false
  - name: db
    namespace: data
    clusterIP: None
    ports: [{ port: 5432 }]
  - name: docs
    type: ExternalName
    externalName: example.org
`;

function setup(t: Test, text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-fs-'));
  const path = join(dir, 'registry.yaml');
  writeFileSync(path, text);
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const source = new FileSource({ path, watch: true, debounceMs: 20 });
  t.teardown(async () => {
    await source.stop();
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, path, registry, source };
}

/**
 * Waits for an event, failing after a bound so a missed watch never hangs the run. The timer
 * is a referenced one: the watcher itself does not keep the process alive.
 */
async function next(source: FileSource, event: 'loaded' | 'rejected'): Promise<unknown[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no '${event}' event within 5 s`)), 5_000);
  try {
    return await once(source, event, { signal: abort.signal });
  } finally {
    clearTimeout(timer);
  }
}

t.test('a valid file becomes registry objects with Kubernetes defaults', async (t) => {
  const { registry, source } = setup(t, VALID);
  await source.start(registry);
  registry.flush();
  t.ok(source.status().synced);
  const web = registry.getService('default', 'web');
  t.same(web?.clusterIPs, ['198.19.0.10']);
  t.equal(web?.sessionAffinity, 'None');
  t.same(web?.ports, [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, appProtocol: 'http' }]);
  const slices = registry.endpointSlicesOf('default', 'web');
  t.equal(slices.length, 2, 'endpoints with different port numbers go in different slices');
  t.same(slices[0]?.ports[0], { name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' });
  t.same(slices[0]?.endpoints[0], {
    addresses: ['198.18.1.1'],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: 'node-a',
    hostname: 'web-0',
  });
  t.equal(slices[1]?.ports[0]?.port, 9090);
  t.same(slices[1]?.endpoints[0]?.conditions, { ready: false, serving: false, terminating: false });
  const db = registry.getService('data', 'db');
  t.ok(db?.headless);
  t.same(db?.clusterIPs, []);
  t.equal(registry.getService('default', 'docs')?.externalName, 'example.org');
  t.equal(registry.getNode('node-a')?.zone, 'zone-a');
});

t.test('an invalid file at start is an error naming the problem', async (t) => {
  const { registry, source } = setup(t, 'services:\n  - name: Web_1\n    ports: [{ port: 99999 }]\n');
  await t.rejects(source.start(registry), {
    code: ErrorCodes.SOURCE_INVALID,
    message: /services\[0\]\.name[\s\S]*ports\[0\]\.port/,
  });
});

t.test('invalid input of every kind is refused with a clear reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-fs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cases: [string, RegExp][] = [
    ['services: [\n', /not valid YAML/],
    ['servics: []\n', /Unrecognized key: "servics"/],
    ['services:\n  - name: a\n    clusterIP: 10.0.0.1x\n', /clusterIP/],
    ['services:\n  - name: a\n  - name: a\n', /listed twice/],
    ['services:\n  - name: a\n    type: ExternalName\n', /needs externalName/],
    ['services:\n  - name: a\n    ports: [{port: 1}, {port: 2}]\n', /every port needs a name/],
    [
      'services:\n  - name: a\n    ports: [{name: p, port: 1}]\n    endpoints: [{addresses: [198.18.0.1], ports: {q: 2}}]\n',
      /no service port named "q"/,
    ],
    [
      'services:\n  - name: a\n    ports: [{name: p, port: 1, targetPort: web}]\n    endpoints: [{addresses: [198.18.0.1]}]\n',
      /named targetPort "web"/,
    ],
    ['services:\n  - name: a\n    endpoints: [{addresses: [198.18.0.1, "::1"]}]\n', /mix IPv4 and IPv6/],
  ];
  for (const [i, [text, pattern]] of cases.entries()) {
    const path = join(dir, `case-${i}.yaml`);
    writeFileSync(path, text);
    t.throws(() => readRegistryFile(path), pattern, `case ${i}`);
  }
  try {
    readRegistryFile(join(dir, 'absent.yaml'));
    t.fail('should throw');
  } catch (err) {
    t.ok(isMeshletError(err, ErrorCodes.SOURCE_FILE), 'a missing file is a file error');
  }
});

t.test('a changed file is reloaded; an invalid edit keeps the last good state', async (t) => {
  const { path, registry, source } = setup(t, VALID);
  await source.start(registry);
  let loaded = next(source, 'loaded');
  writeFileSync(path, VALID.replace('198.19.0.10', '198.19.0.11'));
  await loaded;
  t.same(registry.getService('default', 'web')?.clusterIPs, ['198.19.0.11']);

  const rejected = next(source, 'rejected');
  writeFileSync(path, 'services:\n  - name: web\n    clusterIP: nonsense\n');
  await rejected;
  t.same(registry.getService('default', 'web')?.clusterIPs, ['198.19.0.11'], 'last good state kept');
  t.equal(registry.counts().services, 3);
  t.match(source.status().lastError ?? '', /clusterIP/);
  t.equal(source.status().detail.rejections, 1);

  loaded = next(source, 'loaded');
  writeFileSync(path, VALID);
  await loaded;
  t.same(registry.getService('default', 'web')?.clusterIPs, ['198.19.0.10'], 'fixed file applies');
  t.equal(source.status().lastError, undefined, 'error cleared');
});

t.test('atomic replacement by rename is seen', async (t) => {
  const { dir, path, registry, source } = setup(t, VALID);
  await source.start(registry);
  const loaded = next(source, 'loaded');
  const tmp = join(dir, '.registry.yaml.tmp');
  writeFileSync(tmp, 'services: []\n');
  renameSync(tmp, path);
  await loaded;
  t.equal(registry.counts().services, 0);
});

t.test('a deleted file keeps the last good state until it is back', async (t) => {
  const { path, registry, source } = setup(t, VALID);
  await source.start(registry);
  const rejected = next(source, 'rejected');
  rmSync(path);
  const [err] = await rejected;
  t.ok(isMeshletError(err, ErrorCodes.SOURCE_FILE));
  t.equal(registry.counts().services, 3, 'services kept');
  const loaded = next(source, 'loaded');
  writeFileSync(path, 'services: []\n');
  await loaded;
  t.equal(registry.counts().services, 0);
});

t.test('a JSON registry is read as JSON; JSON-like YAML still goes through the YAML parser', async (t) => {
  const json = JSON.stringify({
    services: [
      { name: 'web', clusterIP: '198.19.0.10', ports: [{ name: 'http', port: 80 }], endpoints: [{ addresses: ['198.18.1.1'] }] },
    ],
  });
  const { dir } = setup(t, json);
  const path = join(dir, 'registry.yaml');
  const state = readRegistryFile(path);
  t.same(
    state.services.map((s) => s.clusterIPs),
    [['198.19.0.10']],
  );
  t.equal(state.endpointSlices[0]?.endpoints[0]?.addresses[0], '198.18.1.1');
  // Flow YAML that is not JSON (unquoted keys, a comment) falls back to the YAML parser.
  writeFileSync(path, '{ services: [ { name: web, clusterIP: 198.19.0.11 } ] } # flow style\n');
  t.same(readRegistryFile(path).services[0]?.clusterIPs, ['198.19.0.11']);
  writeFileSync(path, '{ "services": [ }');
  t.throws(() => readRegistryFile(path), /not valid YAML/, 'broken JSON reports the YAML error');
});

t.test('a reload of unchanged text applies nothing', async (t) => {
  const { registry, source } = setup(t, VALID);
  await source.start(registry);
  registry.flush();
  const version = registry.version;
  t.ok(source.reload());
  t.ok(source.reload());
  registry.flush();
  t.equal(source.status().detail.loads, 1, 'parsed and applied once');
  t.equal(registry.version, version, 'subscribers not woken');
});
