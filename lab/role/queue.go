package role

import (
	"encoding/json"
	"net/http"

	"github.com/smtplab/smtplab/lab/sender"
)

// queueHandler serves GET /queue on the sender's control port: every
// message still in the queue, oldest first, with the recipients not yet
// delivered. It reads the queue on disk, so it shows what a restart would
// resume.
func queueHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := sender.OpenQueue(dir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ids, err := q.IDs()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out := make([]sender.Envelope, 0, len(ids))
		for _, id := range ids {
			env, err := q.Envelope(id)
			if err != nil {
				continue // delivered and removed meanwhile
			}
			out = append(out, env)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// queueSizeHandler serves GET /queue/size: how many messages the queue
// holds, from one directory listing. The lab polls it while it waits, so it
// must not read every envelope as GET /queue does.
func queueSizeHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := sender.OpenQueue(dir)
		if err == nil {
			var ids []string
			if ids, err = q.IDs(); err == nil {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]int{"queued": len(ids)})
				return
			}
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
}
