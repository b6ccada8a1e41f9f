import { z } from 'zod';
import { ConfigSchema } from './schema.ts';

/** One JSON Schema node, as much of it as meshlet reads. */
export interface SchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  properties?: Record<string, SchemaNode>;
  anyOf?: SchemaNode[];
  items?: SchemaNode;
  format?: string;
}

/** A settable leaf of the config, e.g. `dns.port`. */
export interface ConfigLeaf {
  path: string[];
  schema: SchemaNode;
  envName: string;
}

let cachedJsonSchema: SchemaNode | undefined;

/** The config's JSON Schema (input side: every field optional, defaults shown). */
export function configJsonSchema(): SchemaNode {
  cachedJsonSchema ??= z.toJSONSchema(ConfigSchema, { io: 'input' }) as SchemaNode;
  return cachedJsonSchema;
}

/** `dns.port` → `MESHLET_DNS_PORT`; `source.file.debounceMs` → `MESHLET_SOURCE_FILE_DEBOUNCE_MS`. */
export function envNameFor(path: readonly string[]): string {
  const words = path.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase());
  return `MESHLET_${words.join('_')}`;
}

export function configLeaves(): ConfigLeaf[] {
  const leaves: ConfigLeaf[] = [];
  const walk = (node: SchemaNode, path: string[]): void => {
    if (node.properties) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key]);
      return;
    }
    leaves.push({ path, schema: node, envName: envNameFor(path) });
  };
  walk(configJsonSchema(), []);
  return leaves;
}

/** The schema node at a path, or undefined if the path names no field. */
export function schemaAt(path: readonly (string | number)[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = configJsonSchema();
  for (const key of path) {
    if (node?.items && typeof key === 'number') node = node.items;
    else node = node?.properties?.[String(key)];
  }
  return node;
}

/** Human words for what a field accepts, from its schema: "integer 0..65535", "one of: a, b". */
export function describeAllowed(node: SchemaNode | undefined): string {
  if (!node) return 'no such field';
  if (node.enum) return `one of: ${node.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (node.anyOf) return node.anyOf.map(describeAllowed).join(' or ');
  if (node.properties) return `an object with fields: ${Object.keys(node.properties).join(', ')}`;
  const type = Array.isArray(node.type) ? node.type.join('|') : (node.type ?? 'value');
  const parts: string[] = [node.format ? `${type} (${node.format})` : type];
  if (node.minimum !== undefined || node.maximum !== undefined) {
    parts.push(`${node.minimum ?? '-∞'}..${node.maximum ?? '∞'}`);
  }
  if (node.pattern && !node.format) parts.push(`matching ${node.pattern}`);
  if (node.items) parts.push(`of ${describeAllowed(node.items)}`);
  return parts.join(' ');
}
