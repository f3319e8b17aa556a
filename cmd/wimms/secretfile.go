package main

import (
	"fmt"
	"os"
	"strings"
)

// readSecretFile reads the one secret (a token or the gossip key) that a
// server credential file holds. It refuses a file that group or others
// may read, since anyone who reads it can act as the cluster's operator
// or decrypt gossip, and a file with more than one token: a second line
// used to be kept as part of one token no client could send, failing
// every request instead of the start.
//
// With allowReadable (--allow-readable-secret-files, for containers that
// can only read a mounted file its owner made world-readable) a readable
// file is accepted and the returned warning says so.
func readSecretFile(flag, path string, allowReadable bool) (secret, warning string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("--%s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("--%s %s is not a regular file", flag, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if !allowReadable {
			return "", "", fmt.Errorf("--%s %s is readable or writable by group or others (mode %04o): chmod 600 %s", flag, path, perm, path)
		}
		warning = fmt.Sprintf("--%s %s is readable by group or others (mode %04o), accepted because of --allow-readable-secret-files", flag, path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("--%s: %w", flag, err)
	}
	fields := strings.Fields(string(b))
	switch len(fields) {
	case 0:
		return "", "", fmt.Errorf("--%s %s is empty", flag, path)
	case 1:
		return fields[0], warning, nil
	}
	return "", "", fmt.Errorf("--%s %s holds %d words on %d lines; want exactly one token", flag, path, len(fields), nonEmptyLines(string(b)))
}

func nonEmptyLines(s string) int {
	n := 0
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}
