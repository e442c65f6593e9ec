//go:build invariants

package namespace

// invariantsOn makes every applied command run the full Check (O(state)),
// panicking on a broken invariant. `make test` builds with the tag.
const invariantsOn = true
