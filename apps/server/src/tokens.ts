// Bearer tokens for the server's API: created by an admin command and shown once, stored only as
// their SHA-256 (in the job store's SQLite file), verified by hash; and a token-bucket rate limit
// per token.
import { createHash, randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '@sparsekit/core';
import type Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tokens (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
`;

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const hashOf = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

export class TokenStore {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    db.exec(SCHEMA);
  }

  /** A new token for `name` (shown once: only its hash is kept). A name is used once. */
  create(name: string): string {
    if (!NAME.test(name))
      throw new InvalidArgumentError(
        'name',
        name,
        'must be 1-64 letters, digits, dots, dashes or underscores',
      );
    if (this.db.prepare('SELECT 1 FROM tokens WHERE name = ?').get(name) !== undefined)
      throw new InvalidArgumentError('name', name, 'has a token already: revoke it, or choose another name');
    const token = `sk_${randomBytes(32).toString('base64url')}`;
    this.db
      .prepare('INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)')
      .run(name, hashOf(token), this.now());
    return token;
  }

  /** The name a valid, unrevoked token was created for; undefined for anything else. */
  verify(token: string | undefined): string | undefined {
    if (typeof token !== 'string' || !token.startsWith('sk_') || token.length > 200) return undefined;
    const row = this.db
      .prepare('SELECT name FROM tokens WHERE hash = ? AND revoked_at IS NULL')
      .get(hashOf(token)) as { name: string } | undefined;
    return row?.name;
  }

  /** Revoke a name's token (true if there was one to revoke). */
  revoke(name: string): boolean {
    return (
      this.db
        .prepare('UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL')
        .run(this.now(), name).changes === 1
    );
  }

  /** The names with tokens, and whether each is revoked. */
  list(): { name: string; createdAt: number; revoked: boolean }[] {
    return (
      this.db.prepare('SELECT name, created_at, revoked_at FROM tokens ORDER BY name').all() as {
        name: string;
        created_at: number;
        revoked_at: number | null;
      }[]
    ).map((r) => ({ name: r.name, createdAt: r.created_at, revoked: r.revoked_at !== null }));
  }
}

/** Token buckets per key: `capacity` requests at once, refilled at `perSecond`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(capacity >= 1 && perSecond > 0))
      throw new InvalidArgumentError(
        'rate limit',
        `${capacity}/${perSecond}`,
        'needs capacity >= 1 and a positive rate',
      );
  }

  /** Take one request for `key`: 0 when allowed, else the milliseconds until one is. */
  take(key: string): number {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: t };
    b.tokens = Math.min(this.capacity, b.tokens + ((t - b.at) / 1000) * this.perSecond);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.perSecond) * 1000);
  }
}
