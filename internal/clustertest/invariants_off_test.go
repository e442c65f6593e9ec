//go:build !invariants

package clustertest

// buildTags are the tags the weft binary is built with, as the tests are.
var buildTags []string
