// Package loadtest holds measurements of the whole proxy that are too slow
// or too heavy for every test run: a serving harness with pprof for
// profiling under an external load generator, and the idle-connection
// memory test. Each is a test that skips unless its environment variable
// is set; scripts/idle-conns.sh and docs/performance.md show how to run
// them.
package loadtest
