// Package lab holds the Dockerfile of the lab's Go image, embedded so the
// lab builds the image from any working directory.
package lab

import _ "embed"

// Dockerfile is images/lab/Dockerfile.
//
//go:embed Dockerfile
var Dockerfile []byte
