package stack

import "testing"

// A file goes into the deepest volume it is under, never one that only
// shares a prefix of its name.
func TestVolumeOf(t *testing.T) {
	vols := []string{"/etc", "/etc/smtplab", "/var/mail"}
	for file, want := range map[string]string{
		"/etc/smtplab/role.json": "/etc/smtplab",
		"/etc/postfix/main.cf":   "/etc",
		"/var/mail/x":            "/var/mail",
		"/var/mailx/y":           "",
		"/etc":                   "",
		"/usr/bin/x":             "",
	} {
		if got := volumeOf(vols, file); got != want {
			t.Errorf("volumeOf(%q) = %q, want %q", file, got, want)
		}
	}
}
