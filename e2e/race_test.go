//go:build race

package e2e

// raceEnabled makes TestMain build the binary with -race too.
const raceEnabled = true
