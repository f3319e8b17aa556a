// Package defaults fills unset numeric settings of configuration structs,
// so that each package states its defaults as one list rather than one if
// statement per field.
package defaults

// Integer is any integer type, time.Duration included.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// UnlessPositive sets *v to def unless *v is already positive: zero means
// "not set", and a negative limit, timeout or size means nothing useful
// either, so both take the default.
func UnlessPositive[T Integer](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
