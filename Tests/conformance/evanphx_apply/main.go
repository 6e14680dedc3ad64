// Command evanphx_apply applies an RFC 6902 JSON Patch to a JSON document with evanphx/json-patch's v4
// API, the one the Kubernetes API server uses for mutating webhook patches (DecodePatch, then Apply).
//
// Usage: evanphx_apply DOCUMENT.json PATCH.json
//
// Prints the patched document on stdout, or the error on stderr and exits 1 (2 on a usage error).
// Built in GOPATH mode from Debian's golang-github-evanphx-json-patch-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o evanphx_apply Tests/conformance/evanphx_apply/main.go
package main

import (
	"fmt"
	"os"

	jsonpatch "github.com/evanphx/json-patch"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: evanphx_apply DOCUMENT.json PATCH.json")
		os.Exit(2)
	}
	doc, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("cannot read document", err)
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("cannot read patch", err)
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		fail("cannot decode patch", err)
	}
	patched, err := patch.Apply(doc)
	if err != nil {
		fail("patch does not apply", err)
	}
	os.Stdout.Write(patched)
	os.Stdout.WriteString("\n")
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "evanphx_apply: %s: %v\n", what, err)
	os.Exit(1)
}
