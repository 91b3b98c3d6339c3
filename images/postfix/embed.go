// Package postfix holds the configuration layer of the real Postfix image
// (Dockerfile and start script), embedded so the lab builds the image from
// any working directory. lab/stack builds it over a debootstrap'ed Debian.
package postfix

import "embed"

// Files is images/postfix: the Dockerfile and what it copies.
//
//go:embed Dockerfile smtplab-start.sh
var Files embed.FS
