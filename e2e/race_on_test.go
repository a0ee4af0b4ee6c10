//go:build race

package e2e

// raceEnabled tells buildLivegate to build the server with -race when the
// tests themselves run with -race.
const raceEnabled = true
