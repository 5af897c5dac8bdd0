// A typed informer over client-node's ListWatch (list + watch + relist after 410 Gone + reconnect
// backoff). What it adds (anchors note §4.1: client-node has no indexers, no owner mapping, and
// stops for good on any error other than 410/timeout):
//  - its own cache of objects parsed with the caller's schema, indexed by namespace/name and by
//    owner UID, listable by label selector;
//  - handlers that only map objects to keys (self, or the controlling owner) and enqueue them;
//  - hasSynced()/waitForSync() after the first list has been applied;
//  - restart with exponential backoff after errors that make ListWatch stop.
//
// Wire format: watch events carry plain JSON, while client-node's generated list functions return
// deserialized class instances (Date objects for timestamps). Every listed item is therefore turned
// back into JSON (JSON round trip) so that `parse` always sees what the API server sent.
// Our list wrapper applies the list to the cache itself (so that "synced" has a precise moment);
// ListWatch then replays the same items, which the cache ignores because the resourceVersion is
// unchanged, and its relist deletes concern keys the cache has already dropped.
import { KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { labelsMatch, type LabelSelector } from './label-selector.js';
import { controllerOwnerKey, objectKey, parseObjectMeta, type ObjectMeta, type OwnerKind } from './object-meta.js';

/** What a list function must return (client-node's generated `list*` results fit). */
export interface ListResult {
  readonly metadata?: { readonly resourceVersion?: string | undefined } | undefined;
  readonly items: readonly unknown[];
}

/** Raised when an informer cannot do what was asked (closed before its first sync). */
export class InformerError extends Error {
  override readonly name = 'InformerError';
}

/** Options of an Informer. */
export interface InformerOptions<T> {
  readonly kc: KubeConfig;
  /** Short name for logs (e.g. 'configmaps'). */
  readonly name: string;
  /** Watch path of the collection, e.g. /api/v1/namespaces/ns/configmaps or /apis/g/v1/things. */
  readonly path: string;
  /** Lists the same collection with the same selectors, e.g. () => core.listNamespacedConfigMap({ namespace }). */
  readonly list: () => Promise<ListResult>;
  /** Parses one object from wire JSON (a zod schema's `parse`); objects it rejects are skipped and logged. */
  readonly parse: (raw: unknown) => T;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly clock?: Clock;
  /** Restart backoff after a watch/list error: base (default 1 s) doubling to max (default 30 s). */
  readonly restartBaseMs?: number;
  readonly restartMaxMs?: number;
  readonly log?: (line: string) => void;
}

/** Something keys can be added to (a WorkQueue). */
export interface KeySink {
  add(key: string): void;
}

/** Maps an object to the keys to enqueue for it. */
export type KeyMapper<T> = (obj: T, meta: ObjectMeta) => readonly string[];

interface Entry<T> {
  readonly obj: T;
  readonly meta: ObjectMeta;
}

/** Maps an object to its own key. */
export function selfKey(_obj: unknown, meta: ObjectMeta): readonly string[] {
  return [objectKey(meta)];
}

/** Maps an object to the key of its controlling owner of kind `owner` (none if not owned so). */
export function ownerKey<T>(owner: OwnerKind): KeyMapper<T> {
  return (_obj, meta) => {
    const key = controllerOwnerKey(meta, owner);
    return key === undefined ? [] : [key];
  };
}

function isKubernetesObject(x: unknown): x is KubernetesObject {
  return parseObjectMeta(x) !== undefined;
}

/** Plain JSON of a (possibly deserialized) object: Dates become RFC 3339 strings as on the wire. */
function toWire(x: unknown): unknown {
  const json: unknown = JSON.parse(JSON.stringify(x));
  return json;
}

/** A typed, indexed informer. */
export class Informer<T> {
  readonly name: string;
  readonly #opts: InformerOptions<T>;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  readonly #lw: ListWatch<KubernetesObject>;
  readonly #items = new Map<string, Entry<T>>();
  readonly #byOwner = new Map<string, Set<string>>();
  readonly #handlers: { readonly map: KeyMapper<T>; readonly sink: KeySink }[] = [];
  #synced = false;
  #syncWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #stopped = false;
  #started = false;
  #restartDelay = 0;
  #restartTimer: TimerHandle | undefined;
  #lists = 0;
  #restarts = 0;
  #resolveClosed: () => void = () => {};
  /** Resolves once close() has stopped the watch. */
  readonly closed: Promise<void>;

  constructor(opts: InformerOptions<T>) {
    this.name = opts.name;
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
    this.#log = opts.log ?? ((line) => process.stderr.write(`[informer ${opts.name}] ${line}\n`));
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#lw = new ListWatch<KubernetesObject>(opts.path, new Watch(opts.kc), () => this.#list(), false, opts.labelSelector, opts.fieldSelector);
    this.#lw.on('add', (o) => this.#upsert(o));
    this.#lw.on('update', (o) => this.#upsert(o));
    this.#lw.on('delete', (o) => this.#remove(o));
    this.#lw.on('error', (err: unknown) => this.#onError(err));
  }

  /** Routes every change to `sink` as the keys `map` gives (default: the object's own key). */
  enqueue(sink: KeySink, map: KeyMapper<T> = selfKey): void {
    this.#handlers.push({ map, sink });
  }

  /** Routes every change to the key of the object's controlling owner of kind `owner`. */
  enqueueOwner(sink: KeySink, owner: OwnerKind): void {
    this.enqueue(sink, ownerKey(owner));
  }

  /** Starts listing and watching (returns at once; see waitForSync). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#lw.start();
  }

  /** Stops watching; the cache keeps its last content (idempotent). */
  async close(): Promise<void> {
    if (this.#stopped) return this.closed;
    this.#stopped = true;
    this.#restartTimer?.cancel();
    await this.#lw.stop();
    const waiters = this.#syncWaiters;
    this.#syncWaiters = [];
    for (const w of waiters) w.reject(new InformerError(`informer ${this.name} closed before its cache synced`));
    this.#resolveClosed();
    return this.closed;
  }

  /** True once the first list has been applied to the cache. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves once synced (or at once when `signal` aborts); rejects if the informer closes first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced || signal?.aborted === true) return Promise.resolve();
    if (this.#stopped) return Promise.reject(new InformerError(`informer ${this.name} is closed`));
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#syncWaiters.push(waiter);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** The cached object `namespace/name` (namespace undefined for cluster-scoped). */
  get(namespace: string | undefined, name: string): T | undefined {
    return this.#items.get(objectKey({ name, namespace }))?.obj;
  }

  /** The cached object with this key. */
  getByKey(key: string): T | undefined {
    return this.#items.get(key)?.obj;
  }

  /** Cached objects, optionally in one namespace and matching a label selector. */
  list(opts: { readonly namespace?: string; readonly selector?: LabelSelector } = {}): T[] {
    const out: T[] = [];
    for (const { obj, meta } of this.#items.values()) {
      if (opts.namespace !== undefined && (meta.namespace ?? '') !== opts.namespace) continue;
      if (opts.selector !== undefined && !labelsMatch(opts.selector, meta.labels)) continue;
      out.push(obj);
    }
    return out;
  }

  /** Cached objects that have an owner reference (controller or not) to `uid`. */
  listByOwner(uid: string): T[] {
    const out: T[] = [];
    for (const key of this.#byOwner.get(uid) ?? []) {
      const e = this.#items.get(key);
      if (e !== undefined) out.push(e.obj);
    }
    return out;
  }

  /** Counters for diagnostics and tests: lists done (1 + relists) and restarts after errors. */
  get stats(): { readonly lists: number; readonly restarts: number; readonly size: number } {
    return { lists: this.#lists, restarts: this.#restarts, size: this.#items.size };
  }

  /** The list function handed to ListWatch: apply the list to the cache, mark synced. */
  async #list(): Promise<{ metadata: { resourceVersion: string }; items: KubernetesObject[] }> {
    const res = await this.#opts.list();
    const items = res.items.map(toWire).filter(isKubernetesObject);
    this.#lists++;
    this.#replace(items);
    this.#restartDelay = 0;
    if (!this.#synced) {
      this.#synced = true;
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      for (const w of waiters) w.resolve();
    }
    return { metadata: { resourceVersion: res.metadata?.resourceVersion ?? '' }, items };
  }

  #replace(items: readonly KubernetesObject[]): void {
    const keep = new Set<string>();
    for (const raw of items) {
      const meta = parseObjectMeta(raw);
      if (meta !== undefined) keep.add(objectKey(meta));
    }
    for (const [key, entry] of [...this.#items]) {
      if (!keep.has(key)) this.#drop(key, entry);
    }
    for (const raw of items) this.#upsert(raw);
  }

  #upsert(raw: unknown): void {
    this.#restartDelay = 0;
    const meta = parseObjectMeta(raw);
    if (meta === undefined) {
      this.#log('skipped an object without metadata.name');
      return;
    }
    const key = objectKey(meta);
    const old = this.#items.get(key);
    if (old !== undefined && meta.resourceVersion !== undefined && old.meta.resourceVersion === meta.resourceVersion) return;
    let obj: T;
    try {
      obj = this.#opts.parse(raw);
    } catch (err) {
      this.#log(`skipped ${key}: does not parse: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (old !== undefined) this.#unindex(key, old.meta);
    const entry = { obj, meta };
    this.#items.set(key, entry);
    this.#index(key, meta);
    this.#notify(old, entry);
  }

  #remove(raw: unknown): void {
    const meta = parseObjectMeta(raw);
    if (meta === undefined) return;
    const key = objectKey(meta);
    const old = this.#items.get(key);
    if (old !== undefined) this.#drop(key, old);
  }

  #drop(key: string, entry: Entry<T>): void {
    this.#items.delete(key);
    this.#unindex(key, entry.meta);
    this.#notify(entry, undefined);
  }

  #index(key: string, meta: ObjectMeta): void {
    for (const ref of meta.ownerReferences ?? []) {
      let keys = this.#byOwner.get(ref.uid);
      if (keys === undefined) this.#byOwner.set(ref.uid, (keys = new Set()));
      keys.add(key);
    }
  }

  #unindex(key: string, meta: ObjectMeta): void {
    for (const ref of meta.ownerReferences ?? []) {
      const keys = this.#byOwner.get(ref.uid);
      keys?.delete(key);
      if (keys?.size === 0) this.#byOwner.delete(ref.uid);
    }
  }

  /** Enqueues the keys of the old and the new state (an owner change must wake both owners). */
  #notify(old: Entry<T> | undefined, cur: Entry<T> | undefined): void {
    for (const { map, sink } of this.#handlers) {
      const keys = new Set<string>();
      if (old !== undefined) for (const k of map(old.obj, old.meta)) keys.add(k);
      if (cur !== undefined) for (const k of map(cur.obj, cur.meta)) keys.add(k);
      for (const k of keys) sink.add(k);
    }
  }

  /** ListWatch stops on errors other than 410/timeout (and on our own abort): restart with backoff. */
  #onError(err: unknown): void {
    if (this.#stopped) return;
    const base = this.#opts.restartBaseMs ?? 1000;
    this.#restartDelay = Math.min(this.#restartDelay > 0 ? this.#restartDelay * 2 : base, this.#opts.restartMaxMs ?? 30_000);
    this.#log(`watch/list failed (${err instanceof Error ? err.message : String(err)}); restarting in ${this.#restartDelay} ms`);
    this.#restartTimer?.cancel();
    this.#restartTimer = this.#clock.setTimer(() => {
      if (this.#stopped) return;
      this.#restarts++;
      void this.#lw.start();
    }, this.#restartDelay);
  }
}
