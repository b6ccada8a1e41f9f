import { isIPv6 } from 'node:net';
import type { Logger } from '../../src/log.ts';
import { type CommandRunner, runCommand } from './backend.ts';

export interface HostNetworkOptions {
  /** Interface that carries meshlet's address: a dummy interface on real nodes, `lo` where the kernel has none. */
  interfaceName: string;
  /** Create the interface as `type dummy` (and delete it on cleanup); false for an existing one such as `lo`. */
  createDummy: boolean;
  /** meshlet's own address(es) the service listeners bind, e.g. 169.254.20.11. */
  addresses: string[];
  /** Service CIDRs to route to the interface when the node has no route for them. */
  serviceCidrs: string[];
  logger: Logger;
  run?: CommandRunner;
}

/**
 * The host-side setup interception needs, and its removal: meshlet's link-local address on
 * its interface, and routes that make cluster IPs reach the nat OUTPUT hook on nodes without
 * a default route. Every change uses `replace`, so a restart after a crash converges.
 */
export class HostNetwork {
  readonly #opts: HostNetworkOptions;
  readonly #run: CommandRunner;
  readonly #log: Logger;
  #addedRoutes: string[] = [];

  constructor(opts: HostNetworkOptions) {
    this.#opts = opts;
    this.#run = opts.run ?? runCommand;
    this.#log = opts.logger.child({ module: 'proxy/host-network' });
  }

  async setup(): Promise<void> {
    const dev = this.#opts.interfaceName;
    if (this.#opts.createDummy) {
      const exists = await this.#run('ip', ['link', 'show', 'dev', dev]).then(
        () => true,
        () => false,
      );
      if (!exists) await this.#run('ip', ['link', 'add', dev, 'type', 'dummy']);
    }
    await this.#run('ip', ['link', 'set', dev, 'up']);
    for (const address of this.#opts.addresses) {
      const prefix = isIPv6(address) ? 128 : 32;
      await this.#run('ip', [isIPv6(address) ? '-6' : '-4', 'addr', 'replace', `${address}/${prefix}`, 'dev', dev]);
    }
    for (const cidr of this.#opts.serviceCidrs) {
      const family = cidr.includes(':') ? '-6' : '-4';
      const probe = cidr.split('/')[0] ?? cidr;
      // Only where the node has no route of its own: never steer traffic a real route already carries.
      const existing = await this.#run('ip', [family, 'route', 'get', probe]).catch(() => '');
      if (existing && !existing.includes(`dev ${dev}`)) continue;
      await this.#run('ip', [family, 'route', 'replace', cidr, 'dev', dev]);
      this.#addedRoutes.push(cidr);
    }
    this.#log.info({ dev, addresses: this.#opts.addresses, routes: this.#addedRoutes }, 'host network ready');
  }

  /** Removes what setup added; also safe after a crash (missing pieces are ignored). */
  async cleanup(): Promise<void> {
    const dev = this.#opts.interfaceName;
    const ignore = () => undefined;
    for (const cidr of this.#opts.serviceCidrs) {
      await this.#run('ip', [cidr.includes(':') ? '-6' : '-4', 'route', 'del', cidr, 'dev', dev]).catch(ignore);
    }
    this.#addedRoutes = [];
    if (this.#opts.createDummy) {
      await this.#run('ip', ['link', 'del', dev]).catch(ignore);
      return;
    }
    for (const address of this.#opts.addresses) {
      const prefix = isIPv6(address) ? 128 : 32;
      await this.#run('ip', ['addr', 'del', `${address}/${prefix}`, 'dev', dev]).catch(ignore);
    }
  }
}
