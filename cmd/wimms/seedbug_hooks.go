package main

// seedBugHooks are the seeded bugs switched on by a hook that exists only
// in a chaos build (go build -tags chaos), rather than by an option.
var seedBugHooks = map[string]func() error{
	"delete-keeps-load": enableDeleteKeepsLoad,
}
