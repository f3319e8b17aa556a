// Package client provides a small typed Go client of the wimms HTTP API
// (docs/api.md).
//
// It never retries. A write whose call returns an error that is not an
// *APIError (connection refused, reset, timeout) may or may not have been
// applied; so may a 504 unknown-outcome. Repeat such a write with the same
// CallOptions.IdempotencyKey to get its first answer instead of acting twice.
package client
