/**
 * Typed errors. Every error Sparsekit throws on bad input is a `SparsekitError` with a stable `code`;
 * subclasses carry structured fields so callers can react without parsing messages.
 */

export type SparsekitErrorCode =
  | 'SHAPE_MISMATCH'
  | 'INVALID_FORMAT'
  | 'INVALID_ARGUMENT'
  | 'UNSUPPORTED_DTYPE'
  | 'SAFETENSORS'
  | 'NON_FINITE'
  | 'UNSUPPORTED_OP'
  | 'IO'
  | 'UNSUPPORTED_MODEL'
  | 'MISSING_TENSOR'
  | 'TOKENIZER_TIMEOUT'
  | 'NO_GPU_ADAPTER';

export class SparsekitError extends Error {
  readonly code: SparsekitErrorCode;

  constructor(code: SparsekitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Two shapes that must agree do not. `expected` may hold -1 for "any size". */
export class ShapeMismatchError extends SparsekitError {
  readonly expected: readonly number[];
  readonly actual: readonly number[];

  constructor(expected: readonly number[], actual: readonly number[], what = 'tensor') {
    super(
      'SHAPE_MISMATCH',
      `Shape mismatch for ${what}: expected ${shapeText(expected).replaceAll('-1', '*')}, got ${shapeText(actual)}.`,
    );
    this.expected = [...expected];
    this.actual = [...actual];
  }
}

/** Data that does not satisfy the invariants of its format (a sparse format, a file format). */
export class InvalidFormatError extends SparsekitError {
  readonly format: string;
  readonly reason: string;
  /** Where the first violation was found (for example an index into `indptr`), when there is one. */
  readonly position: number | undefined;

  constructor(format: string, reason: string, position?: number) {
    super(
      'INVALID_FORMAT',
      `Invalid ${format}: ${reason}${position === undefined ? '' : ` (at position ${position})`}.`,
    );
    this.format = format;
    this.reason = reason;
    this.position = position;
  }
}

/** An option or argument outside what the operation accepts. */
export class InvalidArgumentError extends SparsekitError {
  readonly argument: string;
  readonly value: unknown;

  constructor(argument: string, value: unknown, expectation: string) {
    super('INVALID_ARGUMENT', `Invalid ${argument} = ${describe(value)}: ${expectation}.`);
    this.argument = argument;
    this.value = value;
  }
}

export class UnsupportedDTypeError extends SparsekitError {
  readonly dtype: string;
  readonly supported: readonly string[];

  constructor(dtype: string, supported: readonly string[], where: string) {
    super(
      'UNSUPPORTED_DTYPE',
      `dtype '${dtype}' is not supported by ${where}; use one of ${supported.join(', ')}.`,
    );
    this.dtype = dtype;
    this.supported = [...supported];
  }
}

/** A safetensors file or buffer that breaks the specification. */
export class SafetensorsError extends SparsekitError {
  readonly reason: string;
  readonly tensor: string | undefined;
  readonly file: string | undefined;

  constructor(reason: string, details: { tensor?: string; file?: string } = {}) {
    const where = [
      details.file === undefined ? '' : ` in ${details.file}`,
      details.tensor === undefined ? '' : ` (tensor '${details.tensor}')`,
    ].join('');
    super('SAFETENSORS', `Invalid safetensors data${where}: ${reason}.`);
    this.reason = reason;
    this.tensor = details.tensor;
    this.file = details.file;
  }
}

/** NaN or Inf where finite values are required. */
export class NonFiniteError extends SparsekitError {
  readonly what: string;
  readonly index: number;
  readonly value: number;

  constructor(what: string, index: number, value: number) {
    super(
      'NON_FINITE',
      `${what} holds a non-finite value (${value}) at flat index ${index}; clean or clip the data first.`,
    );
    this.what = what;
    this.index = index;
    this.value = value;
  }
}

/**
 * A backend does not implement an operation (`op`, e.g. 'sddmm') that was asked of it. The message
 * names the backend and, where one exists, a backend that has the op.
 */
export class UnsupportedOpError extends SparsekitError {
  readonly op: string;
  readonly backend: string;

  constructor(op: string, backend: string, hint?: string) {
    super(
      'UNSUPPORTED_OP',
      `The '${backend}' backend has no '${op}' operation` + (hint === undefined ? '.' : `; ${hint}.`),
    );
    this.op = op;
    this.backend = backend;
  }
}

/** A file-system operation failed; `path` names the file. */
export class IOError extends SparsekitError {
  readonly path: string;

  constructor(path: string, message: string, cause?: unknown) {
    super('IO', `${message}: ${path}`, { cause });
    this.path = path;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value === undefined || value === null) return String(value);
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
