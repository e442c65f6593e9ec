//go:build !invariants

package namespace

// invariantsOn: see invariants_on.go.
const invariantsOn = false
