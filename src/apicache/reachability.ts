import { EventEmitter } from 'node:events';

/**
 * One agent-wide answer to "can this node reach the control plane?", readable by every module
 * (it is `ModuleContext.cloud`). The apiserver caching proxy sets it from its upstream health;
 * without the proxy it stays `unknown` (reachable is then true: nothing says otherwise).
 *
 *   ctx.cloud.reachable            // boolean
 *   ctx.cloud.on('change', (s) => ...)   // s: CloudState
 */
export interface CloudState {
  reachable: boolean;
  /** False until something has measured it. */
  known: boolean;
  /** When the current state began. */
  since: Date;
  /** Healthy upstream URLs at the last change. */
  healthy: string[];
}

export interface CloudSignal {
  readonly reachable: boolean;
  readonly state: Readonly<CloudState>;
  on(event: 'change', listener: (state: Readonly<CloudState>) => void): this;
  off(event: 'change', listener: (state: Readonly<CloudState>) => void): this;
}

export class CloudReachability extends EventEmitter<{ change: [Readonly<CloudState>] }> implements CloudSignal {
  #state: CloudState = { reachable: true, known: false, since: new Date(), healthy: [] };

  get reachable(): boolean {
    return this.#state.reachable;
  }

  get state(): Readonly<CloudState> {
    return this.#state;
  }

  /** Sets the state; emits 'change' only when reachable (or known) flips. */
  set(reachable: boolean, healthy: string[]): void {
    const prev = this.#state;
    if (prev.known && prev.reachable === reachable) {
      this.#state = { ...prev, healthy };
      return;
    }
    this.#state = { reachable, known: true, since: new Date(), healthy };
    this.emit('change', this.#state);
  }
}
