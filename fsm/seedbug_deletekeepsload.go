//go:build !chaos

package fsm

// deleteKeepsLoad is the seeded bug "delete-keeps-load", which only a chaos
// build can switch on (seedbug_deletekeepsload_chaos.go). Here it is a
// constant, so record deletion compiles to the correct code alone.
const deleteKeepsLoad = false
