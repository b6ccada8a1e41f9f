/**
 * Label and field selectors evaluated locally, with the apiserver's syntax:
 * labels `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`; fields `f=v`, `f==v`, `f!=v`.
 * Field paths are read from the object (any dotted path, e.g. spec.nodeName, status.phase),
 * so offline answers match what the apiserver answered online for the fields it supports.
 */

export interface LabelRequirement {
  key: string;
  op: 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists';
  values: string[];
}

export interface FieldRequirement {
  path: string;
  op: 'eq' | 'neq';
  value: string;
}

export class SelectorError extends Error {}

/** Splits at commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.map((p) => p.trim()).filter((p) => p !== '');
}

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

export function parseLabelSelector(selector: string | null): LabelRequirement[] {
  if (!selector) return [];
  return splitTop(selector).map((term): LabelRequirement => {
    let m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
    if (m) {
      const values = (m[3] ?? '')
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '');
      return { key: checkKey(m[1] ?? ''), op: m[2] === 'in' ? 'in' : 'notin', values };
    }
    m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (m) return { key: checkKey(m[1] ?? ''), op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3] ?? ''] };
    m = /^!\s*(\S+)$/.exec(term);
    if (m) return { key: checkKey(m[1] ?? ''), op: 'notexists', values: [] };
    return { key: checkKey(term), op: 'exists', values: [] };
  });
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new SelectorError(`invalid label selector key ${JSON.stringify(key)}`);
  return key;
}

export function matchLabels(reqs: readonly LabelRequirement[], labels: Readonly<Record<string, string>> | undefined): boolean {
  for (const r of reqs) {
    const has = labels !== undefined && Object.hasOwn(labels, r.key);
    const v = has ? labels?.[r.key] : undefined;
    switch (r.op) {
      case 'eq':
        if (v !== r.values[0]) return false;
        break;
      case 'neq':
        if (v === r.values[0]) return false;
        break;
      case 'in':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'notin':
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'exists':
        if (!has) return false;
        break;
      case 'notexists':
        if (has) return false;
        break;
    }
  }
  return true;
}

export function parseFieldSelector(selector: string | null): FieldRequirement[] {
  if (!selector) return [];
  return splitTop(selector).map((term): FieldRequirement => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new SelectorError(`invalid field selector ${JSON.stringify(term)}`);
    return { path: m[1] ?? '', op: m[2] === '!=' ? 'neq' : 'eq', value: (m[3] ?? '').trim() };
  });
}

/** The value at a dotted path as the apiserver's field sets spell it (missing = ''). */
export function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : String(cur);
}

export function matchFields(reqs: readonly FieldRequirement[], get: (path: string) => string): boolean {
  for (const r of reqs) {
    const v = get(r.path);
    if (r.op === 'eq' ? v !== r.value : v === r.value) return false;
  }
  return true;
}

/** Canonical text of a selector (sorted terms), so equal selectors written differently share a scope. */
export function canonicalSelector(selector: string | null): string {
  if (!selector) return '';
  return splitTop(selector)
    .map((t) => t.replace(/\s+/g, ' ').replace(/\s*(==|!=|=)\s*/, (_m, op: string) => (op === '==' ? '=' : op)))
    .sort()
    .join(',');
}
