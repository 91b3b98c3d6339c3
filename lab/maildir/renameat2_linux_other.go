//go:build linux && !amd64 && !arm64

package maildir

// sysRenameat2 0: not looked up for this architecture; moveNew links then
// unlinks.
const sysRenameat2 = 0
