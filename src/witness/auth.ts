import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';

/** Bytes a cluster key must have at least (HMAC-SHA256: 32). */
export const MIN_KEY_BYTES = 32;

/**
 * The per-cluster witness key (a Secret mounted on every agent and on the controller). Agents
 * never sign with it directly: each node signs with a key derived for its own name, so a
 * report's signature names the node that made it (see docs/node-status.md, "Authentication").
 */
export function loadClusterKey(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new MeshletError(ErrorCodes.WITNESS_KEY, `cannot read the witness key ${file}: ${errorMessage(err)}`, { cause: err });
  }
  return checkClusterKey(raw, file);
}

export function checkClusterKey(raw: Buffer, what = 'the witness key'): Buffer {
  // A trailing newline from `echo > key` is not part of the key.
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  const key = raw.subarray(0, end);
  if (key.length < MIN_KEY_BYTES) {
    throw new MeshletError(ErrorCodes.WITNESS_KEY, `${what} has ${key.length} bytes; at least ${MIN_KEY_BYTES} are needed`);
  }
  return Buffer.from(key);
}

/** The signing key of one node: HMAC-SHA256(clusterKey, "meshlet-witness-v1:" + node). */
export function nodeKey(clusterKey: Buffer, node: string): Buffer {
  return createHmac('sha256', clusterKey).update(`meshlet-witness-v1:${node}`).digest();
}

/** Derives node keys once per name. */
export class KeyRing {
  readonly #cluster: Buffer;
  readonly #keys = new Map<string, Buffer>();

  constructor(clusterKey: Buffer) {
    this.#cluster = clusterKey;
  }

  keyOf(node: string): Buffer {
    let key = this.#keys.get(node);
    if (!key) {
      key = nodeKey(this.#cluster, node);
      if (this.#keys.size > 10_000) this.#keys.clear();
      this.#keys.set(node, key);
    }
    return key;
  }

  sign(node: string, text: string): string {
    return sign(this.keyOf(node), text);
  }

  verify(node: string, text: string, mac: string): boolean {
    return verify(this.keyOf(node), text, mac);
  }
}

export function sign(key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text).digest('base64url');
}

export function verify(key: Buffer, text: string, mac: string): boolean {
  const want = createHmac('sha256', key).update(text).digest();
  const got = Buffer.from(mac, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}
