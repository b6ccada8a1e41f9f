import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import { type Config, ConfigSchema } from './schema.ts';
import { configLeaves, describeAllowed, schemaAt } from './schema-walk.ts';

/**
 * Builds the one Config object: defaults < config file < environment < command-line flags.
 * (Flags win because they are the most specific thing an operator typed; the environment
 * beats the file because a DaemonSet's env is how one node differs from the shared ConfigMap.)
 * The result is validated once and deep-frozen.
 */
export interface LoadOptions {
  /** Path of a YAML config file; undefined means none (defaults only). */
  file?: string;
  /** Environment to read MESHLET_* variables from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** `--set path=value` overrides, in order; later ones win. */
  sets?: readonly string[];
}

type Plain = Record<string, unknown>;

/** Where each overridden leaf came from, so an error can point at the right place. */
type Origins = Map<string, string>;

export function loadConfig(opts: LoadOptions = {}): Config {
  const origins: Origins = new Map();
  let input: Plain = {};
  if (opts.file !== undefined) {
    input = readConfigFile(opts.file);
    recordOrigins(input, [], `file ${opts.file}`, origins);
  }
  applyEnv(input, opts.env ?? process.env, origins);
  for (const set of opts.sets ?? []) applySet(input, set, origins);

  const result = ConfigSchema.safeParse(input, { reportInput: true });
  if (!result.success) {
    const lines = result.error.issues.map((issue) => formatIssue(issue, origins));
    throw new MeshletError(ErrorCodes.CONFIG_INVALID, `invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const config = result.data;
  if (opts.file !== undefined) {
    const base = dirname(resolve(opts.file));
    const path = config.source.file.path;
    if (!isAbsolute(path)) config.source.file.path = resolve(base, path);
  }
  return deepFreeze(config);
}

function readConfigFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MeshletError(ErrorCodes.CONFIG_FILE, `cannot read config file ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new MeshletError(ErrorCodes.CONFIG_FILE, `config file ${file}${where} is not valid YAML: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc)) {
    throw new MeshletError(
      ErrorCodes.CONFIG_FILE,
      `config file ${file} must hold a YAML mapping at the top, not ${typeName(doc)}`,
    );
  }
  return doc;
}

function applyEnv(input: Plain, env: NodeJS.ProcessEnv, origins: Origins): void {
  for (const leaf of configLeaves()) {
    const raw = env[leaf.envName];
    if (raw === undefined) continue;
    setPath(input, leaf.path, parseScalar(raw, leaf.schema.type));
    origins.set(leaf.path.join('.'), `environment ${leaf.envName}`);
  }
}

function applySet(input: Plain, set: string, origins: Origins): void {
  const eq = set.indexOf('=');
  if (eq <= 0) {
    throw new MeshletError(ErrorCodes.CONFIG_INVALID, `invalid --set "${set}": expected path=value, e.g. dns.port=5353`);
  }
  const path = set.slice(0, eq).split('.');
  const node = schemaAt(path);
  if (!node || node.properties) {
    const allowed = configLeaves()
      .map((leaf) => leaf.path.join('.'))
      .join(', ');
    throw new MeshletError(
      ErrorCodes.CONFIG_INVALID,
      `invalid --set "${set}": no config field "${path.join('.')}"; fields: ${allowed}`,
    );
  }
  setPath(input, path, parseScalar(set.slice(eq + 1), node.type));
  origins.set(path.join('.'), `flag --set ${path.join('.')}`);
}

/** Strings from env and flags are typed by the field they set: "5353" is a number for a port. */
function parseScalar(raw: string, type: string | string[] | undefined): unknown {
  const types = Array.isArray(type) ? type : [type];
  if (types.includes('string') && !types.includes('number') && !types.includes('integer')) return raw;
  if (types.includes('array') && !raw.trim().startsWith('[')) {
    return raw === '' ? [] : raw.split(',').map((s) => s.trim());
  }
  try {
    return parseYaml(raw) ?? raw;
  } catch {
    return raw;
  }
}

function formatIssue(issue: z.core.$ZodIssue, origins: Origins): string {
  const path = issue.path.map(String);
  const field = path.join('.') || '(top level)';
  const origin = originOf(path, origins);
  const from = origin ? ` (from ${origin})` : '';
  if (issue.code === 'unrecognized_keys') {
    const allowed = describeAllowed(schemaAt(path));
    return issue.keys
      .map((key) => {
        const full = [...path, key].join('.');
        const keyOrigin = originOf([...path, key], origins);
        return `unknown field "${full}"${keyOrigin ? ` (from ${keyOrigin})` : ''}; allowed here: ${allowed.replace(/^an object with fields: /, '')}`;
      })
      .join('\n  ');
  }
  const got = 'input' in issue ? ` got ${JSON.stringify(issue.input)}` : '';
  return `field "${field}"${from}:${got}; ${issue.message}; allowed: ${describeAllowed(schemaAt(path))}`;
}

function originOf(path: readonly string[], origins: Origins): string | undefined {
  for (let i = path.length; i > 0; i--) {
    const origin = origins.get(path.slice(0, i).join('.'));
    if (origin) return origin;
  }
  return undefined;
}

function recordOrigins(value: unknown, path: string[], origin: string, origins: Origins): void {
  if (isPlainObject(value)) {
    for (const [key, child] of Object.entries(value)) recordOrigins(child, [...path, key], origin, origins);
  } else {
    origins.set(path.join('.'), origin);
  }
}

function setPath(target: Plain, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (isPlainObject(next)) node = next;
    else {
      const created: Plain = {};
      node[key] = created;
      node = created;
    }
  }
  const last = path.at(-1);
  if (last !== undefined) node[last] = value;
}

function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  return Array.isArray(value) ? 'a list' : `a ${typeof value}`;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
