package events

import (
	"encoding/json"
	"net/http"
)

// Handler serves the log: GET /events as JSON lines, GET /status as a JSON
// object of counts by kind. Roles mount it on their control port.
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = l.Stream(w)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.Counts())
	})
	return mux
}
