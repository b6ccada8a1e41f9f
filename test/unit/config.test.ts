import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { renderDefaultConfig } from '../../src/config/print-defaults.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { configLeaves } from '../../src/config/schema-walk.ts';
import { ErrorCodes, isMeshletError } from '../../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-config-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Runs loadConfig and returns the thrown error's message, failing the test if nothing was thrown. */
function loadError(t: Test, opts: Parameters<typeof loadConfig>[0]): string {
  try {
    loadConfig(opts);
  } catch (err) {
    t.ok(isMeshletError(err), 'a MeshletError');
    return err instanceof Error ? err.message : String(err);
  }
  t.fail('expected the config to be rejected');
  return '';
}

t.test('defaults work without any file', async (t) => {
  const config = loadConfig({ env: {} });
  t.equal(config.cluster.domain, 'cluster.local');
  t.equal(config.admin.address, '127.0.0.1');
  t.equal(config.source.kind, 'file');
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.dns), 'deep-frozen');
});

t.test('precedence: defaults < file < environment < flags', async (t) => {
  const path = file('p.yaml', 'dns:\n  port: 1053\nadmin:\n  port: 2000\nlog:\n  level: warn\n');
  const config = loadConfig({
    file: path,
    env: { MESHLET_ADMIN_PORT: '3000', MESHLET_LOG_LEVEL: 'debug' },
    sets: ['log.level=error'],
  });
  t.equal(config.dns.port, 1053, 'file beats default');
  t.equal(config.admin.port, 3000, 'env beats file');
  t.equal(config.log.level, 'error', 'flag beats env');
  t.equal(config.cluster.domain, 'cluster.local', 'untouched field keeps its default');
});

t.test('relative registry path is resolved against the config file directory', async (t) => {
  const path = file('rel.yaml', 'source:\n  file:\n    path: reg.yaml\n');
  t.equal(loadConfig({ file: path, env: {} }).source.file.path, join(dir, 'reg.yaml'));
});

t.test('bad values name the field, the value and what is allowed', async (t) => {
  const path = file('bad.yaml', 'dns:\n  port: 70000\nlog:\n  level: loud\nadmin:\n  address: not-an-ip\n');
  const message = loadError(t, { file: path, env: {} });
  t.match(message, /field "dns\.port" \(from file .*bad\.yaml\): got 70000/);
  t.match(message, /allowed: integer 0\.\.65535/);
  t.match(message, /field "log\.level".*got "loud".*allowed: one of: "fatal"/);
  t.match(message, /field "admin\.address".*got "not-an-ip".*ipv4/);
});

t.test('wrong types are rejected', async (t) => {
  const path = file('types.yaml', 'dns:\n  enabled: "yes please"\n  port: "abc"\n');
  const message = loadError(t, { file: path, env: {} });
  t.match(message, /field "dns\.enabled".*expected boolean/);
  t.match(message, /field "dns\.port".*got "abc"/);
});

t.test('unknown fields are rejected with the allowed ones listed', async (t) => {
  const path = file('unknown.yaml', 'dns:\n  prot: 53\nfoo: 1\n');
  const message = loadError(t, { file: path, env: {} });
  t.match(message, /unknown field "dns\.prot".*allowed here: .*port/);
  t.match(message, /unknown field "foo"/);
});

t.test('missing and unreadable files', async (t) => {
  try {
    loadConfig({ file: join(dir, 'nope.yaml'), env: {} });
    t.fail('should throw');
  } catch (err) {
    t.ok(isMeshletError(err, ErrorCodes.CONFIG_FILE));
    t.match(String(err), /cannot read config file .*nope\.yaml/);
  }
  const broken = file('broken.yaml', 'dns:\n  port: [1, 2\n');
  t.match(loadError(t, { file: broken, env: {} }), /is not valid YAML/);
  const list = file('list.yaml', '- a\n- b\n');
  t.match(loadError(t, { file: list, env: {} }), /must hold a YAML mapping/);
  t.equal(loadConfig({ file: file('empty.yaml', ''), env: {} }).dns.port, 10053, 'an empty file means defaults');
});

t.test('environment values are typed by their field and errors name the variable', async (t) => {
  t.equal(loadConfig({ env: { MESHLET_DNS_ENABLED: 'false' } }).dns.enabled, false);
  t.match(loadError(t, { env: { MESHLET_DNS_PORT: 'fifty' } }), /field "dns\.port" \(from environment MESHLET_DNS_PORT\)/);
});

t.test('--set rejects malformed and unknown paths', async (t) => {
  t.match(loadError(t, { env: {}, sets: ['dns.port'] }), /expected path=value/);
  t.match(loadError(t, { env: {}, sets: ['dns.nope=1'] }), /no config field "dns\.nope"/);
  t.match(loadError(t, { env: {}, sets: ['dns=1'] }), /no config field "dns"/);
});

t.test('every leaf has a distinct environment variable', async (t) => {
  const names = configLeaves().map((leaf) => leaf.envName);
  t.equal(new Set(names).size, names.length);
  t.ok(names.includes('MESHLET_SOURCE_FILE_DEBOUNCE_MS'));
});

t.test('--print-defaults is complete, commented and loads back to the defaults', async (t) => {
  const text = renderDefaultConfig();
  for (const leaf of configLeaves()) {
    t.match(text, new RegExp(`env: ${leaf.envName}\\b`), `${leaf.path.join('.')} documented`);
  }
  const doc = parseYaml(text) as { node: { name: string } };
  doc.node.name = 'n1';
  const path = file('roundtrip.yaml', JSON.stringify(doc));
  const loaded = loadConfig({ file: path, env: {} });
  const expected = ConfigSchema.parse({ node: { name: 'n1' } });
  expected.source.file.path = join(dir, expected.source.file.path);
  t.same(loaded, expected);
});
