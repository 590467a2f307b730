import { describe, expect, it } from 'vitest';

const loaded = await Promise.all([import('./store.js'), import('./tokens.js')]).catch(
  (error: Error) => error,
);
if (loaded instanceof Error && process.env.SPARSEKIT_REQUIRE_SQLITE === '1') throw loaded;
const [{ JobStore }, { RateLimiter, TokenStore }] =
  loaded instanceof Error
    ? ([{}, {}] as unknown as [typeof import('./store.js'), typeof import('./tokens.js')])
    : loaded;

describe.skipIf(loaded instanceof Error)('API tokens', () => {
  it('creates a token once per name, keeps only its hash, verifies and revokes it', () => {
    const store = JobStore.open(':memory:');
    const tokens = new TokenStore(store.database, () => 5);
    const token = tokens.create('alice');
    expect(token).toMatch(/^sk_[A-Za-z0-9_-]{43}$/);
    expect(tokens.verify(token)).toBe('alice');
    expect(tokens.verify(`${token}x`)).toBeUndefined();
    expect(tokens.verify(undefined)).toBeUndefined();
    expect(tokens.verify('Bearer nonsense')).toBeUndefined();
    // Only the hash is stored.
    const rows = store.database.prepare('SELECT * FROM tokens').all() as Record<string, unknown>[];
    expect(JSON.stringify(rows)).not.toContain(token.slice(3));
    expect(() => tokens.create('alice')).toThrow(/has a token already/);
    expect(() => tokens.create('no spaces')).toThrow(/letters, digits/);
    expect(tokens.revoke('alice')).toBe(true);
    expect(tokens.verify(token)).toBeUndefined();
    expect(tokens.revoke('alice')).toBe(false);
    expect(tokens.list()).toEqual([{ name: 'alice', createdAt: 5, revoked: true }]);
    store.close();
  });

  it('rate-limits each token with its own bucket', () => {
    let t = 0;
    const limit = new RateLimiter(3, 2, () => t);
    expect([limit.take('a'), limit.take('a'), limit.take('a')]).toEqual([0, 0, 0]);
    expect(limit.take('a')).toBe(500); // one more in 1 / 2 s
    expect(limit.take('b')).toBe(0); // another token's bucket is full
    t = 500;
    expect(limit.take('a')).toBe(0);
    expect(limit.take('a')).toBe(500);
    expect(() => new RateLimiter(0, 1)).toThrow(/capacity/);
  });
});
