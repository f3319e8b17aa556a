package httpapi

// allRoutes is every route this server registers: the API contract
// (routes), the token server's route, and the operator endpoints kept in
// their own files.
func (s *Server) allRoutes() []route {
	all := append(append(s.routes(), s.tokenRoutes()...), s.webhookRoutes()...)
	all = append(all, s.dockerflowRoutes()...)
	all = append(all, s.opsRoutes()...)
	all = append(all, s.activityRoutes()...)
	all = append(all, s.lifecycleRoutes()...)
	return all
}
