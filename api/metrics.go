package api

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves the appliance's registry, with the token cache's
// counters added when tokens are checked by Keystone.
func (s *Server) metricsHandler() http.Handler {
	reg := s.a.Metrics()
	if k, ok := s.auth.(*Keystone); ok {
		for _, c := range k.collectors() {
			// A second server over the same appliance finds them there.
			if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				s.log.Error("register metrics", "err", err)
			}
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
