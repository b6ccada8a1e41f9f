/** A Kubernetes `Status` object for a failure, shaped as the apiserver writes it (clients parse it). */
export interface FailureStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason?: string;
  details?: Record<string, string>;
  code: number;
}

export function failureStatus(code: number, message: string, reason?: string, details?: Record<string, string>): FailureStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    ...(reason !== undefined && { reason }),
    ...(details && { details }),
    code,
  };
}
