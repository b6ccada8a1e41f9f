/**
 * The dial step, behind one interface so the rest of the proxy never knows how an endpoint is
 * reached: a pod on this node or a routable remote pod today (direct-dialer.ts), a tunnel to
 * another node's agent later. Both L4 (streams, datagrams) and L7 (undici's connector) dial here.
 */
import type { Duplex } from 'node:stream';

export interface DialTarget {
  address: string;
  port: number;
  /** The endpoint's node: a tunnel dialer routes by it; the direct dialer ignores it. */
  nodeName: string | undefined;
}

export interface ConnectOptions {
  /** Fail with MESHLET_ERR_PROXY_TIMEOUT after this long (ms); 0 means no limit. */
  timeoutMs: number;
  /** Keep the writable side open after the remote ends (TCP half-close). */
  allowHalfOpen: boolean;
}

/** One UDP flow's upstream: datagram boundaries are kept. */
export interface DatagramChannel {
  send(message: Buffer): void;
  onMessage(listener: (message: Buffer) => void): void;
  /** Called once when the channel fails (e.g. ICMP port unreachable on a connected socket). */
  onError(listener: (err: Error) => void): void;
  close(): void;
}

export interface Dialer {
  /** A connected byte stream; rejects with MESHLET_ERR_PROXY_CONNECT or MESHLET_ERR_PROXY_TIMEOUT. */
  connect(target: DialTarget, opts: ConnectOptions): Promise<Duplex>;
  /** A datagram channel bound to the endpoint, one per UDP flow. */
  datagram(target: DialTarget): Promise<DatagramChannel>;
}
