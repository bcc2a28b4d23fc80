package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/forward"
)

func forwardTimeouts(t config.Timeouts) forward.Timeouts {
	return forward.Timeouts{Connect: t.Connect.D(), ResponseHeader: t.ResponseHeader.D(), IdleConnection: t.IdleConnection.D()}
}

func newTransport(t forward.Timeouts) *http.Transport { return forward.NewTransport(t) }

// adminHandler serves the admin endpoints.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready() {
			http.Error(w, "not ready: an upstream has no healthy server\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/upstreams", s.apiUpstreams)
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			http.Error(w, err.Error()+"\n", http.StatusBadRequest)
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	return mux
}

func (s *Server) ready() bool {
	if s.draining.Load() {
		return false
	}
	for _, cu := range s.rt.Load().upstreams {
		if len(cu.pool.Available()) == 0 {
			return false
		}
	}
	return true
}

type apiServer struct {
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Weight   int       `json:"weight"`
	Backup   bool      `json:"backup"`
	Healthy  bool      `json:"healthy"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	InFlight int64     `json:"in_flight"`
	Requests uint64    `json:"requests"`
}

type apiUpstream struct {
	Name     string      `json:"name"`
	Strategy string      `json:"strategy"`
	Servers  []apiServer `json:"servers"`
}

func (s *Server) apiUpstreams(w http.ResponseWriter, r *http.Request) {
	rt := s.rt.Load()
	out := make([]apiUpstream, 0, len(rt.order))
	for _, name := range rt.order {
		cu := rt.upstreams[name]
		au := apiUpstream{Name: name, Strategy: cu.cfg.LoadBalancing.Strategy}
		for _, sv := range cu.pool.Servers {
			st := sv.Status()
			au.Servers = append(au.Servers, apiServer{
				Name: sv.Name, URL: sv.URL.String(), Weight: sv.Weight, Backup: sv.Backup,
				Healthy: st.Healthy, Reason: st.Reason, Since: st.Since,
				InFlight: sv.InFlight(), Requests: sv.Requests(),
			})
		}
		out = append(out, au)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{"upstreams": out})
}
