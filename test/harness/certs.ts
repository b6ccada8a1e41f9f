import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

/**
 * Test PKI made with the `openssl` command: a CA, serving and client certificates signed by
 * it, and bare key pairs (service-account signing). Keys are ECDSA P-256 (fast to generate;
 * Kubernetes accepts them everywhere, including for service-account tokens). The config is
 * written per call, so nothing depends on the system's openssl.cnf.
 */

export interface KeyCert {
  /** PEM certificate. */
  certPath: string;
  /** PEM private key (PKCS#8). */
  keyPath: string;
}

export interface KeyPair {
  privateKeyPath: string;
  publicKeyPath: string;
}

export type CertUsage = 'server' | 'client' | 'server+client';

export interface CertOptions {
  /** Subject common name, e.g. 'kube-apiserver' or 'system:node:node-a'. */
  cn: string;
  /** Subject organizations (Kubernetes groups for client certificates), e.g. ['system:nodes']. */
  organizations?: string[];
  /** Subject alternative names: IP addresses and DNS names, told apart by their form. */
  sans?: string[];
  usage: CertUsage;
  /** Validity; default 7 days. */
  days?: number;
}

const CURVE = 'prime256v1';

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || String(err)}`);
  }
}

/** Subject values go into an openssl config file: refuse what that format would mangle. */
function checkSubjectValue(value: string): string {
  if (!/^[A-Za-z0-9:._@ -]+$/.test(value))
    throw new Error(`certs: unsupported character in subject value ${JSON.stringify(value)}`);
  return value;
}

function subjectSection(cn: string, organizations: string[]): string {
  const lines = organizations.map((o, i) => `${i}.O = ${checkSubjectValue(o)}`);
  lines.push(`CN = ${checkSubjectValue(cn)}`);
  return lines.join('\n');
}

/** `IP:198.18.1.2,DNS:localhost,...` for an openssl subjectAltName line. */
export function sanList(sans: string[]): string {
  return [...new Set(sans)]
    .map((san) => {
      if (isIP(san)) return `IP:${san}`;
      if (!/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(san)) throw new Error(`certs: bad SAN ${JSON.stringify(san)}`);
      return `DNS:${san}`;
    })
    .join(',');
}

/** Creates `<name>.crt` and `<name>.key` in dir: a self-signed CA. */
export function createCa(dir: string, name = 'ca', cn = 'meshlet-test-ca', days = 30): KeyCert {
  const cfg = join(dir, `${name}.cnf`);
  const out: KeyCert = { certPath: join(dir, `${name}.crt`), keyPath: join(dir, `${name}.key`) };
  writeFileSync(
    cfg,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = ext',
      '[dn]',
      subjectSection(cn, []),
      '[ext]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  openssl([
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    `ec_paramgen_curve:${CURVE}`,
    '-nodes',
    '-sha256',
    '-days',
    String(days),
    '-config',
    cfg,
    '-keyout',
    out.keyPath,
    '-out',
    out.certPath,
  ]);
  rmSync(cfg);
  return out;
}

/** Creates `<name>.crt` and `<name>.key` in dir, signed by ca. */
export function issueCert(ca: KeyCert, dir: string, name: string, opts: CertOptions): KeyCert {
  const cfg = join(dir, `${name}.cnf`);
  const csr = join(dir, `${name}.csr`);
  const out: KeyCert = { certPath: join(dir, `${name}.crt`), keyPath: join(dir, `${name}.key`) };
  const eku = { server: 'serverAuth', client: 'clientAuth', 'server+client': 'serverAuth,clientAuth' }[opts.usage];
  const ext = [
    '[ext]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature',
    `extendedKeyUsage = ${eku}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
  ];
  if (opts.sans && opts.sans.length > 0) ext.push(`subjectAltName = ${sanList(opts.sans)}`);
  writeFileSync(
    cfg,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      subjectSection(opts.cn, opts.organizations ?? []),
      ...ext,
      '',
    ].join('\n'),
  );
  try {
    openssl(
      ['req', '-new', '-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${CURVE}`, '-nodes', '-config', cfg].concat([
        '-keyout',
        out.keyPath,
        '-out',
        csr,
      ]),
    );
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certPath,
      '-CAkey',
      ca.keyPath,
      '-set_serial',
      `0x${randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1')}`,
      '-sha256',
      '-days',
      String(opts.days ?? 7),
      '-extfile',
      cfg,
      '-extensions',
      'ext',
      '-out',
      out.certPath,
    ]);
  } finally {
    rmSync(cfg, { force: true });
    rmSync(csr, { force: true });
  }
  return out;
}

/** Creates `<name>.key` and `<name>.pub` in dir (e.g. the service-account signing keys). */
export function createKeyPair(dir: string, name: string): KeyPair {
  const out: KeyPair = { privateKeyPath: join(dir, `${name}.key`), publicKeyPath: join(dir, `${name}.pub`) };
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${CURVE}`, '-out', out.privateKeyPath]);
  openssl(['pkey', '-in', out.privateKeyPath, '-pubout', '-out', out.publicKeyPath]);
  return out;
}

/** The certificate's subject, SANs etc. as `openssl x509 -text` prints them (for tests and debugging). */
export function describeCert(certPath: string): string {
  return execFileSync('openssl', ['x509', '-in', certPath, '-noout', '-text'], { encoding: 'utf8' });
}

/** Base64 of a file, for the `*-data` fields of a kubeconfig. */
export function fileBase64(path: string): string {
  return readFileSync(path).toString('base64');
}
