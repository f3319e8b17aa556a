//go:build !chaos

package main

import "errors"

func enableDeleteKeepsLoad() error {
	return errors.New("--seed-bug delete-keeps-load needs a chaos build (go build -tags chaos ./cmd/wimms)")
}
