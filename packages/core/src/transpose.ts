/** Values of a row-major [rows, cols] matrix as row-major [cols, rows] (f32). */
export function transposeValues(values: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = values[r * cols + c]!;
  return t;
}
