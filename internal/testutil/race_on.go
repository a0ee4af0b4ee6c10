//go:build race

package testutil

// RaceEnabled tells whether the tests run with the race detector.
const RaceEnabled = true
