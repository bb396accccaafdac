import { FairShare } from './fair-share.js';

/**
 * Jobs queued under a path of keys (for the judge thread: tenant, human, session). `take` serves
 * every level fairly by the time its keys have used (FairShare), so a backlog pushes back only its
 * own keys: another key waits about one turn of each key beside it, at every level. A level is
 * forgotten once it has nothing queued and nothing taken out that is not yet charged.
 */
export class FairQueue<J> {
  private readonly root = new Level<J>();

  constructor(private readonly depth: number) {}

  /** Queues `job` under `path` (one key per level), last, or first when it goes back. */
  push(path: readonly unknown[], job: J, first = false): void {
    let level = this.root;
    level.queued++;
    for (const key of this.checked(path)) {
      let child = level.children.get(key);
      if (!child) level.children.set(key, (child = new Level()));
      level = child;
      level.queued++;
    }
    if (first) level.jobs.unshift(job);
    else level.jobs.push(job);
  }

  /**
   * The next job and its path; it stays owed until `charge(path, ...)`. `eligible` leaves out the
   * first-level keys it refuses (for the judge threads: tenants holding their share of them).
   */
  take(eligible?: (firstKey: unknown) => boolean): { job: J; path: unknown[] } | undefined {
    const path: unknown[] = [];
    const levels: Level<J>[] = [this.root];
    let level = this.root;
    for (let d = 0; d < this.depth; d++) {
      const wanting = [...level.children]
        .filter(([k, c]) => c.queued > 0 && (d > 0 || eligible === undefined || eligible(k)))
        .map(([k]) => k);
      const key = level.share.pick(wanting);
      if (key === undefined) return undefined;
      path.push(key);
      level = level.children.get(key) as Level<J>;
      levels.push(level);
    }
    const job = level.jobs.shift() as J;
    for (const l of levels) {
      l.queued--;
      l.owed++;
    }
    return { job, path };
  }

  /** What the job taken under `path` used: its keys are charged, and done with if idle. */
  charge(path: readonly unknown[], ms: number): void {
    let level = this.root;
    level.owed--;
    for (const key of this.checked(path)) {
      const parent = level;
      const child = parent.children.get(key);
      parent.share.charge(key, ms, (k) => (parent.children.get(k)?.queued ?? 0) > 0);
      if (!child) return;
      child.owed--;
      if (child.queued === 0 && child.owed === 0) parent.children.delete(key);
      level = child;
    }
  }

  /** Removes and returns the queued jobs `keep` refuses. */
  drop(keep: (job: J) => boolean): J[] {
    const dropped: J[] = [];
    const sweep = (level: Level<J>): void => {
      const kept = level.jobs.filter(keep);
      if (kept.length < level.jobs.length) dropped.push(...level.jobs.filter((j) => !kept.includes(j)));
      level.jobs = kept;
      level.queued = kept.length;
      for (const [key, child] of level.children) {
        sweep(child);
        level.queued += child.queued;
        if (child.queued === 0 && child.owed === 0) level.children.delete(key);
      }
    };
    sweep(this.root);
    return dropped;
  }

  /** Jobs queued (not those taken). */
  get size(): number {
    return this.root.queued;
  }

  private checked(path: readonly unknown[]): readonly unknown[] {
    if (path.length !== this.depth) throw new Error(`a path of ${this.depth} keys expected`);
    return path;
  }
}

class Level<J> {
  readonly share = new FairShare<unknown>();
  readonly children = new Map<unknown, Level<J>>();
  jobs: J[] = [];
  /** Jobs queued at or under this level. */
  queued = 0;
  /** Jobs taken from under this level and not yet charged. */
  owed = 0;
}
