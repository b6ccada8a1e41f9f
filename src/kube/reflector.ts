import type { IncomingMessage } from 'node:http';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { KubeConnection } from './connection.ts';
import { KubeStatusError, kubeGet, readBody } from './http.ts';

/** The parts of any Kubernetes object a reflector reads. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

interface KubeList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; reason?: string; message?: string };
}

export interface ReflectorHandlers<T> {
  /** The complete current list, after the first list and after every relist. */
  replace(items: T[]): void;
  upsert(item: T): void;
  delete(item: T): void;
}

export type Delay = (ms: number, signal: AbortSignal) => Promise<void>;

export interface ReflectorOptions<T> {
  conn: KubeConnection;
  /** Collection path, e.g. `/api/v1/services` or `/apis/discovery.k8s.io/v1/endpointslices`. */
  path: string;
  handlers: ReflectorHandlers<T>;
  logger: Logger;
  /** Items per list page (bounded memory for large clusters). */
  pageSize?: number;
  /** Server-side watch timeout; a little jitter is added so agents do not reconnect in step. */
  watchTimeoutSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Injectable for tests, so backoff can be exercised without waiting. */
  delay?: Delay;
}

export interface ReflectorStatus {
  path: string;
  synced: boolean;
  resourceVersion: string;
  lists: number;
  watches: number;
  events: number;
  bookmarks: number;
  errors: number;
  lastError?: string;
}

/** The watch stream ended because our resourceVersion is too old: relist. */
class GoneError extends Error {}

/**
 * List, then watch from the list's resourceVersion; follow bookmarks; relist on 410 Gone;
 * back off with jitter on any other failure and resume the watch from the last resourceVersion
 * it processed, so an interrupted stream never loses or repeats an update.
 */
export class Reflector<T extends KubeObject> {
  readonly #opts: ReflectorOptions<T>;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #delay: Delay;
  #rv = '';
  #status: ReflectorStatus;
  #synced!: Promise<void>;
  #resolveSynced!: () => void;
  #loop: Promise<void> | undefined;

  constructor(opts: ReflectorOptions<T>) {
    this.#opts = opts;
    this.#log = opts.logger.child({ module: 'kube/reflector', path: opts.path });
    this.#delay = opts.delay ?? abortableDelay;
    this.#status = {
      path: opts.path,
      synced: false,
      resourceVersion: '',
      lists: 0,
      watches: 0,
      events: 0,
      bookmarks: 0,
      errors: 0,
    };
    this.#synced = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });
  }

  /** Resolves after the first complete list has been handed to `replace`. */
  get synced(): Promise<void> {
    return this.#synced;
  }

  status(): ReflectorStatus {
    return { ...this.#status, resourceVersion: this.#rv };
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const initial = this.#opts.backoffInitialMs ?? 500;
    const max = this.#opts.backoffMaxMs ?? 30_000;
    let backoff = initial;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (!this.#rv) {
          await this.#list(signal);
          backoff = initial;
        }
        await this.#watch(signal);
        backoff = initial; // a watch that ran and ended normally (server timeout) is healthy
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof GoneError || (err instanceof KubeStatusError && err.status === 410)) {
          this.#log.info({ resourceVersion: this.#rv }, 'resourceVersion expired (410 Gone); relisting');
          this.#rv = '';
          continue;
        }
        this.#status.errors++;
        this.#status.lastError = errorMessage(err);
        const wait = Math.round(backoff * (0.8 + Math.random() * 0.4));
        this.#log.warn({ err: this.#status.lastError, retryInMs: wait }, 'list/watch failed; retrying');
        await this.#delay(wait, signal).catch(() => {});
        backoff = Math.min(backoff * 2, max);
      }
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const pageSize = this.#opts.pageSize ?? 500;
    const items: T[] = [];
    let rv = '';
    let token = '';
    do {
      const query = new URLSearchParams({ limit: String(pageSize) });
      if (token) query.set('continue', token);
      const res = await kubeGet(this.#opts.conn, `${this.#opts.path}?${query}`, signal);
      const page = JSON.parse(await readBody(res)) as KubeList<T>;
      items.push(...(page.items ?? []));
      rv = page.metadata?.resourceVersion ?? rv;
      token = page.metadata?.continue ?? '';
    } while (token);
    this.#opts.handlers.replace(items);
    this.#rv = rv;
    this.#status.lists++;
    this.#status.synced = true;
    this.#log.debug({ items: items.length, resourceVersion: rv }, 'listed');
    this.#resolveSynced();
  }

  async #watch(signal: AbortSignal): Promise<void> {
    const timeout = (this.#opts.watchTimeoutSeconds ?? 300) + Math.floor(Math.random() * 30);
    const query = new URLSearchParams({
      watch: '1',
      allowWatchBookmarks: 'true',
      resourceVersion: this.#rv,
      timeoutSeconds: String(timeout),
    });
    const res = await kubeGet(this.#opts.conn, `${this.#opts.path}?${query}`, signal);
    this.#status.watches++;
    await this.#consume(res);
  }

  /** Applies newline-delimited watch events in order; the last processed resourceVersion is kept. */
  async #consume(res: IncomingMessage): Promise<void> {
    let buffered = '';
    res.setEncoding('utf8'); // a character split across chunks is joined, not mangled
    for await (const chunk of res) {
      buffered += chunk as string;
      // Scan with an index and keep the unfinished tail once per chunk: slicing the buffer after
      // every line would copy it once per event (quadratic in the events of one chunk).
      let start = 0;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(start, newline).trim();
        if (line) this.#apply(line);
        start = newline + 1;
        newline = buffered.indexOf('\n', start);
      }
      buffered = buffered.slice(start);
    }
    if (buffered.trim()) this.#apply(buffered.trim());
  }

  #apply(line: string): void {
    let event: WatchEvent<T>;
    try {
      event = JSON.parse(line) as WatchEvent<T>;
    } catch (err) {
      // Resuming from the last good resourceVersion refetches whatever this line carried.
      throw new MeshletError(ErrorCodes.KUBE_WATCH_DECODE, `undecodable watch event (${line.slice(0, 80)}…)`, { cause: err });
    }
    const rv = event.object?.metadata?.resourceVersion;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.#opts.handlers.upsert(event.object);
        break;
      case 'DELETED':
        this.#opts.handlers.delete(event.object);
        break;
      case 'BOOKMARK':
        this.#status.bookmarks++;
        break;
      case 'ERROR':
        if (event.object.code === 410) throw new GoneError(event.object.message ?? 'Gone');
        throw new MeshletError(
          ErrorCodes.KUBE_STATUS,
          `watch error ${event.object.code ?? ''} ${event.object.reason ?? ''}: ${event.object.message ?? ''}`,
        );
      default:
        throw new MeshletError(
          ErrorCodes.KUBE_WATCH_DECODE,
          `unknown watch event type ${String((event as { type: unknown }).type)}`,
        );
    }
    if (event.type !== 'BOOKMARK') this.#status.events++;
    if (rv) this.#rv = rv;
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
