/**
 * pgwarden's mirror of the server's session state (prepared statements, portals, cursors), kept
 * so later messages can be checked against what the server will run.
 *
 * A change is applied when its message is forwarded, because later messages of the same pipeline
 * must see it (Parse S, then Bind S, before any reply). But the server carries a message out only
 * if nothing before it in the pipeline failed, and only if it does not fail itself: every change
 * is therefore recorded on the request it belongs to, and undone when the server reports that
 * request failed or was skipped. Confirmed requests just drop their changes.
 */

/** A name space as pgwarden stores it: a Map of name to what pgwarden knows of it. */
export interface NameStore<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  keys(): Iterable<string>;
}

export function mapStore<V>(map: Map<string, V>): NameStore<V> {
  return {
    get: (key) => map.get(key),
    set: (key, value) => void map.set(key, value),
    delete: (key) => void map.delete(key),
    keys: () => map.keys(),
  };
}

/** One change to one name, not yet confirmed by the server. */
export class Change {
  /** The next change to the same name, made after this one. */
  newer: Change | undefined = undefined;

  constructor(
    readonly space: MirroredNames<unknown>,
    readonly key: string,
    /** The name's value before this change; undefined: the name did not exist. */
    public prev: unknown,
    /** 0-based index of the statement (in a simple Query) that makes it; 0 for other messages. */
    readonly statement: number,
  ) {}
}

/** Where a message's changes are recorded: its pending request. */
export interface ChangeLog {
  changes: Change[] | undefined;
}

/**
 * One of the server's name spaces. Undoing a change must not just restore the value it replaced:
 * a later pipeline may already have changed the same name again (and will still run), so the
 * undone change's previous value is handed on to the next change of that name instead.
 */
export class MirroredNames<V> {
  /**
   * The latest unconfirmed change to each name. A confirmed one is removed, so a session that
   * makes and drops a million names keeps none of them (nor the values they replaced).
   */
  private readonly latest = new Map<string, Change>();

  constructor(private readonly store: NameStore<V>) {}

  get(key: string): V | undefined {
    return this.store.get(key);
  }

  has(key: string): boolean {
    return this.store.get(key) !== undefined;
  }

  set(key: string, value: V, log: ChangeLog, statement = 0): void {
    this.record(key, log, statement);
    this.store.set(key, value);
  }

  delete(key: string, log: ChangeLog, statement = 0): void {
    if (this.store.get(key) === undefined) return;
    this.record(key, log, statement);
    this.store.delete(key);
  }

  /** Deletes every name (DEALLOCATE ALL): the one change that snapshots a whole name space. */
  clear(log: ChangeLog, statement = 0): void {
    for (const key of [...this.store.keys()]) this.delete(key, log, statement);
  }

  /**
   * Forgets names the server has dropped on its own (the end of a transaction drops its portals):
   * not a change of any request, so nothing can undo it. Only for names whose changes the server
   * has all answered; their latest change is forgotten with them.
   */
  forget(dropped: (value: V) => boolean): void {
    for (const key of this.store.keys()) {
      const value = this.store.get(key);
      if (value === undefined || !dropped(value)) continue;
      this.store.delete(key);
      this.latest.delete(key);
    }
  }

  private record(key: string, log: ChangeLog, statement: number): void {
    const c = new Change(this as MirroredNames<unknown>, key, this.store.get(key), statement);
    const before = this.latest.get(key);
    if (before) before.newer = c;
    this.latest.set(key, c);
    (log.changes ??= []).push(c);
  }

  /** Names with a change the server has not answered yet. */
  get unconfirmed(): number {
    return this.latest.size;
  }

  /** The server carried the change out: it can no longer be undone. */
  confirm(c: Change): void {
    if (this.latest.get(c.key) === c) this.latest.delete(c.key);
  }

  /**
   * Undoes a change the server did not carry out. Changes are undone oldest first, and only ever
   * the oldest still unconfirmed ones: every earlier change of the name was carried out.
   */
  undo(c: Change): void {
    const next = c.newer;
    if (next) {
      next.prev = c.prev;
      return;
    }
    if (this.latest.get(c.key) === c) this.latest.delete(c.key);
    if (c.prev === undefined) this.store.delete(c.key);
    else this.store.set(c.key, c.prev as V);
  }
}

/**
 * Undoes, oldest first, a request's changes made by statements `from` on; those of earlier
 * statements were carried out. The request's changes are then done with.
 */
export function undoChanges(log: ChangeLog, from = 0): void {
  const changes = log.changes;
  if (!changes) return;
  log.changes = undefined;
  for (const c of changes) {
    if (c.statement >= from) c.space.undo(c);
    else c.space.confirm(c);
  }
}

/** The server carried the request out: all its changes stand. */
export function confirmChanges(log: ChangeLog): void {
  const changes = log.changes;
  if (!changes) return;
  log.changes = undefined;
  for (const c of changes) c.space.confirm(c);
}
