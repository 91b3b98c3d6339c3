// Package exim holds the configuration layer of the real Exim image
// (Dockerfile and start script), embedded so the lab builds the image from
// any working directory. lab/stack builds it over a debootstrap'ed Debian.
package exim

import "embed"

// Files is images/exim: the Dockerfile and what it copies.
//
//go:embed Dockerfile smtplab-start.sh
var Files embed.FS
