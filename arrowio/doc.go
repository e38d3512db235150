// Package arrowio converts between Arrow record batches and dense float32
// matrices (gorgonia.org/tensor). It knows nothing of Spark or the worker
// pipe: package pipe reads Arrow IPC streams and hands their batches here.
//
// Columns named by the caller become the columns of a row-major matrix: a
// vector column (list, large_list or fixed_size_list of numbers; Spark ML
// vectors arrive from the shim as list<float64>) contributes its width, a
// scalar numeric column contributes one. Labels go through the same functions.
// Nulls, rows of another width, unsupported types and (by default) NaN or
// ±Inf values are errors that name the column and the absolute row.
//
// Matrix returns a *tensor.Dense; a Converter appends the batches of a stream
// into a caller's buffer, reusing it, and remembers widths and row numbers
// across batches. FromMatrix and FromDense go the other way, building a
// list<float64> column from a float32 matrix.
package arrowio
