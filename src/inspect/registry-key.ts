/**
 * Where a key sits in the Kubernetes registry (issue 13). Pure.
 *
 * The API server stores an object at `/registry/<prefix>/<namespace>/<name>` (namespaced) or
 * `/registry/<prefix>/<name>` (cluster-scoped); k3s (kine or etcd) uses the same layout. The
 * prefix (k8s.io/apiserver storage_factory.go `ResourcePrefix`) is:
 *   - for built-in resources, the lower-case resource name without its group
 *     (`/registry/deployments/…`, `/registry/leases/…`, `/registry/clusterroles/…`), except the
 *     renames of kubernetes pkg/kubeapiserver `SpecialDefaultResourcePrefixes`:
 *     `controllers` (replicationcontrollers), `minions` (nodes), `services/specs` (services),
 *     `services/endpoints` (endpoints), `ingress` (ingresses);
 *   - for custom resources (apiextensions `crd.Spec.Group + "/" + plural`) and aggregated
 *     resources stored through `SimpleRestOptionsFactory` (apiservices, CRDs themselves),
 *     `<group>/<resource>`: `/registry/apiregistration.k8s.io/apiservices/<name>`.
 *
 * The layout is ambiguous: `/registry/a/b/c` is either namespaced core-style (resource a,
 * namespace b) or cluster-scoped grouped (group a, resource b). The rule used: a first segment
 * containing a dot is a group, else a resource. It holds for every key the API server writes:
 * a CRD's group must contain a dot, and resource names and namespaces (DNS labels) never do.
 * Keys that fit neither shape (an empty segment, `/registry/<one segment>`, a grouped key with
 * no name, not UTF-8) are not registry object keys: `undefined`. A key with more segments than
 * either shape keeps its resource and puts the rest, joined by `/`, in `name` with no namespace
 * (no such key is known; nothing is guessed about it).
 */

export interface RegistryKey {
  /** The API resource (plural, lower case): `pods`, `nodes` for `minions`, `widgets` for a CRD. */
  resource: string;
  /** Only when the key carries it (custom and aggregated resources). */
  group?: string;
  /** Absent for cluster-scoped keys. */
  namespace?: string;
  name: string;
  /** The storage prefix as found in the key: `minions`, `services/specs`, `example.com/widgets`. */
  prefix: string;
}

const RENAMED: Record<string, string> = { controllers: 'replicationcontrollers', minions: 'nodes', ingress: 'ingresses' };
const SERVICES: Record<string, string> = { specs: 'services', endpoints: 'endpoints' };
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function parseRegistryKey(key: Buffer | string): RegistryKey | undefined {
  let s: string;
  if (typeof key === 'string') s = key;
  else {
    try {
      s = utf8.decode(key);
    } catch {
      return undefined;
    }
  }
  if (!s.startsWith('/registry/')) return undefined;
  const segs = s.slice('/registry/'.length).split('/');
  if (segs.length < 2 || segs.some((x) => x === '')) return undefined;
  const [first, second] = segs as [string, string];
  if (first === 'services' && Object.hasOwn(SERVICES, second) && segs.length >= 3) {
    return located({ resource: SERVICES[second] as string, prefix: `${first}/${second}` }, segs.slice(2));
  }
  if (first.includes('.')) {
    if (segs.length < 3) return undefined;
    return located({ resource: second, group: first, prefix: `${first}/${second}` }, segs.slice(2));
  }
  const resource = Object.hasOwn(RENAMED, first) ? (RENAMED[first] as string) : first;
  return located({ resource, prefix: first }, segs.slice(1));
}

function located(base: Omit<RegistryKey, 'name'>, rest: string[]): RegistryKey {
  if (rest.length === 2) return { ...base, namespace: rest[0] as string, name: rest[1] as string };
  return { ...base, name: rest.join('/') };
}

/** The resource as `kubectl api-resources` names it: `pods`, `widgets.example.com`. */
export function resourceType(k: RegistryKey): string {
  return k.group === undefined ? k.resource : `${k.resource}.${k.group}`;
}

/** The groups `stats` and `diff` aggregate by. */
export interface KeyGroup {
  /** `resourceType` of a registry key; for any other key its first path segment (`/bootstrap`, `foo` for `foo/bar`). */
  type: string;
  /** True when `type` is a Kubernetes resource. */
  registry: boolean;
  /** The namespace; null for cluster-scoped objects and keys outside the registry. */
  namespace: string | null;
}

const lossy = new TextDecoder('utf-8');

export function keyGroup(key: Buffer): KeyGroup {
  const k = parseRegistryKey(key);
  if (k !== undefined) return { type: resourceType(k), registry: true, namespace: k.namespace ?? null };
  const s = lossy.decode(key);
  const slash = s.indexOf('/', 1);
  return { type: slash === -1 ? s : s.slice(0, slash), registry: false, namespace: null };
}
