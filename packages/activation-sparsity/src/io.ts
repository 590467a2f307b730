// A calibration and its thresholds on disk: computed once, loaded back (safetensors + JSON).
import { readFile } from 'node:fs/promises';
import { InvalidFormatError, IOError, strictJsonIssue, Tensor } from '@sparsekit/core';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '@sparsekit/core/node';
import {
  ActivationCalibration,
  binsMagnitudes,
  CALIBRATION_KINDS,
  type CalibrationKind,
} from './calibrate.js';
import { SiteHistogram } from './histogram.js';
import { type ActivationSite, ALL_ACTIVATION_SITES, checkSites, siteKey } from './sites.js';
import { THRESHOLD_METHODS, type Thresholds } from './thresholds.js';

const FORMAT = 'sparsekit.activation-calibration';

/**
 * Save a calibration as safetensors: per (block, site) its histogram (`B/site.edges`, `.counts`, f64)
 * and, while it is still exact, its values (`.values`, f32); the sites, block count and token count
 * in the metadata.
 */
export async function saveCalibration(path: string, calibration: ActivationCalibration): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  for (const [key, h] of calibration.histograms) {
    if (h.count === 0) continue;
    const { edges, counts } = h.histogram();
    // Infinite outer edges are stored as the largest finite doubles (safetensors holds any f64, but JSON readers do not).
    tensors[`${key}.edges`] = new Tensor(
      'f64',
      [edges.length],
      edges.map((e) => Math.max(-Number.MAX_VALUE, Math.min(Number.MAX_VALUE, e))),
    );
    tensors[`${key}.counts`] = new Tensor('f64', [counts.length], counts);
    const values = h.exactValues();
    if (values !== undefined) tensors[`${key}.values`] = new Tensor('f32', [values.length], values);
  }
  for (const [key, scale] of calibration.channelScales)
    tensors[`${key}.scale`] = new Tensor('f32', [scale.length], scale);
  await writeSafetensors(path, tensors, {
    format: FORMAT,
    version: '1',
    kind: calibration.kind,
    sites: JSON.stringify(calibration.sites),
    numBlocks: String(calibration.numBlocks),
    tokens: String(calibration.tokens),
  });
}

/** Load a calibration written by `saveCalibration`. */
export async function loadCalibration(path: string): Promise<ActivationCalibration> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== FORMAT)
    throw new InvalidFormatError(
      'activation calibration',
      `${path} is not one (metadata format ${JSON.stringify(metadata.format)})`,
    );
  let sites: readonly ActivationSite[];
  try {
    sites = checkSites(JSON.parse(metadata.sites ?? 'null') as string[]);
  } catch {
    throw new InvalidFormatError(
      'activation calibration',
      `${path}: metadata 'sites' must list sites of ${ALL_ACTIVATION_SITES.join(', ')}`,
    );
  }
  const kind = (metadata.kind ?? 'magnitude') as CalibrationKind;
  if (!CALIBRATION_KINDS.includes(kind))
    throw new InvalidFormatError(
      'activation calibration',
      `${path}: metadata 'kind' must be one of ${CALIBRATION_KINDS.join(', ')}`,
    );
  const nonNegativeAt = (site: ActivationSite) =>
    kind === 'chess' || (kind === 'magnitude' && binsMagnitudes(site));
  const numBlocks = Number(metadata.numBlocks);
  const tokens = Number(metadata.tokens);
  if (!Number.isInteger(numBlocks) || numBlocks < 0 || !Number.isInteger(tokens) || tokens < 0)
    throw new InvalidFormatError(
      'activation calibration',
      `${path}: numBlocks and tokens must be non-negative integers`,
    );
  const histograms = new Map<string, SiteHistogram>();
  const scales = new Map<string, Float32Array>();
  for (let b = 0; b < numBlocks; b++) {
    for (const site of sites) {
      const key = siteKey(b, site);
      const nonNegative = nonNegativeAt(site);
      const scale = tensors[`${key}.scale`];
      if (scale !== undefined) {
        if (scale.dtype !== 'f32' || scale.shape.length !== 1)
          throw new InvalidFormatError(
            'activation calibration',
            `${path}: ${key}.scale must be an f32 vector`,
          );
        scales.set(key, Float32Array.from(scale.data as Float32Array));
      } else if (kind === 'chess')
        throw new InvalidFormatError(
          'activation calibration',
          `${path}: ${key}.scale is missing (CHESS' mean |up|)`,
        );
      const values = tensors[`${key}.values`];
      const edges = tensors[`${key}.edges`];
      const counts = tensors[`${key}.counts`];
      if (values !== undefined) {
        const h = new SiteHistogram({ exactLimit: Math.max(1, values.size), nonNegative });
        h.add(values.data as Float32Array);
        histograms.set(key, h);
      } else if (edges !== undefined && counts !== undefined) {
        const e = Float64Array.from(edges.data as Float64Array);
        e[0] = Number.NEGATIVE_INFINITY;
        e[e.length - 1] = Number.POSITIVE_INFINITY;
        histograms.set(
          key,
          SiteHistogram.fromHistogram(
            { edges: e, counts: Float64Array.from(counts.data as Float64Array) },
            { nonNegative },
          ),
        );
      } else histograms.set(key, new SiteHistogram({ nonNegative }));
    }
  }
  return new ActivationCalibration(sites, numBlocks, histograms, tokens, kind, scales);
}

/** Save thresholds as JSON (atomically). */
export async function saveThresholds(path: string, thresholds: Thresholds): Promise<void> {
  await writeFileAtomic(path, (f) =>
    f.writeFile(
      `${JSON.stringify({ format: 'sparsekit.activation-thresholds', version: 1, ...thresholds }, null, 2)}\n`,
      'utf8',
    ),
  );
}

/** Load thresholds written by `saveThresholds`, checking every entry. */
export async function loadThresholds(path: string): Promise<Thresholds> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new IOError(path, 'Could not read the thresholds file', error);
  }
  const bad = (reason: string): never => {
    throw new InvalidFormatError('activation thresholds', `${path}: ${reason}`);
  };
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  const issue = strictJsonIssue(text);
  if (issue !== undefined) bad(issue);
  if (value?.format !== 'sparsekit.activation-thresholds') bad('not a thresholds file (format field)');
  if (!(THRESHOLD_METHODS as readonly unknown[]).includes(value.method))
    bad(`unknown method ${JSON.stringify(value.method)}`);
  if (!Array.isArray(value.entries)) bad('entries must be a list');
  for (const [i, e] of (value.entries as Record<string, unknown>[]).entries()) {
    if (!Number.isInteger(e?.block) || (e.block as number) < 0)
      bad(`entries[${i}].block must be a non-negative integer`);
    if (!(ALL_ACTIVATION_SITES as readonly unknown[]).includes(e.site))
      bad(`entries[${i}].site must be one of ${ALL_ACTIVATION_SITES.join(', ')}`);
    if (!(typeof e.threshold === 'number' && e.threshold >= 0 && Number.isFinite(e.threshold)))
      bad(`entries[${i}].threshold must be a finite number >= 0`);
    if (!(typeof e.sparsity === 'number' && e.sparsity >= 0 && e.sparsity < 1))
      bad(`entries[${i}].sparsity must be in [0, 1)`);
    if (e.rule !== undefined && e.rule !== 'top-k' && e.rule !== 'delta')
      bad(`entries[${i}].rule must be 'top-k' or 'delta' when given`);
    if (
      e.channels !== undefined &&
      !(
        Array.isArray(e.channels) &&
        e.channels.every((t) => typeof t === 'number' && t >= 0 && Number.isFinite(t))
      )
    )
      bad(`entries[${i}].channels must be a list of finite numbers >= 0`);
  }
  return {
    method: value.method as Thresholds['method'],
    sparsity: Number(value.sparsity),
    entries: value.entries as Thresholds['entries'],
  };
}
