package client

// OldRecordsQuery is GET .../records/old; zero values take the server's
// defaults (grace 7 days, limit 100, offset 0).
type OldRecordsQuery struct {
	GraceMs *int64
	Limit   int
	Offset  int
}
