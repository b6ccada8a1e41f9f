import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { ServiceRegistry } from '../registry/registry.ts';
import type { RegistryState } from '../registry/types.ts';
import { RegistryFileSchema, registryStateFromFile } from './file-format.ts';
import type { RegistrySource, SourceStatus } from './source.ts';

export interface FileSourceOptions {
  path: string;
  watch: boolean;
  debounceMs: number;
  logger?: Logger;
}

/** Reads and validates a registry file; throws MESHLET_ERR_SOURCE_FILE / _INVALID with the reason. */
export function readRegistryFile(path: string): RegistryState {
  return parseRegistryText(readRegistryText(path), path);
}

function readRegistryText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new MeshletError(ErrorCodes.SOURCE_FILE, `cannot read registry file ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * A JSON document (JSON is YAML too, and what generators write) is parsed as JSON: the YAML
 * parser's token and node trees allocated ~550 MiB (short-lived, but enough to grow the heap)
 * per reload of the bench's 1,000-service file, which JSON.parse reads with a few MiB. Anything JSON.parse refuses goes through the YAML
 * parser, so YAML-only syntax and the YAML parser's error messages are unchanged.
 */
function parseDocument(text: string): unknown {
  if (/^\s*[{[]/.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // not strict JSON (comments, trailing commas, flow YAML): the YAML parser decides below
    }
  }
  return parseYaml(text) ?? {};
}

function parseRegistryText(text: string, path: string): RegistryState {
  let doc: unknown;
  try {
    doc = parseDocument(text);
  } catch (err) {
    throw new MeshletError(ErrorCodes.SOURCE_INVALID, `registry file ${path} is not valid YAML: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const parsed = RegistryFileSchema.safeParse(doc);
  if (!parsed.success) {
    throw new MeshletError(ErrorCodes.SOURCE_INVALID, `registry file ${path} is invalid:\n${z.prettifyError(parsed.error)}`);
  }
  try {
    return registryStateFromFile(parsed.data);
  } catch (err) {
    throw new MeshletError(ErrorCodes.SOURCE_INVALID, `registry file ${path} is invalid: ${errorMessage(err)}`, { cause: err });
  }
}

function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

/**
 * The registry from a YAML file (standalone mode). The file is watched through its directory,
 * so editors that save by rename and tools that replace the file atomically are both seen.
 * An invalid edit is rejected with a logged error and the last good state stays in force; a
 * deleted file also keeps the last good state (losing every service because a file vanished
 * for a moment would be worse) until the file is back.
 *
 * Events: 'loaded' (state) after each accepted load, 'rejected' (error) after each refusal.
 */
export class FileSource extends EventEmitter implements RegistrySource {
  readonly kind = 'file';
  readonly #opts: FileSourceOptions;
  readonly #log: Logger;
  #registry: ServiceRegistry | undefined;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #lastSyncAt: string | undefined;
  #lastError: string | undefined;
  #loads = 0;
  #rejections = 0;
  /** Digest of the last applied file's text. */
  #lastDigest: string | undefined;

  constructor(opts: FileSourceOptions) {
    super();
    this.#opts = opts;
    this.#log = (opts.logger ?? silentLogger()).child({ module: 'sources/file', path: opts.path });
  }

  async start(registry: ServiceRegistry): Promise<void> {
    this.#registry = registry;
    // At start there is no last good state to keep: an unreadable or invalid file stops the agent.
    const text = readRegistryText(this.#opts.path);
    this.#apply(parseRegistryText(text, this.#opts.path));
    this.#lastDigest = digestOf(text);
    if (this.#opts.watch) this.#watch();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  status(): SourceStatus {
    return {
      kind: this.kind,
      synced: this.#lastSyncAt !== undefined,
      ...(this.#lastSyncAt !== undefined && { lastSyncAt: this.#lastSyncAt }),
      ...(this.#lastError !== undefined && { lastError: this.#lastError }),
      detail: { path: this.#opts.path, watching: this.#watcher !== undefined, loads: this.#loads, rejections: this.#rejections },
    };
  }

  /**
   * Re-reads the file now; used by the watcher and by tests that do not want to wait. A file
   * whose text is what was last applied (and nothing was rejected since) is not parsed again:
   * editors and atomic renames raise several watch events per save.
   */
  reload(): boolean {
    let state: RegistryState;
    try {
      const text = readRegistryText(this.#opts.path);
      const digest = digestOf(text);
      if (digest === this.#lastDigest && this.#lastError === undefined) return true;
      state = parseRegistryText(text, this.#opts.path);
      this.#lastDigest = digest;
    } catch (err) {
      this.#rejections++;
      this.#lastError = errorMessage(err);
      this.#log.error(
        { code: (err as MeshletError).code, err: this.#lastError },
        'registry file rejected; keeping the last good state',
      );
      this.emit('rejected', err);
      return false;
    }
    this.#apply(state);
    return true;
  }

  #apply(state: RegistryState): void {
    this.#registry?.replaceAll(state);
    this.#loads++;
    this.#lastSyncAt = new Date().toISOString();
    this.#lastError = undefined;
    this.#log.info(
      { services: state.services.length, endpointSlices: state.endpointSlices.length, nodes: state.nodes.length },
      'registry file loaded',
    );
    this.emit('loaded', state);
  }

  #watch(): void {
    const name = basename(this.#opts.path);
    this.#watcher = watch(dirname(this.#opts.path), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => this.reload(), this.#opts.debounceMs);
    });
    this.#watcher.on('error', (err) => this.#log.error({ err: errorMessage(err) }, 'registry file watcher failed'));
  }
}
