// Package bench provides the load generator behind `wimms bench`: it drives
// a workload against any running cluster over the public HTTP API
// (docs/api.md) and reports throughput, latency percentiles and errors.
// See DESIGN.md in this directory.
package bench
