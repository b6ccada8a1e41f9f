import { createRequire } from 'node:module';

/**
 * Node's native llhttp binding (`node:_http_common`'s HTTPParser), as node:http itself drives it:
 * one declaration for the lean paths that use it (h1-pool.ts parses responses, lean-server.ts
 * and src/eaa/h1.ts requests). Not a public API; pinned by engines (Node 24) and by the tests of
 * those paths.
 */
export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  consume(handle: StreamHandle): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
  close(): void;
  [index: number]: unknown;
}

/** The libuv stream under a net.Socket (`socket._handle`), which the parser can read itself. */
export interface StreamHandle {
  isStreamBase?: boolean;
  reading?: boolean;
  _consumed?: boolean;
  readStart(): number;
  readStop(): number;
}

export interface NativeParserClass {
  new (): NativeParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
}

const common = createRequire(import.meta.url)('node:_http_common') as {
  HTTPParser: NativeParserClass;
  methods: readonly string[];
};

export const HTTPParser = common.HTTPParser;
/** llhttp's method names, indexed by its method numbers. */
export const METHODS = common.methods;
