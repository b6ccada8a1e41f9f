import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import type { AgentModule } from '../../src/agent/module.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { ErrorCodes } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { ServiceRegistry } from '../../src/registry/registry.ts';
import type { RegistrySource, SourceStatus } from '../../src/sources/source.ts';

/** Lifecycle order of the agent, with recording fakes (the order is the contract, not the modules). */
function setup(opts: { failing?: string } = {}) {
  const events: string[] = [];
  const config = ConfigSchema.parse({ admin: { port: 0 }, node: { name: 'n1' }, shutdown: { gracePeriodMs: 200 } });
  let synced = false;
  const source: RegistrySource = {
    kind: 'fake',
    async start(registry: ServiceRegistry) {
      events.push('source.start');
      registry.replaceAll({ services: [], endpointSlices: [], nodes: [] });
      synced = true;
    },
    async stop() {
      events.push('source.stop');
    },
    status: (): SourceStatus => ({ kind: 'fake', synced, detail: {} }),
  };
  const module = (name: string, beforeSource = false): AgentModule => ({
    name,
    beforeSource,
    async start() {
      events.push(`${name}.start`);
      if (opts.failing === name) throw new Error('boom');
    },
    async stop() {
      events.push(`${name}.stop`);
    },
    async cleanup() {
      events.push(`${name}.cleanup`);
    },
  });
  const agent = new Agent({
    config,
    logger: silentLogger(),
    source,
    modules: [module('cache', true), module('dns'), module('proxy')],
  });
  return { agent, events };
}

t.test('start: cleanup then start, modules the source needs first; stop in reverse', async (t) => {
  const { agent, events } = setup();
  await agent.start();
  t.same(events, ['cache.cleanup', 'cache.start', 'source.start', 'dns.cleanup', 'dns.start', 'proxy.cleanup', 'proxy.start']);
  t.same(agent.notReadyReasons(), []);
  events.length = 0;
  await agent.stop();
  t.same(events, ['proxy.stop', 'proxy.cleanup', 'dns.stop', 'dns.cleanup', 'source.stop', 'cache.stop', 'cache.cleanup']);
  await agent.stop();
  t.equal(events.length, 7, 'a second stop does nothing');
});

t.test('a module that fails to start stops the agent, cleans up and names the module', async (t) => {
  const { agent, events } = setup({ failing: 'dns' });
  await t.rejects(agent.start(), { code: ErrorCodes.MODULE_START, message: /module dns failed to start: boom/ });
  t.equal(agent.state, 'stopped');
  t.notOk(events.includes('proxy.start'), 'later modules never start');
  t.ok(events.includes('cache.stop') && events.includes('source.stop'), 'started parts are stopped');
  t.notOk(events.includes('dns.stop'), 'the failed module is not stopped, only cleaned up');
  t.equal(events.filter((e) => e === 'dns.cleanup').length, 2, 'cleanup before start and on the way down');
});
