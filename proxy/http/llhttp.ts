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

/**
 * A request head as llhttp reports it: in one onHeadersComplete call, or (for a head that spans
 * reads) in onHeaders pieces first, after which onHeadersComplete passes no headers and no URL.
 */
export class HeadPieces {
  #headers: string[] = [];
  #url = '';

  /** kOnHeaders. */
  add(headers: readonly string[], url: string): void {
    for (const h of headers) this.#headers.push(h);
    this.#url += url;
  }

  /** The whole head at onHeadersComplete, from its arguments or from the pieces. */
  take(rawHeaders: string[] | undefined, rawUrl: string | undefined): { headers: string[]; url: string } {
    let headers = rawHeaders;
    if (headers === undefined) {
      headers = this.#headers;
      this.#headers = [];
    }
    let url = rawUrl;
    if (url === undefined || url === '') {
      url = this.#url;
      this.#url = '';
    }
    return { headers, url };
  }
}

/** The request head rebuilt from what llhttp parsed (same method, target, version, header lines), to be parsed again. */
export function rebuiltRequestHead(
  method: string,
  url: string,
  major: number,
  minor: number,
  headers: readonly string[],
): Buffer {
  let head = `${method} ${url} HTTP/${major}.${minor}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
  return Buffer.from(`${head}\r\n`, 'latin1');
}
