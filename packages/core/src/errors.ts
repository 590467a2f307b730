/**
 * Typed errors. Every error Sparsekit throws on bad input is a `SparsekitError` with a stable,
 * namespaced `code` (`'<package>/<kind>'`: each package owns its codes) and a `hint` (what to do
 * about it); subclasses carry structured fields so callers can react without parsing messages.
 *
 * `instanceof` fails when two copies of a package are installed (each has its own classes), so every
 * class has `isInstance(error)`, which recognises its errors from any copy (the pattern of vercel/ai):
 * `ShapeMismatchError.isInstance(e)`, `SparsekitError.isInstance(e)`.
 */

/** A namespaced error code, `'<package>/<kind>'`, for example `'core/shape-mismatch'`. */
export type ErrorCode = `${string}/${string}`;

/** The marker a class's instances carry, shared by every copy of the package (`Symbol.for`). */
function marker(code: string): symbol {
  return Symbol.for(`sparsekit.error:${code}`);
}

export interface SparsekitErrorOptions {
  cause?: unknown;
  /** What to do about it (each class has a default). */
  hint?: string;
}

export class SparsekitError extends Error {
  /** The code of this class's errors; the base class's errors may carry any code. */
  static readonly code: string = 'sparsekit';
  /** The class's default hint. */
  static readonly hint: string | undefined = undefined;

  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: SparsekitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    let hint = options.hint;
    // Mark the instance with every class of its chain, so isInstance works across package copies.
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      const cls = c as typeof SparsekitError;
      if (!Object.hasOwn(cls, 'code')) continue;
      Object.defineProperty(this, marker(cls.code), { value: true });
      hint ??= cls.hint;
    }
    this.hint = hint;
  }

  /** Whether `error` is an error of this class, from this or any other copy of the package. */
  static isInstance<T extends abstract new (...args: never[]) => SparsekitError>(
    this: T & { readonly code: string },
    error: unknown,
  ): error is InstanceType<T> {
    return (
      typeof error === 'object' &&
      error !== null &&
      // biome-ignore lint/complexity/noThisInStatic: `this` is the class asked (a subclass has its own code)
      (error as Record<symbol, unknown>)[marker(this.code)] === true
    );
  }
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Two shapes that must agree do not. `expected` may hold -1 for "any size". */
export class ShapeMismatchError extends SparsekitError {
  static override readonly code = 'core/shape-mismatch';
  static override readonly hint =
    'a shape does not match what the operation expects: check the tensor named above';
  readonly expected: readonly number[];
  readonly actual: readonly number[];

  constructor(
    expected: readonly number[],
    actual: readonly number[],
    what = 'tensor',
    options?: SparsekitErrorOptions,
  ) {
    super(
      ShapeMismatchError.code,
      `Shape mismatch for ${what}: expected ${shapeText(expected).replaceAll('-1', '*')}, got ${shapeText(actual)}.`,
      options,
    );
    this.expected = [...expected];
    this.actual = [...actual];
  }
}

/** Data that does not satisfy the invariants of its format (a sparse format, a file format). */
export class InvalidFormatError extends SparsekitError {
  static override readonly code = 'core/invalid-format';
  static override readonly hint = 'the data does not fit the format named above';
  readonly format: string;
  readonly reason: string;
  /** Where the first violation was found (for example an index into `indptr`), when there is one. */
  readonly position: number | undefined;
  /** The stored tensor or matrix the data came from, when it came from a file. */
  readonly tensor: string | undefined;

  constructor(
    format: string,
    reason: string,
    position?: number,
    options: SparsekitErrorOptions & { tensor?: string } = {},
  ) {
    super(
      InvalidFormatError.code,
      `Invalid ${format}: ${reason}${position === undefined ? '' : ` (at position ${position})`}.`,
      options,
    );
    this.format = format;
    this.reason = reason;
    this.position = position;
    this.tensor = options.tensor;
  }
}

/** An option or argument outside what the operation accepts. */
export class InvalidArgumentError extends SparsekitError {
  static override readonly code = 'core/invalid-argument';
  static override readonly hint = 'change the value named above and run again';
  readonly argument: string;
  readonly value: unknown;

  constructor(argument: string, value: unknown, expectation: string, options?: SparsekitErrorOptions) {
    super(InvalidArgumentError.code, `Invalid ${argument} = ${describe(value)}: ${expectation}.`, options);
    this.argument = argument;
    this.value = value;
  }
}

export class UnsupportedDTypeError extends SparsekitError {
  static override readonly code = 'core/unsupported-dtype';
  readonly dtype: string;
  readonly supported: readonly string[];

  constructor(dtype: string, supported: readonly string[], where: string) {
    super(
      UnsupportedDTypeError.code,
      `dtype '${dtype}' is not supported by ${where}; use one of ${supported.join(', ')}.`,
      { hint: `convert the data to ${supported.join(' or ')} first` },
    );
    this.dtype = dtype;
    this.supported = [...supported];
  }
}

/** A safetensors file or buffer that breaks the specification. */
export class SafetensorsError extends SparsekitError {
  static override readonly code = 'core/safetensors';
  static override readonly hint =
    'the weights file is damaged or not safetensors: re-download the model or save it again';
  readonly reason: string;
  readonly tensor: string | undefined;
  readonly file: string | undefined;

  constructor(reason: string, details: { tensor?: string; file?: string } = {}) {
    const where = [
      details.file === undefined ? '' : ` in ${details.file}`,
      details.tensor === undefined ? '' : ` (tensor '${details.tensor}')`,
    ].join('');
    super(SafetensorsError.code, `Invalid safetensors data${where}: ${reason}.`);
    this.reason = reason;
    this.tensor = details.tensor;
    this.file = details.file;
  }
}

/** NaN or Inf where finite values are required. */
export class NonFiniteError extends SparsekitError {
  static override readonly code = 'core/non-finite';
  static override readonly hint =
    'the weights or activations hold NaN or Inf: check the checkpoint or the data';
  readonly what: string;
  readonly index: number;
  readonly value: number;

  constructor(what: string, index: number, value: number) {
    super(
      NonFiniteError.code,
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
  static override readonly code = 'core/unsupported-op';
  static override readonly hint = 'choose a backend that implements the operation (see the backend contract)';
  readonly op: string;
  readonly backend: string;

  constructor(op: string, backend: string, hint?: string) {
    super(
      UnsupportedOpError.code,
      `The '${backend}' backend has no '${op}' operation` + (hint === undefined ? '.' : `; ${hint}.`),
      hint === undefined ? {} : { hint },
    );
    this.op = op;
    this.backend = backend;
  }
}

/** A file-system operation failed; `path` names the file, the hint follows the system's reason. */
export class IOError extends SparsekitError {
  static override readonly code = 'core/io';
  readonly path: string;
  /** The system's error code (`errno` name such as 'ENOSPC'), when the cause has one. */
  readonly errno: string | undefined;

  constructor(path: string, message: string, cause?: unknown) {
    const errno = (cause as { code?: unknown } | undefined)?.code;
    const code = typeof errno === 'string' ? errno : undefined;
    super(IOError.code, `${message}: ${path}`, { cause, hint: ioHint(code) });
    this.path = path;
    this.errno = code;
  }
}

/** What to do about a failed file-system call, from its errno name. */
function ioHint(errno: string | undefined): string {
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'the disk (or quota) is full: free some space or write elsewhere';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: check the ownership and mode of the path';
    case 'EROFS':
      return 'the file system is read-only: write elsewhere';
    case 'ELOOP':
      return 'a symbolic link loops: fix or remove it';
    case 'EEXIST':
      return 'something is already there: remove it or choose another path';
    default:
      return 'check that the path exists and is readable';
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
