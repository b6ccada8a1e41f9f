import type { Logger } from '../../src/log.ts';
import { type BackendChoice, type CommandRunner, detectBackend, type IptablesCommands, runCommand } from './backend.ts';
import {
  driftOf,
  type Family,
  HOOK_CHAINS,
  type InterceptTarget,
  parseNatSave,
  type RenderedRuleset,
  renderCleanup,
  renderRestore,
  renderRuleset,
} from './rules.ts';

export interface InterceptorOptions {
  backend: BackendChoice;
  /** Families to manage; IPv6 only where ip6tables works. */
  families: Family[];
  /** How often (ms) installed rules are checked and rewritten if someone changed them; 0 disables. */
  verifyIntervalMs: number;
  logger: Logger;
  run?: CommandRunner;
}

export interface InterceptorStatus {
  backend: Partial<Record<Family, string>>;
  targets: number;
  syncs: number;
  repairs: number;
  lastError?: string;
  lastSyncAt?: string;
}

/**
 * Owns meshlet's nat chains on this host: writes the whole ruleset atomically on every change,
 * checks it periodically and rewrites it when someone flushed or reordered it (kube-proxy
 * restarting and inserting its own jump first, an operator's `iptables -t nat -F`), and
 * removes every trace on stop and at the next start after a crash.
 */
export class IptablesInterceptor {
  readonly #opts: InterceptorOptions;
  readonly #run: CommandRunner;
  readonly #log: Logger;
  readonly #commands = new Map<Family, IptablesCommands>();
  #targets: readonly InterceptTarget[] = [];
  #wanted = new Map<Family, RenderedRuleset>();
  #timer: NodeJS.Timeout | undefined;
  #queue: Promise<void> = Promise.resolve();
  #status: InterceptorStatus = { backend: {}, targets: 0, syncs: 0, repairs: 0 };

  constructor(opts: InterceptorOptions) {
    this.#opts = opts;
    this.#run = opts.run ?? runCommand;
    this.#log = opts.logger.child({ module: 'proxy/iptables' });
  }

  status(): InterceptorStatus {
    return { ...this.#status, backend: { ...this.#status.backend } };
  }

  async start(): Promise<void> {
    for (const family of this.#opts.families) {
      const commands = await detectBackend(family, this.#opts.backend, this.#run);
      this.#commands.set(family, commands);
      this.#status.backend[family] = commands.backend;
    }
    this.#log.info({ backend: this.#status.backend }, 'iptables backend chosen');
    if (this.#opts.verifyIntervalMs > 0) {
      this.#timer = setInterval(() => {
        this.verify().catch((err: unknown) => this.#log.error({ err: String(err) }, 'iptables verify failed'));
      }, this.#opts.verifyIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Writes the rules for `targets`, replacing whatever meshlet had installed. Serialized. A
   * ruleset equal to the last one written (most registry updates only change endpoints, which
   * the rules do not name) costs nothing; drift from it is the periodic verify's job.
   */
  sync(targets: readonly InterceptTarget[]): Promise<void> {
    this.#targets = targets;
    this.#status.targets = targets.length;
    return this.#serial(async () => {
      for (const [family, commands] of this.#commands) {
        const ruleset = renderRuleset(family, this.#targets);
        if (this.#wanted.get(family)?.hash === ruleset.hash) continue;
        this.#wanted.delete(family); // until written: a failed write is retried by the next sync
        await this.#write(commands, ruleset);
        this.#wanted.set(family, ruleset);
      }
      this.#status.syncs++;
      this.#status.lastSyncAt = new Date().toISOString();
    });
  }

  /** Rewrites the rules of any family whose installed state drifted from the wanted one. */
  verify(): Promise<void> {
    return this.#serial(async () => {
      for (const [family, commands] of this.#commands) {
        const wanted = this.#wanted.get(family);
        if (!wanted) continue;
        const drift = driftOf(parseNatSave(await this.#run(commands.save, ['-t', 'nat'])), wanted);
        if (drift.length === 0) continue;
        this.#status.repairs++;
        this.#log.warn({ family, drift }, 'meshlet iptables rules were changed by someone else; rewriting them');
        await this.#write(commands, wanted);
      }
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#queue;
  }

  /** Removes meshlet's chains and jumps from every backend it can find (also after a crash). */
  async cleanup(): Promise<void> {
    await this.stop();
    this.#wanted.clear();
    await this.#serial(async () => {
      for (const family of this.#opts.families) {
        for (const backend of ['nft', 'legacy'] as const) {
          const base = family === 'ipv6' ? 'ip6tables' : 'iptables';
          let save: string;
          try {
            save = await this.#run(`${base}-${backend}-save`, ['-t', 'nat']);
          } catch {
            continue; // backend absent
          }
          const state = parseNatSave(save);
          const ours = state.chains.has('MESHLET-SERVICES') || HOOK_CHAINS.some((c) => state.jumps[c].length > 0);
          if (!ours) continue;
          await this.#run(`${base}-${backend}-restore`, ['--noflush'], renderCleanup(state));
          this.#log.info({ family, backend }, 'removed meshlet iptables rules');
        }
      }
    });
  }

  async #write(commands: IptablesCommands, ruleset: RenderedRuleset): Promise<void> {
    const state = parseNatSave(await this.#run(commands.save, ['-t', 'nat']));
    const hooks = HOOK_CHAINS.map((chain) => {
      const jumps = state.jumps[chain];
      const firstIsOurs = jumps.length === 1 && state.hooks[chain][0] === jumps[0];
      return { chain, staleJumps: firstIsOurs ? [] : jumps, needsJump: !firstIsOurs };
    });
    try {
      await this.#run(commands.restore, ['--noflush'], renderRestore(ruleset, hooks));
      delete this.#status.lastError;
    } catch (err) {
      this.#status.lastError = String(err);
      throw err;
    }
  }

  #serial(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }
}
