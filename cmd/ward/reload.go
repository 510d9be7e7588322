package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wardhealth/ward/internal/tlsconfig"
)

// reloadOnHangup loads the TLS certificate and key again each time the
// process receives SIGHUP (e.g. after a renewal: `systemctl reload ward`
// or `kill -HUP`); a renewal that does not load is logged and the
// current certificate kept. It returns the function that stops it.
func reloadOnHangup(certs *tlsconfig.Reloader, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := certs.Reload(); err != nil {
					log.Error("TLS certificate not reloaded; the current one stays in use", "error", err.Error())
					continue
				}
				log.Info("TLS certificate reloaded", "not_after", certs.Certificate().Leaf.NotAfter)
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}
