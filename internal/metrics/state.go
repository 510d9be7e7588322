package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector exports what Sources report, read at each scrape.
type stateCollector struct{ src Sources }

var (
	descLedgerEntries  = prometheus.NewDesc("ward_ledger_entries", "Entries in the audit ledger.", nil, nil)
	descCheckpointSize = prometheus.NewDesc("ward_ledger_checkpoint_size", "Size of the latest signed ledger checkpoint.", nil, nil)
	descUnsigned       = prometheus.NewDesc("ward_ledger_unsigned_entries", "Ledger entries no signed checkpoint covers yet.", nil, nil)
	descCheckpointAge  = prometheus.NewDesc("ward_ledger_checkpoint_age_seconds", "Time since this process last confirmed a signed checkpoint covering the ledger (absent until it has).", nil, nil)
	descLedgerUp       = prometheus.NewDesc("ward_ledger_read_ok", "1 when the scrape could read the ledger's size and checkpoint, else 0.", nil, nil)
	descQueued         = prometheus.NewDesc("ward_audit_queued_entries", "Audit entries waiting for the group committer.", nil, nil)
	descUnfolded       = prometheus.NewDesc("ward_audit_spool_unfolded_entries", "Spooled audit entries waiting to be folded into the ledger.", nil, nil)
	descMaxUnfolded    = prometheus.NewDesc("ward_audit_spool_max_unfolded_entries", "The bound on unfolded entries past which requests are refused.", nil, nil)
	descBroken         = prometheus.NewDesc("ward_audit_spool_broken", "1 when the ledger spool refuses entries until a restart.", nil, nil)
	descSIEMEmitted    = prometheus.NewDesc("ward_siem_events_emitted_total", "Security events written to the SIEM buffer.", nil, nil)
	descSIEMDropped    = prometheus.NewDesc("ward_siem_events_dropped_total", "Security events not kept (buffer full, write failed).", nil, nil)
	descSIEMBuffer     = prometheus.NewDesc("ward_siem_buffer_bytes", "Size of the SIEM buffer on disk.", nil, nil)
	descSIEMDelivered  = prometheus.NewDesc("ward_siem_delivered_total", "Security events a sink accepted.", []string{"sink"}, nil)
	descSIEMFailures   = prometheus.NewDesc("ward_siem_failures_total", "Failed deliveries to a sink.", []string{"sink"}, nil)
	descSIEMBacklog    = prometheus.NewDesc("ward_siem_backlog_events", "Security events buffered and not yet delivered to a sink.", []string{"sink"}, nil)
	descSIEMOldest     = prometheus.NewDesc("ward_siem_oldest_undelivered_seconds", "Age of a sink's oldest undelivered event.", []string{"sink"}, nil)
	descDetectBehind   = prometheus.NewDesc("ward_detector_behind_entries", "Ledger entries the anomaly detector has not read yet.", nil, nil)
	descDetectLag      = prometheus.NewDesc("ward_detector_lag_seconds", "How old the latest ledger entry the detector read was when read.", nil, nil)
	descDetectAlerts   = prometheus.NewDesc("ward_detector_alerts_total", "Alerts the detector saved (each version counted).", nil, nil)
	descDetectErrors   = prometheus.NewDesc("ward_detector_errors_total", "Detector failures, by kind: read, save, undecodable.", []string{"kind"}, nil)
	descKeyAge         = prometheus.NewDesc("ward_key_age_seconds", "Age of the key in force of each kind (kek, index, token, ledger, backup, esign).", []string{"kind"}, nil)
	descKeyMaxAge      = prometheus.NewDesc("ward_key_max_age_seconds", "Maximum age configured for each kind's key (--key-max-age); absent when none.", []string{"kind"}, nil)
	descKeyOver        = prometheus.NewDesc("ward_key_over_max_age", "1 when a kind's key in force is older than its maximum age: due for rotation.", []string{"kind"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLedgerEntries, descCheckpointSize, descUnsigned, descCheckpointAge, descLedgerUp,
		descQueued, descUnfolded, descMaxUnfolded, descBroken,
		descSIEMEmitted, descSIEMDropped, descSIEMBuffer, descSIEMDelivered, descSIEMFailures, descSIEMBacklog, descSIEMOldest,
		descDetectBehind, descDetectLag, descDetectAlerts, descDetectErrors, descKeyAge, descKeyMaxAge, descKeyOver} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Ledger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
		l, err := c.src.Ledger(ctx)
		cancel()
		gauge(ch, descLedgerUp, b2f(err == nil))
		if err == nil {
			gauge(ch, descLedgerEntries, float64(l.Entries))
			gauge(ch, descCheckpointSize, float64(l.CheckpointSize))
			gauge(ch, descUnsigned, float64(max(0, l.Entries-l.CheckpointSize)))
			if l.CheckpointAge >= 0 {
				gauge(ch, descCheckpointAge, l.CheckpointAge.Seconds())
			}
		}
	}
	if c.src.Audit != nil {
		a := c.src.Audit()
		gauge(ch, descQueued, float64(a.Queued))
		gauge(ch, descUnfolded, float64(a.Unfolded))
		gauge(ch, descMaxUnfolded, float64(a.MaxUnfolded))
		gauge(ch, descBroken, b2f(a.Broken))
	}
	if c.src.SIEM != nil {
		s := c.src.SIEM()
		counter(ch, descSIEMEmitted, float64(s.Emitted))
		counter(ch, descSIEMDropped, float64(s.Dropped))
		gauge(ch, descSIEMBuffer, float64(s.BufferBytes))
		for _, k := range s.Sinks {
			counter(ch, descSIEMDelivered, float64(k.Delivered), k.Name)
			counter(ch, descSIEMFailures, float64(k.Failures), k.Name)
			gauge(ch, descSIEMBacklog, float64(k.Backlog), k.Name)
			gauge(ch, descSIEMOldest, k.Oldest.Seconds(), k.Name)
		}
	}
	if c.src.Detector != nil {
		d := c.src.Detector()
		gauge(ch, descDetectBehind, float64(d.Behind))
		gauge(ch, descDetectLag, d.Lag.Seconds())
		counter(ch, descDetectAlerts, float64(d.Alerts))
		counter(ch, descDetectErrors, float64(d.ReadErrors), "read")
		counter(ch, descDetectErrors, float64(d.SaveErrors), "save")
		counter(ch, descDetectErrors, float64(d.Undecodable), "undecodable")
	}
	if c.src.Keys != nil {
		for _, k := range c.src.Keys() {
			gauge(ch, descKeyAge, k.Age.Seconds(), k.Kind)
			if k.MaxAge > 0 {
				gauge(ch, descKeyMaxAge, k.MaxAge.Seconds(), k.Kind)
			}
			gauge(ch, descKeyOver, b2f(k.Over), k.Kind)
		}
	}
}
