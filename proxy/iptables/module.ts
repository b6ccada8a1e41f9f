import type { AgentModule } from '../../src/agent/module.ts';
import type { Config } from '../../src/config/schema.ts';
import { errorMessage } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { ProxyModule } from '../module.ts';
import type { CommandRunner } from './backend.ts';
import { HostNetwork } from './host-network.ts';
import { IptablesInterceptor } from './interceptor.ts';

export interface InterceptModuleOptions {
  config: Config;
  proxy: ProxyModule;
  logger: Logger;
  run?: CommandRunner;
}

export interface HostNetworkModuleOptions {
  config: Config;
  logger: Logger;
  run?: CommandRunner;
}

/**
 * meshlet's own address(es) on its interface, and routes for the service range, as the first
 * module: the DNS server and the service listeners bind these addresses, so they must exist
 * before those modules start. Loopback addresses (standalone mode) need nothing.
 */
export class HostNetworkModule implements AgentModule {
  readonly name = 'host-network';
  readonly #host: HostNetwork;

  constructor(opts: HostNetworkModuleOptions) {
    const { proxy, dns } = opts.config;
    const settings = proxy.interception;
    const addresses = new Set([proxy.address]);
    if (dns.enabled) addresses.add(dns.address);
    this.#host = new HostNetwork({
      interfaceName: settings.interfaceName,
      createDummy: settings.createDummy,
      addresses: [...addresses].filter((a) => !a.startsWith('127.') && a !== '::1'),
      serviceCidrs: settings.serviceCidrs,
      logger: opts.logger,
      ...(opts.run !== undefined && { run: opts.run }),
    });
  }

  start(): Promise<void> {
    return this.#host.setup();
  }

  async stop(): Promise<void> {}

  cleanup(): Promise<void> {
    return this.#host.cleanup();
  }
}

/**
 * Transparent interception as an agent module, started after the proxy: keeps the nat rules
 * equal to the proxy's listeners. Stopped
 * first, so rules disappear before listeners close; `cleanup` also runs before start, which
 * removes what a crashed predecessor left.
 */
export class InterceptModule implements AgentModule {
  readonly name = 'intercept';
  readonly #proxy: ProxyModule;
  readonly #log: Logger;
  readonly #iptables: IptablesInterceptor;
  #unsubscribe: (() => void) | undefined;
  #started = false;

  constructor(opts: InterceptModuleOptions) {
    const settings = opts.config.proxy.interception;
    this.#proxy = opts.proxy;
    this.#log = opts.logger.child({ module: 'proxy/intercept' });
    const run = opts.run !== undefined ? { run: opts.run } : {};
    this.#iptables = new IptablesInterceptor({
      backend: settings.iptablesBackend,
      families: settings.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'],
      verifyIntervalMs: settings.verifyIntervalMs,
      logger: opts.logger,
      ...run,
    });
  }

  async start(): Promise<void> {
    await this.#iptables.start();
    await this.#iptables.sync(this.#proxy.interceptTargets());
    this.#unsubscribe = this.#proxy.onListenersChanged(() => {
      this.#iptables.sync(this.#proxy.interceptTargets()).catch((err: unknown) => {
        this.#log.error({ err: errorMessage(err), code: 'MESHLET_ERR_PROXY_INTERCEPT' }, 'writing iptables rules failed');
      });
    });
    this.#started = true;
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    await this.#iptables.stop();
    this.#started = false;
  }

  cleanup(): Promise<void> {
    return this.#iptables.cleanup();
  }

  ready(): boolean {
    return this.#started && this.#iptables.status().lastError === undefined;
  }

  status(): Record<string, unknown> {
    return { ...this.#iptables.status() };
  }
}
