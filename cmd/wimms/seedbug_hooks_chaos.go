//go:build chaos

package main

import "github.com/wimms-dev/wimms/fsm"

func enableDeleteKeepsLoad() error {
	fsm.SetDeleteKeepsLoad(true)
	return nil
}
