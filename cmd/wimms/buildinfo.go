package main

import "github.com/wimms-dev/wimms/httpapi"

// Set at build time with -ldflags "-X main.commit=... -X main.build=..."
// (the Makefile does; the image copies that binary). Empty values get
// defaults in httpapi: /__version__ always answers every field.
var (
	commit string
	build  string
	source string
)

func buildVersion() httpapi.VersionInfo {
	return httpapi.VersionInfo{Source: source, Version: version, Commit: commit, Build: build}
}
