/**
 * What a kube-apiserver request is about, from its method, path and query alone (the same
 * split the apiserver's RequestInfoFactory makes): verb, API group/version, resource,
 * namespace, name, subresource. Non-resource paths (/version, /api, /apis/...) come back with
 * `resource: undefined`.
 */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'other';

export interface RequestInfo {
  verb: Verb;
  /** '' for the core group. */
  group: string;
  version: string;
  resource?: string;
  namespace: string;
  name: string;
  subresource: string;
  /** Query parameters of the request. */
  query: URLSearchParams;
  path: string;
}

/** Key of a resource for caching: `resource` for the core group, else `resource.group` (as kubectl spells it). */
export function resourceKey(group: string, resource: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

export function parseRequest(method: string, rawUrl: string): RequestInfo {
  const url = new URL(rawUrl, 'http://x');
  const query = url.searchParams;
  const parts = url.pathname.split('/').filter((p) => p !== '');
  const info: RequestInfo = {
    verb: 'other',
    group: '',
    version: '',
    namespace: '',
    name: '',
    subresource: '',
    query,
    path: url.pathname,
  };
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) {
    info.version = parts[1] ?? '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    info.group = parts[1] ?? '';
    info.version = parts[2] ?? '';
    rest = parts.slice(3);
  } else {
    info.verb = method === 'GET' ? 'get' : 'other';
    return info; // non-resource path
  }
  if (rest.length === 0) {
    info.verb = method === 'GET' ? 'get' : 'other';
    return info; // discovery of a group version
  }
  // Deprecated /watch/ prefix is not supported as a cached path: it is proxied untouched.
  if (rest[0] === 'watch') return info;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    info.namespace = rest[1] ?? '';
    rest = rest.slice(2);
  }
  info.resource = rest[0] ?? '';
  info.name = rest[1] ?? '';
  info.subresource = rest.slice(2).join('/');
  const watch = query.get('watch');
  const isWatch = watch === 'true' || watch === '1';
  switch (method) {
    case 'GET':
    case 'HEAD':
      info.verb = info.name === '' ? (isWatch ? 'watch' : 'list') : 'get';
      break;
    case 'POST':
      info.verb = 'create';
      break;
    case 'PUT':
      info.verb = 'update';
      break;
    case 'PATCH':
      info.verb = 'patch';
      break;
    case 'DELETE':
      info.verb = info.name === '' ? 'deletecollection' : 'delete';
      break;
    default:
      info.verb = 'other';
  }
  return info;
}
