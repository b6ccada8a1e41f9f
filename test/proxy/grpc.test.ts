import { type AddressInfo, createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { type Harness, listenerPort, service, slices, startProxy } from './helpers.ts';

/**
 * gRPC through an h2c service port, with real grpc-js clients and servers: the calls of one
 * client connection are balanced one by one (per-connection balancing would send them all to
 * one backend), status codes and trailers pass through, and no backend means UNAVAILABLE.
 */
const identity = (b: Buffer) => b;
const WHO = {
  path: '/meshlet.test.Echo/Who',
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
} as const;
const FAIL = { ...WHO, path: '/meshlet.test.Echo/Fail' } as const;
const serviceDefinition = { Who: WHO, Fail: FAIL };
const EchoClient = grpc.makeGenericClientConstructor(serviceDefinition, 'Echo');

async function grpcBackend(t: Test, name: string): Promise<number> {
  const server = new grpc.Server();
  server.addService(serviceDefinition, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      const xff = call.metadata.get('x-forwarded-for')[0];
      done(null, Buffer.from(`${name} xff=${String(xff)} got=${call.request.toString()}`));
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      done({ code: grpc.status.INVALID_ARGUMENT, details: `${name} says no` });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return port;
}

function call(client: grpc.Client, method: typeof WHO | typeof FAIL, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method.path, identity, identity, Buffer.from(body), (err, value) =>
      err ? reject(err) : resolve(value?.toString() ?? ''),
    );
  });
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function setup(t: Test, backends: number[]): Promise<{ h: Harness; client: grpc.Client }> {
  const h = await startProxy(t);
  await h.set(
    [service('echo', [{ name: 'grpc', port: 9000, targetPort: 9000 }])],
    slices(
      'echo',
      'grpc',
      backends.map((port) => ({ port })),
    ),
  );
  const client = new EchoClient(`127.0.0.1:${listenerPort(h, 9000)}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  return { h, client };
}

t.test('one client connection: calls spread evenly over three backends', async (t) => {
  const ports = [await grpcBackend(t, 'b1'), await grpcBackend(t, 'b2'), await grpcBackend(t, 'b3')];
  const { client } = await setup(t, ports);
  const counts = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const reply = await call(client, WHO, `call-${i}`);
    t.match(reply, new RegExp(`got=call-${i}$`), 'the request body arrived');
    const who = reply.split(' ')[0] ?? '';
    counts.set(who, (counts.get(who) ?? 0) + 1);
  }
  t.same(Object.fromEntries(counts), { b1: 10, b2: 10, b3: 10 });
  t.match(await call(client, WHO, 'x'), /xff=127\.0\.0\.1/, 'x-forwarded-for added');
});

t.test('gRPC status and message pass through in the trailers', async (t) => {
  const { client } = await setup(t, [await grpcBackend(t, 'only')]);
  await t.rejects(call(client, FAIL, 'x'), { code: grpc.status.INVALID_ARGUMENT, details: 'only says no' });
});

t.test('no endpoint, or none reachable: UNAVAILABLE, and the listener stays up', async (t) => {
  const { h, client } = await setup(t, []);
  await t.rejects(call(client, WHO, 'x'), { code: grpc.status.UNAVAILABLE });
  const dead = await closedPort();
  const live = await grpcBackend(t, 'live');
  await h.set(
    [service('echo', [{ name: 'grpc', port: 9000, targetPort: 9000 }])],
    slices('echo', 'grpc', [{ port: dead }, { port: live }]),
  );
  // Nothing listens on `dead`: its connect fails and each call is retried on the other backend.
  for (let i = 0; i < 6; i++) t.match(await call(client, WHO, 'x'), /^live /);
});
