import { chmodSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { clientNodeLoaded, createKubeConnection } from '../../src/kube/connection.ts';

// Credentials are resolved by @kubernetes/client-node in a child process: the agent gets
// certificates and tokens without holding the library, except for exec plugins.

const CA = '-----BEGIN CERTIFICATE-----\nTUVTSExFVC1URVNULUNB\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nTUVTSExFVC1URVNULUNFUlQ=\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nTUVTSExFVC1URVNULUtFWQ==\n-----END PRIVATE KEY-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

function authorization(o: RequestOptions): unknown {
  return (o.headers as Record<string, unknown> | undefined)?.Authorization;
}

function kubeconfig(user: string, extraContexts = ''): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: edge
  cluster:
    server: https://198.18.0.1:6443
    certificate-authority-data: ${b64(CA)}
    tls-server-name: apiserver.edge.test
contexts:
- name: main
  context: { cluster: edge, user: main }
${extraContexts}current-context: main
users:
- name: main
  user:
${user}`;
}

t.test('client certificates: resolved in a child process, one keep-alive agent, library not loaded', async (t) => {
  const dir = t.testdir({
    'kubeconfig.yaml': kubeconfig(`    client-certificate-data: ${b64(CERT)}\n    client-key-data: ${b64(KEY)}\n`),
  });
  const conn = createKubeConnection({ kubeconfig: join(dir, 'kubeconfig.yaml'), context: '' });
  t.equal(conn.server.origin, 'https://198.18.0.1:6443');
  t.match(conn.description, /kubeconfig\.yaml, context main/);
  const a = await conn.requestOptions();
  const b = await conn.requestOptions();
  t.equal(a.ca?.toString(), CA);
  t.equal(a.cert?.toString(), CERT);
  t.equal(a.key?.toString(), KEY);
  t.equal(a.servername, 'apiserver.edge.test');
  t.ok(a.agent && a.agent === b.agent, 'the same agent for every request (keep-alive)');
  t.notOk(clientNodeLoaded(), '@kubernetes/client-node stays out of the agent process');
});

t.test('a token file (the in-cluster service account): read as the Authorization header', async (t) => {
  const dir = t.testdir({ token: 'first-token\n' });
  const tokenFile = join(dir, 'token');
  // What loadFromCluster sets up, written as a kubeconfig so the test needs no pod.
  writeFileSync(
    join(dir, 'kubeconfig.yaml'),
    kubeconfig(`    auth-provider:\n      name: tokenFile\n      config:\n        tokenFile: ${tokenFile}\n`),
  );
  const conn = createKubeConnection({ kubeconfig: join(dir, 'kubeconfig.yaml'), context: '' });
  t.equal(authorization(await conn.requestOptions()), 'Bearer first-token');
  t.notOk(clientNodeLoaded());
});

t.test('a static token and another context', async (t) => {
  const other = '- name: other\n  context: { cluster: edge, user: other }\n';
  const dir = t.testdir({
    'kubeconfig.yaml': `${kubeconfig('    token: main-token\n', other)}- name: other\n  user:\n    token: other-token\n`,
  });
  const conn = createKubeConnection({ kubeconfig: join(dir, 'kubeconfig.yaml'), context: 'other' });
  t.equal(authorization(await conn.requestOptions()), 'Bearer other-token');
  t.match(conn.description, /context other/);
});

t.test('bad input: a clear KUBE_CONFIG error', async (t) => {
  const dir = t.testdir({ 'garbage.yaml': 'clusters: [: not yaml', 'noserver.yaml': 'apiVersion: v1\nkind: Config\n' });
  t.throws(() => createKubeConnection({ kubeconfig: join(dir, 'missing.yaml'), context: '' }), {
    code: 'MESHLET_ERR_KUBE_CONFIG',
    message: /cannot load Kubernetes credentials from .*missing\.yaml/,
  });
  t.throws(() => createKubeConnection({ kubeconfig: join(dir, 'garbage.yaml'), context: '' }), {
    code: 'MESHLET_ERR_KUBE_CONFIG',
  });
  t.throws(() => createKubeConnection({ kubeconfig: join(dir, 'noserver.yaml'), context: '' }), {
    code: 'MESHLET_ERR_KUBE_CONFIG',
    message: /no apiserver address/,
  });
});

t.test('an exec plugin: the library runs in process and refreshes the credential itself', async (t) => {
  const dir = t.testdir({});
  const plugin = join(dir, 'plugin.sh');
  writeFileSync(
    plugin,
    '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-token"}}\'\n',
  );
  chmodSync(plugin, 0o755);
  writeFileSync(
    join(dir, 'kubeconfig.yaml'),
    kubeconfig(
      `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ${plugin}\n      interactiveMode: Never\n`,
    ),
  );
  const conn = createKubeConnection({ kubeconfig: join(dir, 'kubeconfig.yaml'), context: '' });
  t.equal(authorization(await conn.requestOptions()), 'Bearer exec-token');
  t.ok(clientNodeLoaded(), 'exec plugins keep the library in process');
});
