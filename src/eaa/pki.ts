// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

import { ErrorCodes, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';

/**
 * The EAA's certificate authority (docs/eaa.md §PKI). OpenNESS generates an ECDSA P-384 root and
 * signs app CSRs with it; meshlet does the same with @peculiar/x509 (maintained, pure
 * TypeScript over WebCrypto, parses PKCS#10 and verifies its signature). The CA key never leaves
 * meshlet: a file in standalone mode, a mounted Secret in a cluster, shared by every node's agent
 * so a certificate issued on one node is accepted on all.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-384' };

export interface CertificateAuthority {
  /** PEM of the root certificate (what `ca_chain` and `ca_pool` hold). */
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

export interface IssuedKeyPair {
  certPem: string;
  keyPem: string;
}

/** Why a CSR was refused; the HTTP layer maps it to a status. */
export class CsrError extends MeshletError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.EAA_BAD_CSR, message, options);
  }
}

async function toCryptoKey(key: KeyObject): Promise<CryptoKey> {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const namedCurve = curve === 'secp384r1' ? 'P-384' : curve === 'prime256v1' ? 'P-256' : undefined;
  if (key.asymmetricKeyType !== 'ec' || namedCurve === undefined) {
    throw new MeshletError(ErrorCodes.EAA_CA, 'the EAA CA key must be an ECDSA P-384 or P-256 key');
  }
  const der = key.export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, false, ['sign']) as Promise<CryptoKey>;
}

async function cryptoPair(): Promise<{ pair: CryptoKeyPair; keyPem: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pair = {
    privateKey: (await webcrypto.subtle.importKey(
      'pkcs8',
      privateKey.export({ type: 'pkcs8', format: 'der' }),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    )) as CryptoKey,
    publicKey: (await webcrypto.subtle.importKey(
      'spki',
      publicKey.export({ type: 'spki', format: 'der' }),
      { name: 'ECDSA', namedCurve: 'P-256' },
      true,
      ['verify'],
    )) as CryptoKey,
  };
  return { pair, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive
  return b.toString('hex');
}

/** Creates a new root CA (ECDSA P-384, 10 years), as OpenNESS's InitRootCA does. */
export async function createCa(commonName = 'meshlet EAA root CA'): Promise<{ ca: CertificateAuthority; keyPem: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const key = await toCryptoKey(privateKey);
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    { name: 'ECDSA', namedCurve: 'P-384' },
    true,
    ['verify'],
  );
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 365 * 86_400_000),
    keys: { privateKey: key, publicKey: publicKey as CryptoKey },
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return {
    ca: { certPem: cert.toString('pem'), cert, key },
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

export async function caFromPem(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  let cert: x509.X509Certificate;
  let key: KeyObject;
  try {
    cert = new x509.X509Certificate(certPem);
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new MeshletError(ErrorCodes.EAA_CA, 'the EAA CA certificate or key is not valid PEM', { cause: err });
  }
  return { certPem: cert.toString('pem'), cert, key: await toCryptoKey(key) };
}

/**
 * Loads the CA from `certFile`/`keyFile`; when both are missing and `generate` is set, creates one
 * and writes it there (key 0600), so a standalone agent keeps its CA across restarts.
 */
export async function loadOrCreateCa(opts: {
  certFile: string;
  keyFile: string;
  generate: boolean;
  logger: Logger;
}): Promise<CertificateAuthority> {
  const read = async (path: string) =>
    readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new MeshletError(ErrorCodes.EAA_CA, `cannot read ${path}: ${err.message}`, { cause: err });
    });
  const [certPem, keyPem] = await Promise.all([read(opts.certFile), read(opts.keyFile)]);
  if (certPem !== undefined && keyPem !== undefined) return caFromPem(certPem, keyPem);
  if (!opts.generate || certPem !== undefined || keyPem !== undefined) {
    throw new MeshletError(
      ErrorCodes.EAA_CA,
      `EAA CA missing: need both ${opts.certFile} and ${opts.keyFile} (or eaa.ca.generate with neither present)`,
    );
  }
  const { ca, keyPem: newKey } = await createCa();
  for (const [path, text, mode] of [
    [opts.keyFile, newKey, 0o600],
    [opts.certFile, ca.certPem, 0o644],
  ] as const) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(`${path}.tmp`, text, { mode });
    await chmod(`${path}.tmp`, mode);
    await rename(`${path}.tmp`, path);
  }
  opts.logger.info({ certFile: opts.certFile }, 'generated a new EAA CA');
  return ca;
}

/** The CN of a certificate subject (the first one), or ''. */
function commonName(name: x509.Name): string {
  return name.getField('CN')[0] ?? '';
}

/**
 * Signs an app's CSR (POST /auth). As OpenNESS: the subject is copied as is, no CN format check;
 * the issued certificate expires with the CA (or `ttlMs`, whichever is first). Unlike OpenNESS the
 * CSR's own signature is verified, and only ECDSA P-256/P-384 keys are accepted (OpenNESS fails
 * other key types with a 500 as a side effect of reusing the CSR's signature algorithm).
 */
export async function signCsr(
  ca: CertificateAuthority,
  csrPem: string,
  opts: { ttlMs: number; refuseCn?: (cn: string) => string | undefined },
): Promise<{ cn: string; certPem: string }> {
  const m = /-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/.exec(csrPem);
  if (m === null) throw new CsrError('csr is not PEM');
  if (m[1] !== 'CERTIFICATE REQUEST') throw new CsrError(`csr PEM block is "${m[1]}", want "CERTIFICATE REQUEST"`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(m[0]);
  } catch (err) {
    throw new CsrError('csr cannot be parsed', { cause: err });
  }
  let pub: KeyObject;
  try {
    pub = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError('csr public key cannot be parsed', { cause: err });
  }
  const curve = pub.asymmetricKeyDetails?.namedCurve;
  if (pub.asymmetricKeyType !== 'ec' || (curve !== 'prime256v1' && curve !== 'secp384r1')) {
    throw new CsrError(`csr key must be ECDSA P-256 or P-384, got ${pub.asymmetricKeyType ?? 'unknown'} ${curve ?? ''}`.trim());
  }
  const valid = await csr.verify().catch(() => false);
  if (!valid) throw new CsrError('csr signature does not verify');
  const cn = commonName(csr.subjectName);
  const refused = opts.refuseCn?.(cn);
  if (refused !== undefined) throw new CsrError(refused);
  const now = Date.now();
  const notAfter = Math.min(ca.cert.notAfter.getTime(), now + opts.ttlMs);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: csr.subjectName,
    issuer: ca.cert.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(notAfter),
    publicKey: csr.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  return { cn, certPem: cert.toString('pem') };
}

/**
 * A key and a certificate for meshlet itself: the EAA server (CN and SAN `eaa.openness`) or an
 * agent's peer identity (client and server auth).
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  opts: { commonName: string; dnsNames?: string[]; ipAddresses?: string[]; ttlMs?: number },
): Promise<IssuedKeyPair> {
  const { pair, keyPem } = await cryptoPair();
  const names = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: new x509.Name([{ CN: [opts.commonName] }]),
    issuer: ca.cert.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(ca.cert.notAfter.getTime(), now + (opts.ttlMs ?? 365 * 86_400_000))),
    publicKey: pair.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem };
}
