package main

import "errors"

// exitError carries a process exit code out of a cobra RunE (jepsen: 0
// valid, 1 invalid, 2 could not run; health: 1 unhealthy).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func asExit(err error, target *exitError) bool { return errors.As(err, target) }
