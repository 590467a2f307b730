// The distribution of one site's activations, for magnitude thresholds: exact while small, a
// TEAL-style histogram (10000 bins, the 1% tails in the two outer bins) once the values outgrow it.
import { InvalidArgumentError, NonFiniteError } from '@sparsekit/core';

export interface HistogramOptions {
  /** Values kept exactly before switching to bins (default 2^20): below it, thresholds are exact. */
  exactLimit?: number;
  /** Bins of the histogram (default 10000, as TEAL's `find_histogram`). */
  bins?: number;
  /** Share of values in each outer (tail) bin when the edges are fixed (default 0.01, as TEAL). */
  tail?: number;
  /**
   * The values are magnitudes (>= 0, e.g. CHESS' |act(gate)| * mean|up|): a binned threshold is
   * icdf(s) rather than TEAL's icdf(0.5 + s / 2) for a zero-mean symmetric distribution.
   */
  nonNegative?: boolean;
}

/** The histogram of a site: edges (bins + 1; the outer bins reach to +-Infinity) and counts. */
export interface HistogramData {
  edges: Float64Array;
  counts: Float64Array;
}

/**
 * Values of one site, streamed in. While there are at most `exactLimit` of them they are kept, and
 * `threshold(s)` is exact: the element of the sorted magnitudes at index floor(s * n). Past that
 * the histogram takes over: its edges are fixed from the values kept so far (the inner bins evenly
 * between their 1% and 99% quantiles, the tails in the outer bins, as TEAL's `find_histogram`), and
 * `threshold(s)` is TEAL's t = icdf(0.5 + s / 2), interpolated within its bin, which assumes a
 * zero-mean symmetric distribution as TEAL does.
 */
export class SiteHistogram {
  readonly exactLimit: number;
  readonly bins: number;
  readonly tail: number;
  readonly nonNegative: boolean;
  private exact: Float32Array[] = [];
  private exactCount = 0;
  private hist: HistogramData | undefined;
  private total = 0;
  /** The kept values' magnitudes, sorted (made on the first exact threshold after an add). */
  private sorted: Float32Array | undefined;

  constructor(options: HistogramOptions = {}) {
    this.exactLimit = options.exactLimit ?? 1 << 20;
    this.bins = options.bins ?? 10_000;
    this.tail = options.tail ?? 0.01;
    this.nonNegative = options.nonNegative ?? false;
    if (!Number.isInteger(this.exactLimit) || this.exactLimit < 1)
      throw new InvalidArgumentError('exactLimit', this.exactLimit, 'must be a positive integer');
    if (!Number.isInteger(this.bins) || this.bins < 3)
      throw new InvalidArgumentError('bins', this.bins, 'must be an integer >= 3');
    if (!(this.tail > 0 && this.tail < 0.5))
      throw new InvalidArgumentError('tail', this.tail, 'must be in (0, 0.5)');
  }

  /** How many values it has seen. */
  get count(): number {
    return this.total;
  }

  /** Whether thresholds are exact quantiles (no histogram yet). */
  get isExact(): boolean {
    return this.hist === undefined;
  }

  add(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw new NonFiniteError('activations', i, values[i]!);
      if (this.nonNegative && values[i]! < 0)
        throw new InvalidArgumentError('magnitude', values[i], 'must be >= 0 in a non-negative histogram');
    }
    this.total += values.length;
    this.sorted = undefined;
    if (this.hist === undefined) {
      this.exact.push(Float32Array.from(values));
      this.exactCount += values.length;
      if (this.exactCount <= this.exactLimit) return;
      this.hist = this.fixEdges();
      for (const chunk of this.exact) this.bin(chunk, this.hist);
      this.exact = [];
      this.exactCount = 0;
      return;
    }
    this.bin(values, this.hist);
  }

  /**
   * The magnitude threshold t at which a share `sparsity` of the values has |x| <= t (0 gives 0:
   * only exact zeros are dropped; masks keep |x| > t).
   */
  threshold(sparsity: number): number {
    if (!(sparsity >= 0 && sparsity < 1))
      throw new InvalidArgumentError('sparsity', sparsity, 'must be in [0, 1)');
    if (this.total === 0)
      throw new InvalidArgumentError('histogram', 0, 'has seen no values: calibrate first');
    if (sparsity === 0) return 0;
    if (this.hist === undefined) {
      if (this.sorted === undefined) {
        const magnitudes = new Float32Array(this.exactCount);
        let o = 0;
        for (const chunk of this.exact)
          for (let i = 0; i < chunk.length; i++) magnitudes[o++] = Math.abs(chunk[i]!);
        this.sorted = magnitudes.sort();
      }
      return this.sorted[Math.floor(sparsity * this.sorted.length)]!;
    }
    return Math.max(0, this.icdf(this.nonNegative ? sparsity : 0.5 + sparsity / 2));
  }

  /** The histogram (built from the exact values when there is none yet). */
  histogram(): HistogramData {
    if (this.hist !== undefined) return { edges: this.hist.edges.slice(), counts: this.hist.counts.slice() };
    if (this.exactCount === 0) throw new InvalidArgumentError('histogram', 0, 'has seen no values');
    const h = this.fixEdges();
    for (const chunk of this.exact) this.bin(chunk, h);
    return h;
  }

  /** The values kept exactly (a copy), while there is no histogram yet. */
  exactValues(): Float32Array | undefined {
    if (this.hist !== undefined) return undefined;
    const out = new Float32Array(this.exactCount);
    let o = 0;
    for (const chunk of this.exact) {
      out.set(chunk, o);
      o += chunk.length;
    }
    return out;
  }

  /** A histogram restored from `histogram()` (thresholds from its bins). */
  static fromHistogram(data: HistogramData, options: HistogramOptions = {}): SiteHistogram {
    const h = new SiteHistogram({ ...options, bins: data.counts.length });
    if (data.edges.length !== data.counts.length + 1)
      throw new InvalidArgumentError('histogram', data.edges.length, `needs ${data.counts.length + 1} edges`);
    h.hist = { edges: Float64Array.from(data.edges), counts: Float64Array.from(data.counts) };
    h.total = data.counts.reduce((s, c) => s + c, 0);
    return h;
  }

  /** Edges from the kept values: inner bins evenly between the tail quantiles; outer bins to +-Inf. */
  private fixEdges(): HistogramData {
    const all = new Float32Array(this.exactCount);
    let o = 0;
    for (const chunk of this.exact) {
      all.set(chunk, o);
      o += chunk.length;
    }
    all.sort();
    const lo = all[Math.floor(this.tail * (all.length - 1))]!;
    let hi = all[Math.ceil((1 - this.tail) * (all.length - 1))]!;
    if (hi <= lo) hi = lo + Math.max(1e-12, Math.abs(lo) * 1e-6);
    const inner = this.bins - 2;
    const edges = new Float64Array(this.bins + 1);
    edges[0] = Number.NEGATIVE_INFINITY;
    edges[this.bins] = Number.POSITIVE_INFINITY;
    for (let i = 0; i <= inner; i++) edges[i + 1] = lo + ((hi - lo) * i) / inner;
    return { edges, counts: new Float64Array(this.bins) };
  }

  private bin(values: ArrayLike<number>, hist: HistogramData): void {
    const { edges, counts } = hist;
    const lo = edges[1]!;
    const hi = edges[this.bins - 1]!;
    const inner = this.bins - 2;
    const scale = inner / (hi - lo);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < lo) counts[0]!++;
      else if (v >= hi) counts[this.bins - 1]!++;
      else counts[1 + Math.min(inner - 1, Math.floor((v - lo) * scale))]!++;
    }
  }

  /** The value below which a share `p` of the mass lies, linear within a bin (outer bins: their inner edge). */
  private icdf(p: number): number {
    const { edges, counts } = this.hist!;
    const target = p * this.total;
    let seen = 0;
    for (let b = 0; b < counts.length; b++) {
      const c = counts[b]!;
      if (seen + c >= target && c > 0) {
        if (b === 0) return edges[1]!;
        if (b === counts.length - 1) return edges[b]!;
        return edges[b]! + ((target - seen) / c) * (edges[b + 1]! - edges[b]!);
      }
      seen += c;
    }
    return edges[counts.length - 1]!;
  }
}
