import { Document, isMap, isScalar, type Pair, type YAMLMap } from 'yaml';
import { ConfigSchema } from './schema.ts';
import { configJsonSchema, describeAllowed, envNameFor, type SchemaNode } from './schema-walk.ts';

/**
 * A complete, commented example config: every field with its default, what it means, what is
 * allowed and the environment variable that overrides it. Generated from the schema, so it
 * cannot drift from what the loader accepts.
 */
export function renderDefaultConfig(): string {
  const defaults = ConfigSchema.parse({});
  const doc = new Document(defaults);
  doc.commentBefore =
    ' meshlet configuration: every field, with its default.\n' +
    ' Precedence: defaults < this file < MESHLET_* environment < --set path=value flags.\n' +
    ' Unknown fields are an error.';
  if (isMap(doc.contents)) annotate(doc.contents, configJsonSchema(), []);
  // The host name is the default node name; show that rather than this machine's name.
  const nodeName = doc.getIn(['node', 'name'], true);
  if (isScalar(nodeName)) nodeName.value = '<host name>';
  return doc.toString({ lineWidth: 0 });
}

function annotate(map: YAMLMap, schema: SchemaNode, path: string[]): void {
  for (const item of map.items as Pair[]) {
    if (!isScalar(item.key)) continue;
    const key = String(item.key.value);
    const child = schema.properties?.[key];
    if (!child) continue;
    const childPath = [...path, key];
    const lines = [child.description ?? ''];
    if (!child.properties) lines.push(`allowed: ${describeAllowed(child)}; env: ${envNameFor(childPath)}`);
    item.key.commentBefore = lines
      .filter(Boolean)
      .map((line) => ` ${line}`)
      .join('\n');
    if (path.length === 0) item.key.spaceBefore = true;
    if (isMap(item.value)) annotate(item.value, child, childPath);
  }
}
