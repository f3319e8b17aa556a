package httpapi

// allRoutes is every route this server registers: the API contract
// (routes) plus the operator endpoints kept in their own files.
func (s *Server) allRoutes() []route {
	all := s.routes()
	all = append(all, s.dockerflowRoutes()...)
	all = append(all, s.opsRoutes()...)
	return all
}
