/**
 * One catalogue of meshlet's errors. Every error carries a stable `code` so callers and log
 * queries branch on the code, never on the message text. Context is added with `{ cause }`.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'MESHLET_ERR_CONFIG_INVALID',
  CONFIG_FILE: 'MESHLET_ERR_CONFIG_FILE',
  SOURCE_INVALID: 'MESHLET_ERR_SOURCE_INVALID',
  SOURCE_FILE: 'MESHLET_ERR_SOURCE_FILE',
  ADMIN_BIND: 'MESHLET_ERR_ADMIN_BIND',
  ADMIN_UNREACHABLE: 'MESHLET_ERR_ADMIN_UNREACHABLE',
  MODULE_START: 'MESHLET_ERR_MODULE_START',
  PROXY_BIND: 'MESHLET_ERR_PROXY_BIND',
  PROXY_CONNECT: 'MESHLET_ERR_PROXY_CONNECT',
  PROXY_TIMEOUT: 'MESHLET_ERR_PROXY_TIMEOUT',
  PROXY_POLICY: 'MESHLET_ERR_PROXY_POLICY',
  NO_ENDPOINT: 'MESHLET_ERR_NO_ENDPOINT',
  DNS_BIND: 'MESHLET_ERR_DNS_BIND',
  DNS_UPSTREAM: 'MESHLET_ERR_DNS_UPSTREAM',
  KUBE_CONFIG: 'MESHLET_ERR_KUBE_CONFIG',
  KUBE_UNREACHABLE: 'MESHLET_ERR_KUBE_UNREACHABLE',
  KUBE_STATUS: 'MESHLET_ERR_KUBE_STATUS',
  KUBE_WATCH_DECODE: 'MESHLET_ERR_KUBE_WATCH_DECODE',
  APICACHE_BIND: 'MESHLET_ERR_APICACHE_BIND',
  APICACHE_CONFIG: 'MESHLET_ERR_APICACHE_CONFIG',
  APICACHE_DISK: 'MESHLET_ERR_APICACHE_DISK',
  APICACHE_CORRUPT: 'MESHLET_ERR_APICACHE_CORRUPT',
  APICACHE_UPSTREAM: 'MESHLET_ERR_APICACHE_UPSTREAM',
  EAA_BIND: 'MESHLET_ERR_EAA_BIND',
  EAA_CA: 'MESHLET_ERR_EAA_CA',
  EAA_BAD_CSR: 'MESHLET_ERR_EAA_BAD_CSR',
  EAA_BAD_REQUEST: 'MESHLET_ERR_EAA_BAD_REQUEST',
  EAA_STORE: 'MESHLET_ERR_EAA_STORE',
  EAA_PEER: 'MESHLET_ERR_EAA_PEER',
  WITNESS_KEY: 'MESHLET_ERR_WITNESS_KEY',
  WITNESS_BIND: 'MESHLET_ERR_WITNESS_BIND',
  WITNESS_BAD_REPORT: 'MESHLET_ERR_WITNESS_BAD_REPORT',
  CONTROLLER_CRD: 'MESHLET_ERR_CONTROLLER_CRD',
  CONTROLLER_LEADER: 'MESHLET_ERR_CONTROLLER_LEADER',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class MeshletError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MeshletError';
    this.code = code;
  }
}

export function isMeshletError(err: unknown, code?: ErrorCode): err is MeshletError {
  return err instanceof MeshletError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for logs and CLI output. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
