package fsm

// EachRecord calls fn with every stored record: services by id, users by
// email, records by uid (the order is deterministic). It stops when fn
// returns false. Export (cmd/internal/mysqlimport) walks a restored backup
// with it.
func (v *View) EachRecord(fn func(Record) bool) {
	for _, sv := range v.st.servicesByID() {
		more := true
		sv.users.Ascend(func(ue userEntry) bool {
			for i := range ue.u.recs {
				if !fn(v.st.recordView(sv, ue.u, &ue.u.recs[i])) {
					more = false
					return false
				}
			}
			return true
		})
		if !more {
			return
		}
	}
}
