// Package domain matches mail domains against the patterns Courier's
// control files use: "example.com" is that domain only, ".example.com" any
// name below it (courier/courier/doc/makesmtpaccess.sgml, esmtproutes in
// courier/courier/module.esmtp/courieresmtp.sgml). The receiver's local
// domains, the sender's routes and the scenario's checks all read them so.
package domain

import "strings"

// Matches reports whether host is covered by pattern, ignoring case and a
// trailing dot on host.
func Matches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(strings.TrimSuffix(host, "."))
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(host, pattern) && len(host) > len(pattern)
	}
	return host == pattern
}
