// Package smtplab is what the lab carries inside its own executable: its
// source, to build the role image from when it runs outside the source
// tree and is not itself a static Linux executable (lab/stack/image.go,
// after `go install`), and the shipped scenarios, for `lab run NAME` in
// any folder (lab/cli).
package smtplab

import "embed"

// Source is the module's Go source, the images' files and the scenarios: what
// `go build ./cmd/lab` needs (its dependencies come from the module cache
// or proxy, as go.sum pins them).
//
//go:embed go.mod go.sum source.go cmd images lab scenarios
var Source embed.FS

// Scenarios are the shipped scenarios (scenarios/*.yaml).
//
//go:embed scenarios/*.yaml
var Scenarios embed.FS
