package maildir

import "testing"

// forceLink has moveNew link then unlink, as where the system lacks
// RENAME_NOREPLACE, until t ends.
func forceLink(t *testing.T) {
	was := noReplaceMissing.Load()
	noReplaceMissing.Store(true)
	t.Cleanup(func() { noReplaceMissing.Store(was) })
}
