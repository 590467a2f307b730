// The models a server offers: folders registered under the allow-listed root, or uploaded as tar
// streams into the data folder; kept by name in the job store's SQLite file.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, SparsekitError } from '@sparsekit/core';
import type Database from 'better-sqlite3';
import { type ArchiveLimits, ArchiveRefusedError, extractTar } from './archive.js';
import { PathRefusedError, resolveInside } from './paths.js';

export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ModelEntry {
  name: string;
  path: string;
  source: 'registered' | 'uploaded';
  createdAt: number;
}

export class ModelNotFoundError extends SparsekitError {
  static override readonly code = 'server/model-not-found';
  static override readonly hint = 'list the models (GET /models), or register or upload one';
  readonly modelName: string;

  constructor(name: string) {
    super(ModelNotFoundError.code, `No model named ${JSON.stringify(name)}.`);
    this.modelName = name;
  }
}

export class ModelExistsError extends SparsekitError {
  static override readonly code = 'server/model-exists';
  static override readonly hint = 'choose another name (or upload with replace=true for an uploaded model)';

  constructor(readonly modelName: string) {
    super(ModelExistsError.code, `A model named ${JSON.stringify(modelName)} exists.`);
  }
}

export class ModelRegistry {
  constructor(
    private readonly db: Database.Database,
    /** Folders clients may register live below this root. */
    private readonly root: string,
    /** Uploads go to DIR/<name>. */
    private readonly uploadsDir: string,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS models (
      name TEXT PRIMARY KEY, path TEXT NOT NULL, source TEXT NOT NULL, created_at INTEGER NOT NULL)`);
  }

  list(): ModelEntry[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY name').all() as Row[]).map(fromRow);
  }

  get(name: string): ModelEntry {
    const row = this.db.prepare('SELECT * FROM models WHERE name = ?').get(name) as Row | undefined;
    if (row === undefined) throw new ModelNotFoundError(name);
    return fromRow(row);
  }

  /** Offer the folder `path` (inside the root, holding a config.json) as `name`. */
  register(name: string, path: string): ModelEntry {
    checkName(name);
    const dir = resolveInside(this.root, path);
    if (!statSync(dir).isDirectory() || !existsSync(join(dir, 'config.json')))
      throw new PathRefusedError(path, 'it is not a model folder (no config.json)');
    const t = Date.now();
    const r = this.db
      .prepare(
        `INSERT INTO models (name, path, source, created_at) VALUES (?, ?, 'registered', ?) ON CONFLICT DO NOTHING`,
      )
      .run(name, dir, t);
    if (r.changes === 0) throw new ModelExistsError(name);
    return this.get(name);
  }

  /** Unpack an uploaded tar of a model folder as `name` (atomically; a refused archive leaves nothing). */
  async upload(
    name: string,
    source: Readable,
    limits: ArchiveLimits,
    options: { replace?: boolean } = {},
  ): Promise<ModelEntry & { files: number; bytes: number }> {
    checkName(name);
    const known = this.db.prepare('SELECT * FROM models WHERE name = ?').get(name) as Row | undefined;
    if (known !== undefined && (known.source !== 'uploaded' || options.replace !== true))
      throw new ModelExistsError(name);
    const dir = join(this.uploadsDir, name);
    const counts = await extractTar(source, dir, limits, {
      replace: options.replace === true,
      verify: (tmp) => {
        if (!existsSync(join(tmp, 'config.json')))
          throw new ArchiveRefusedError(
            'not-a-model',
            'it holds no config.json at its top (or in its one top folder)',
          );
      },
    });
    this.db
      .prepare(
        `INSERT INTO models (name, path, source, created_at) VALUES (?, ?, 'uploaded', ?)
         ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at`,
      )
      .run(name, dir, Date.now());
    return { ...this.get(name), ...counts };
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !MODEL_NAME.test(name))
    throw new InvalidArgumentError('name', name, `must match ${MODEL_NAME.source}`);
}

interface Row {
  name: string;
  path: string;
  source: 'registered' | 'uploaded';
  created_at: number;
}

function fromRow(r: Row): ModelEntry {
  return { name: r.name, path: r.path, source: r.source, createdAt: r.created_at };
}
