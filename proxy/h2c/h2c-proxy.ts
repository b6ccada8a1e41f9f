import {
  type ClientHttp2Session,
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { ErrorCodes } from '../../src/errors.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import { pickAndDial } from '../connect/connect-endpoint.ts';
import type { RouteContext } from '../route.ts';
import type { H2Sessions } from './sessions.ts';

/** Connection-specific headers that HTTP/2 forbids forwarding (RFC 9113 §8.2.2). */
const CONNECTION_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** gRPC's code for "try again": what a gRPC client understands when no backend can be reached. */
const GRPC_UNAVAILABLE = '14';

/**
 * HTTP/2 cleartext (h2c, prior knowledge) service ports, the transport of gRPC: every stream is
 * balanced on its own and sent over the chosen endpoint's multiplexed session, so the calls of
 * one long-lived client connection spread across backends (per-connection balancing would pin
 * them all to one). Trailers (grpc-status) are relayed; a failed connect is retried elsewhere
 * before the stream has sent anything upstream.
 */
export function createH2cProxyServer(
  getRoute: () => RouteContext,
  sessions: H2Sessions,
): Http2Server & { closeSessions(): void } {
  const server = createServer();
  const open = new Set<Http2Session>();
  server.on('session', (session) => {
    open.add(session);
    session.once('close', () => open.delete(session));
    const m = getRoute().metrics;
    m.connections.inc();
    m.active.inc();
    session.once('close', () => m.active.dec());
  });
  server.on('stream', (stream, headers) => {
    forward(getRoute(), sessions, stream, headers).catch((err: unknown) => {
      getRoute().log.debug({ err: String(err) }, 'h2c stream failed');
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
  });
  return Object.assign(server, {
    closeSessions() {
      for (const session of open) session.close();
    },
  });
}

async function forward(
  route: RouteContext,
  sessions: H2Sessions,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
): Promise<void> {
  const clientIp = stream.session?.socket?.remoteAddress ?? '';
  let dialed: { value: ClientHttp2Session; endpoint: ProxyEndpoint };
  try {
    dialed = await pickAndDial(route, { clientIp, headers }, (ep) => sessions.get(ep));
  } catch (err) {
    const none = (err as { code?: unknown }).code === ErrorCodes.NO_ENDPOINT;
    respondError(route, stream, headers, 503, none ? 'no endpoint available' : 'upstream connection failed');
    return;
  }
  const { value: upstreamSession, endpoint } = dialed;
  if (stream.destroyed) return;

  const chosen = endpoint;
  chosen.stats.active++;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    chosen.stats.active--;
  };
  const upstream = upstreamSession.request(requestHeaders(headers, clientIp), { endStream: stream.readableEnded });
  let trailers: OutgoingHttpHeaders | undefined;
  upstream.on('response', (responseHeaders, flags: number) => {
    route.metrics.request(Number(responseHeaders[':status'] ?? 0));
    if (stream.destroyed) return;
    // (`endAfterHeaders` is not yet set when 'response' fires; the frame flags are.)
    if ((flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-only (a gRPC error): one HEADERS frame that ends the stream, relayed as such.
      stream.respond(strip(responseHeaders), { endStream: true });
      return;
    }
    stream.respond(strip(responseHeaders), { waitForTrailers: true });
    upstream.pipe(stream);
  });
  upstream.on('trailers', (t) => {
    trailers = strip(t);
  });
  // Always end with a trailers frame (empty when upstream sent none): closing the stream instead
  // would reset it, which gRPC clients report as an error.
  stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}));
  upstream.on('close', () => {
    finish();
    // A reset from upstream: pass it on unless the response finished normally.
    if (upstream.rstCode !== constants.NGHTTP2_NO_ERROR && !stream.destroyed) {
      if (!stream.headersSent) respondError(route, stream, headers, 502, 'upstream reset the stream');
      else stream.close(upstream.rstCode ?? constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  upstream.on('error', () => {}); // reported through 'close' and rstCode
  stream.on('close', () => {
    finish();
    if (!upstream.destroyed) upstream.close(constants.NGHTTP2_CANCEL);
  });
  stream.on('error', () => {});
  if (!stream.readableEnded) stream.pipe(upstream);
}

function requestHeaders(headers: IncomingHttpHeaders, clientIp: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || CONNECTION_HEADERS.has(name)) continue;
    if (name === 'te' && value !== 'trailers') continue;
    out[name] = value;
  }
  const previous = headers['x-forwarded-for'];
  out['x-forwarded-for'] = previous === undefined ? clientIp : `${String(previous)}, ${clientIp}`;
  return out;
}

function strip(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !CONNECTION_HEADERS.has(name)) out[name] = value;
  }
  return out;
}

/** An error a client understands: gRPC status UNAVAILABLE for gRPC calls, an HTTP status otherwise. */
function respondError(
  route: RouteContext,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  status: number,
  message: string,
): void {
  route.metrics.request(status);
  if (stream.destroyed || stream.headersSent) return;
  const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
  if (grpc) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': GRPC_UNAVAILABLE,
        'grpc-message': encodeURIComponent(message),
      },
      { endStream: true },
    );
    return;
  }
  stream.respond({ ':status': status, 'content-type': 'text/plain', 'x-meshlet-error': message });
  stream.end(`${message}\n`);
}
